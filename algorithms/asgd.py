"""Asynchronous SGD (ASGD).

Every gradient is applied as it arrives, although it was computed on parameters that
are ``tau`` versions old (tau = version now - version the worker read):

    w <- w - lr * g(w_{t - tau})

With server momentum ("naive ASGDm"): ``u <- beta * u + g;  w <- w - lr * u``. Any
optax optimizer can take the place of SGD (``base=optax.adam(...)``); with
``state_scope="worker"`` each worker has its own optimizer state (per-node momentum,
the baseline GSGM's global momentum replaces).

Reference: Recht et al. 2011 (Hogwild!), Dean et al. 2012 (Downpour SGD); see also
Zheng et al., ICML 2017, eq. (2).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .base import Rule, base_init, base_step, check_scope, resolve_base


class AsgdState(NamedTuple):
    base_state: Any


def asgd(learning_rate=None, momentum=None, *, base=None, state_scope: str = "server") -> Rule:
    """ASGD on SGD (``learning_rate``, optional ``momentum``) or on any optax ``base``."""
    base = resolve_base(learning_rate, momentum, base)
    scope = check_scope(state_scope)

    def init(params, num_workers):
        return AsgdState(base_init(base, params, num_workers, scope))

    def update(state, params, grad, *, worker, staleness, backup):
        del staleness, backup
        params, base_state = base_step(base, state.base_state, params, grad, worker, scope)
        return params, AsgdState(base_state)

    return Rule(init, update, name="asgd")
