"""DC-ASGD: asynchronous SGD with delay compensation.

Zheng, Meng, Wang, Chen, Yu, Ma, Liu. "Asynchronous Stochastic Gradient Descent with
Delay Compensation", ICML 2017, arXiv 1609.08326.

Worker m's gradient ``g`` was computed at its backup ``w_bak[m]`` (what it pulled).
The server compensates the delay with a diagonal Hessian approximation
``lam * g * g`` (all products element-wise):

    g~ = g + lam * g * g * (w - w_bak[m])
    w <- w - lr * g~

DC-ASGD-c: ``lam = lam0``, constant. DC-ASGD-a: adaptive,

    ms  <- m * ms + (1 - m) * g * g
    lam  = lam0 / sqrt(ms + eps)

with ``lam0`` divided afresh every step (never the previous lam). ``ms`` is one mean
square for the server by default or one per worker (``per_worker_ms=True``): public
implementations disagree. ``lam = 0`` is plain ASGD.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .base import (Rule, RuleError, after, base_init, base_step, check_scope, check_unit_interval, resolve_base,
                   tree_row, tree_set_row, tree_stack, tree_zeros)


class DcasgdState(NamedTuple):
    base_state: Any
    mean_square: Any  # pytree like params ([N, ...] per worker); () when not adaptive


def dcasgd(learning_rate=None, lam: float | None = None, adaptive: bool = False, ms_decay: float = 0.95,
           eps: float = 1e-7, per_worker_ms: bool = False, *, momentum=None, base=None,
           state_scope: str = "server") -> Rule:
    """DC-ASGD-c (``adaptive=False``, default ``lam=0.04``) or DC-ASGD-a
    (``adaptive=True``, default ``lam=2``)."""
    base = resolve_base(learning_rate, momentum, base)
    scope = check_scope(state_scope)
    lam0 = (2.0 if adaptive else 0.04) if lam is None else lam
    if isinstance(lam0, bool) or not isinstance(lam0, (int, float)) or not 0 <= lam0 < float("inf"):
        raise RuleError(f"lam: must be a finite number >= 0, got {lam!r}")
    check_unit_interval("ms_decay", ms_decay)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
        raise RuleError(f"eps: must be a number > 0, got {eps!r}")

    def init(params, num_workers):
        mean_square = ()
        if adaptive:
            mean_square = tree_zeros(params)
            if per_worker_ms:
                mean_square = tree_stack(mean_square, num_workers)
        return DcasgdState(base_init(base, params, num_workers, scope), mean_square)

    def update(state, params, grad, *, worker, staleness, backup):
        del staleness
        mean_square = state.mean_square
        if adaptive:
            ms = tree_row(mean_square, worker) if per_worker_ms else mean_square
            ms = jax.tree_util.tree_map(lambda s, g: ms_decay * s + (1 - ms_decay) * g * g, ms, grad)
            lam_t = jax.tree_util.tree_map(lambda s: lam0 / jnp.sqrt(s + eps), ms)
        else:
            lam_t = jax.tree_util.tree_map(lambda g: lam0, grad)
        compensated = jax.tree_util.tree_map(lambda g, l, w, wb: g + l * g * g * (w - wb),
                                             grad, lam_t, params, backup)
        params, base_state = base_step(base, state.base_state, params, compensated, worker, scope)
        if adaptive:  # (the row is written once the new parameters exist, see base.after)
            mean_square = tree_set_row(mean_square, worker, after(ms, params)) if per_worker_ms else ms
        return params, DcasgdState(base_state, mean_square)

    name = "dcasgd-a" if adaptive else "dcasgd-c"
    return Rule(init, update, name=name, uses_backup=True)
