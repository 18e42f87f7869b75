"""Staleness weights, usable with any rule, and staleness-aware ASGD.

A weight ``s(tau)`` scales the gradient before the rule sees it:

    constant:    s(tau) = 1
    polynomial:  s(tau) = (tau + 1) ** -a
    hinge:       s(tau) = 1 if tau <= b else 1 / (a * (tau - b) + 1)
    inverse:     s(tau) = 1 / max(tau, 1)

Polynomial and hinge: Xie, Koyejo, Gupta. "Asynchronous Federated Optimization"
(FedAsync), 2019, arXiv 1903.03934. Inverse: Zhang, Gupta, Lian, Liu. "Staleness-aware
Async-SGD for Distributed Deep Learning", IJCAI 2016: ``lr = lr0 / tau`` (``lr0`` when
tau = 0), which is ASGD with the inverse weight.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from .asgd import asgd
from .base import Rule, RuleError

Weight = Callable[[jax.Array], jax.Array]


def _check_non_negative(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise RuleError(f"{name}: must be a finite number >= 0, got {value!r}")


def constant() -> Weight:
    """s(tau) = 1."""
    return lambda staleness: jnp.float32(1.0)


def polynomial(a: float = 0.5) -> Weight:
    """s(tau) = (tau + 1) ** -a."""
    _check_non_negative("a", a)
    return lambda staleness: (jnp.asarray(staleness, jnp.float32) + 1.0) ** -a


def hinge(a: float = 10.0, b: float = 4.0) -> Weight:
    """s(tau) = 1 if tau <= b else 1 / (a (tau - b) + 1)."""
    _check_non_negative("a", a)
    _check_non_negative("b", b)

    def weight(staleness):
        tau = jnp.asarray(staleness, jnp.float32)
        return jnp.where(tau <= b, 1.0, 1.0 / (a * (tau - b) + 1.0))
    return weight


def inverse() -> Weight:
    """s(tau) = 1 / max(tau, 1)."""
    return lambda staleness: 1.0 / jnp.maximum(jnp.asarray(staleness, jnp.float32), 1.0)


WEIGHTS = {"constant": constant, "polynomial": polynomial, "hinge": hinge, "inverse": inverse}


def staleness_weighted(rule: Rule, weight: Weight) -> Rule:
    """``rule`` fed with ``s(tau) * g`` instead of ``g``."""

    def update(state, params, grad, *, worker, staleness, backup):
        s = weight(staleness)
        grad = jax.tree_util.tree_map(lambda g: (s * g).astype(g.dtype), grad)
        return rule.update(state, params, grad, worker=worker, staleness=staleness, backup=backup)

    return rule._replace(update=update, name=f"{rule.name}+weighted")


def staleness_aware_asgd(learning_rate=None, momentum=None, *, base=None, state_scope: str = "server") -> Rule:
    """Staleness-aware ASGD (Zhang et al. 2016): ``w <- w - (lr0 / max(tau, 1)) * g``."""
    rule = staleness_weighted(asgd(learning_rate, momentum, base=base, state_scope=state_scope), inverse())
    return rule._replace(name="sasgd")
