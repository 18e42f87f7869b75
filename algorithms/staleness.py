"""Staleness weights s(tau), usable with any rule, and staleness-aware ASGD.

A weight scales the gradient before the rule sees it:

    constant:    s(tau) = 1
    polynomial:  s(tau) = (tau + 1) ** -a
    hinge:       s(tau) = 1 if tau <= b else 1 / (a * (tau - b) + 1)
    inverse:     s(tau) = 1 / max(tau, 1)
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from sim.checks import check

from .asgd import asgd
from .base import Rule, RuleError
from .declaration import Algorithm

Weight = Callable[[jax.Array], jax.Array]


def constant() -> Weight:
    """s(tau) = 1."""
    return lambda staleness: jnp.float32(1.0)


def polynomial(a: float = 0.5) -> Weight:
    """s(tau) = (tau + 1) ** -a.

    Reference: Xie, Koyejo, Gupta. "Asynchronous Federated Optimization" (FedAsync),
    2019, arXiv 1903.03934.

    Args:
      a: the exponent, >= 0.
    """
    check("a", a, RuleError, low=0)
    return lambda staleness: (jnp.asarray(staleness, jnp.float32) + 1.0) ** -a


def hinge(a: float = 10.0, b: float = 4.0) -> Weight:
    """s(tau) = 1 if tau <= b else 1 / (a (tau - b) + 1).

    Reference: Xie, Koyejo, Gupta. "Asynchronous Federated Optimization" (FedAsync),
    2019, arXiv 1903.03934.

    Args:
      a: the slope past the hinge, >= 0.
      b: the staleness up to which the weight is 1, >= 0.
    """
    check("a", a, RuleError, low=0)
    check("b", b, RuleError, low=0)

    def weight(staleness):
        tau = jnp.asarray(staleness, jnp.float32)
        return jnp.where(tau <= b, 1.0, 1.0 / (a * (tau - b) + 1.0))
    return weight


def inverse() -> Weight:
    """s(tau) = 1 / max(tau, 1): the weight of staleness-aware ASGD (``staleness_aware_asgd``).

    Reference: Zhang, Gupta, Lian, Liu. "Staleness-aware Async-SGD for Distributed Deep
    Learning", IJCAI 2016.
    """
    return lambda staleness: 1.0 / jnp.maximum(jnp.asarray(staleness, jnp.float32), 1.0)


def staleness_weighted(rule: Rule, weight: Weight) -> Rule:
    """``rule`` fed with ``s(tau) * g`` instead of ``g``.

    Registered (``--algorithms``) on ``asgd`` with server state: ``asgd-poly``
    (``polynomial(0.5)``) and ``asgd-hinge`` (``hinge(10, 4)``).

    Args:
      rule: any ``Rule``.
      weight: a function of the staleness (``constant``, ``polynomial``, ``hinge``, ``inverse``).
    """

    def update(state, params, grad, *, worker, staleness, backup):
        s = weight(staleness)
        grad = jax.tree_util.tree_map(lambda g: (s * g).astype(g.dtype), grad)
        return rule.update(state, params, grad, worker=worker, staleness=staleness, backup=backup)

    return rule._replace(update=update, name=f"{rule.name}+weighted")


def staleness_aware_asgd(learning_rate=None, momentum=None, *, base=None, optimizer_state: str = "server") -> Rule:
    """Staleness-aware ASGD: ASGD with the step divided by the staleness::

        w <- w - (lr0 / max(tau, 1)) * g

    (``lr0`` when tau = 0), which is ``asgd`` with the ``inverse`` weight.

    Reference: Zhang, Gupta, Lian, Liu. "Staleness-aware Async-SGD for Distributed Deep
    Learning", IJCAI 2016.

    Registered (``--algorithms``) as ``sasgd``, with this function's default,
    server state.

    Args:
      learning_rate: ``lr0``, of plain SGD, when no ``base`` is given.
      momentum: heavy-ball momentum of that SGD (``None``: none).
      base: any optax optimizer, instead of ``learning_rate``/``momentum``.
      optimizer_state: where the base optimizer's state lives, ``"server"`` (default)
        or ``"worker"``, as ``asgd``.
    """
    rule = staleness_weighted(asgd(learning_rate, momentum, base=base, optimizer_state=optimizer_state), inverse())
    return rule._replace(name="sasgd")


ALGORITHMS = (
    Algorithm("sasgd", "SA-ASGD",
              lambda base, workers: staleness_aware_asgd(base=base.optimizer(), optimizer_state="server"),
              paper="Zhang et al., IJCAI 2016", summary="ASGD with the step divided by the staleness"),
    Algorithm("asgd-poly", "ASGD-poly",
              lambda base, workers: staleness_weighted(asgd(base=base.optimizer(), optimizer_state="server"),
                                                       polynomial(0.5)),
              paper="Xie et al., arXiv 1903.03934 (FedAsync)", summary="ASGD weighted by (tau + 1) ** -0.5"),
    Algorithm("asgd-hinge", "ASGD-hinge",
              lambda base, workers: staleness_weighted(asgd(base=base.optimizer(), optimizer_state="server"),
                                                       hinge(10.0, 4.0)),
              paper="Xie et al., arXiv 1903.03934 (FedAsync)", summary="ASGD weighted by a hinge (a=10, b=4)"),
)
