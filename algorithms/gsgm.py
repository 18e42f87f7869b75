"""GSGM (reconstructed): partial average of the latest gradients, global momentum.

Li, Li, Wang, Li, Zhou, Guo, Li. "Gradient Scheduling with Global Momentum for Non-IID
Data Distributed Asynchronous Training", arXiv 1902.07848; journal version Wang et al.,
IEEE Internet of Things Journal 9(19), 2022.

The paper's method section is not public; this is stalesim's documented
reconstruction (docs/gsgm.md). GSGM has three parts:

1. Gradient scheduling with a white list: a *server policy*, ``whitelist`` in
   ``sim/``, because it changes timing.
2. Partial average (this rule). The server caches each worker's latest applied
   gradient ``G[j]``. On applying ``g_i`` from worker i:

       G[i]  = g_i
       g_hat = (1 / |K_i|) * sum_{j in K_i} G[j]

   where ``K_i`` is the set of the ``k`` most recently updated distinct workers
   (worker i included). ``k = 1`` is no averaging; ``k = N`` averages every worker's
   latest gradient.
3. Global momentum (this rule): one momentum on the server over the averaged
   gradients of all workers, ``v = beta * v + g_hat;  w = w - lr * v``. On a base
   optimizer with its own first moment (momentum SGD, Adam), that moment is the global
   momentum: pass ``base=`` and no ``momentum``.

So "GSGM" = ``policy="whitelist-wait"`` + ``gsgm(lr, momentum=beta, average_window=k)``,
and each part is one argument: ``policy="fifo"`` drops the scheduling, ``k=1`` the
average, ``momentum=None`` the momentum.

The window's sum is kept incrementally (add the new gradient, subtract the one it
replaces or the one leaving the window), so an update costs O(parameters) whatever k
and N are.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .base import (Rule, RuleError, after, base_init, base_step, check_scope, resolve_base, tree_row, tree_set_row,
                   tree_stack, tree_zeros)


class GsgmState(NamedTuple):
    base_state: Any
    latest_gradients: Any  # G: [N, ...], each worker's latest applied gradient
    window_sum: Any  # sum of G[j] over the window K
    window_size: jax.Array  # |K|, int32
    last_update: jax.Array  # [N] int32, clock of each worker's latest update, -1 = never
    clock: jax.Array  # int32, number of applied gradients


_DEFAULT_MOMENTUM = 0.9


def gsgm(learning_rate=None, momentum=_DEFAULT_MOMENTUM, average_window: int | None = None, *, base=None,
         state_scope: str = "server") -> Rule:
    """GSGM's value rule. ``average_window`` is k (``None`` = every worker, k = N).

    ``momentum`` (default 0.9) is the global momentum of SGD; with ``base=`` it must be
    left out, the base optimizer's own first moment being the global momentum."""
    if base is not None and momentum is _DEFAULT_MOMENTUM:
        momentum = None
    base = resolve_base(learning_rate, momentum, base)
    scope = check_scope(state_scope)
    if average_window is not None and (isinstance(average_window, bool) or not isinstance(average_window, int)
                                       or average_window < 1):
        raise RuleError(f"average_window: must be an integer >= 1 or None (all workers), got {average_window!r}")

    def init(params, num_workers):
        k = num_workers if average_window is None else average_window
        if k > num_workers:
            raise RuleError(f"average_window: k={k} exceeds the number of workers ({num_workers})")
        latest = tree_stack(tree_zeros(params), num_workers) if k > 1 else ()
        return GsgmState(base_state=base_init(base, params, num_workers, scope),
                         latest_gradients=latest,
                         window_sum=tree_zeros(params) if k > 1 else (),
                         window_size=jnp.zeros((), jnp.int32),
                         last_update=jnp.full((num_workers,), -1, jnp.int32),
                         clock=jnp.zeros((), jnp.int32))

    def update(state, params, grad, *, worker, staleness, backup):
        del staleness, backup
        num_workers = state.last_update.shape[0]
        k = num_workers if average_window is None else average_window
        if k == 1:
            direction, new = grad, {}
        else:
            direction, new = _partial_average(state, grad, worker, k)
        params, base_state = base_step(base, state.base_state, params, direction, worker, scope)
        return params, state._replace(base_state=base_state, last_update=state.last_update.at[worker].set(state.clock),
                                      clock=state.clock + 1, **new)

    return Rule(init, update, name="gsgm")


def _partial_average(state: GsgmState, grad, worker, k: int):
    """Mean of the latest gradients of the k most recently updated workers, i included."""
    last = state.last_update
    newest_k, newest_k_workers = jax.lax.top_k(last, k)
    window_full = newest_k[k - 1] >= 0
    in_window = (last[worker] >= 0) & (last[worker] >= newest_k[k - 1])
    evicted = newest_k_workers[k - 1]  # the least recent member, leaves if i joins a full window
    replaced = tree_row(state.latest_gradients, jnp.where(in_window, worker, evicted))
    drop = in_window | window_full  # whether a cached gradient leaves the window sum
    window_sum = jax.tree_util.tree_map(lambda s, g, r: s + g - jnp.where(drop, r, jnp.zeros_like(r)),
                                        state.window_sum, grad, replaced)
    window_size = state.window_size + jnp.where(drop, 0, 1).astype(jnp.int32)
    direction = jax.tree_util.tree_map(lambda s: s / window_size.astype(s.dtype), window_sum)
    latest = tree_set_row(state.latest_gradients, worker, after(grad, window_sum))
    return direction, dict(latest_gradients=latest, window_sum=window_sum, window_size=window_size)

