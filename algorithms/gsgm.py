"""GSGM's value rule (reconstructed): partial average of the latest gradients, global momentum."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from sim.checks import Spec, check

from .base import (Rule, RuleError, after, base_init, base_step, check_optimizer_state, resolve_base, tree_row,
                   tree_set_row, tree_stack, tree_zeros)
from .declaration import Algorithm, Base, Hyperparameter


class GsgmState(NamedTuple):
    base_state: Any
    latest_gradients: Any  # G: [N, ...], each worker's latest applied gradient
    window_sum: Any  # sum of G[j] over the window K
    window_size: jax.Array  # |K|, int32
    last_update: jax.Array  # [N] int32, clock of each worker's latest update, -1 = never
    clock: jax.Array  # int32, number of applied gradients


DEFAULT_MOMENTUM = 0.9
WINDOWS = ("half", "all")


def window_size(k, num_workers: int) -> int:
    """The partial-average window for ``num_workers``: ``k`` itself, or ``"half"`` /
    ``"all"`` resolved to ``ceil(N / 2)`` / ``N``."""
    if k == "half":
        return -(-num_workers // 2)
    if k == "all":
        return num_workers
    return k


def gsgm(learning_rate=None, momentum=None, k="half", *, base=None, optimizer_state: str = "server") -> Rule:
    """GSGM's value rule: partial average over ``k`` workers, global momentum.

    The paper's method section is not public; this is stalesim's documented
    reconstruction (docs/gsgm.md). GSGM has three parts:

    1. Gradient scheduling with a white list: a *server policy*, ``whitelist`` in
       ``sim/``, because it changes timing.
    2. Partial average (this rule). The server caches each worker's latest applied
       gradient ``G[j]``. On applying ``g_i`` from worker i::

           G[i]  = g_i
           g_hat = (1 / |K_i|) * sum_{j in K_i} G[j]

       where ``K_i`` is the set of the ``k`` most recently updated distinct workers
       (worker i included). ``k = 1`` is no averaging; ``k = N`` averages every worker's
       latest gradient.
    3. Global momentum (this rule): one momentum on the server over the averaged
       gradients of all workers. On plain SGD::

           v = beta * v + g_hat;   w = w - lr * (1 - beta) * v

       The factor ``(1 - beta)`` keeps SGD's step size (``v`` is ``1 / (1 - beta)`` times
       the mean gradient at steady state), so GSGM on SGD and ASGD on SGD share one
       learning-rate grid. On a base optimizer with its own first moment (momentum SGD,
       Adam), that moment is the global momentum: pass ``base=`` and no ``momentum``.

    So "GSGM" = ``policy="whitelist-wait"`` + ``gsgm(lr, momentum=beta, k=k)``, and each
    part is one argument: ``policy="fifo"`` drops the scheduling, ``k=1`` the average,
    ``momentum=0`` the momentum. The defaults (``k = ceil(N / 2)``, ``beta = 0.9``, the
    ``(1 - beta)`` convention) are the ones stalesim's experiments use; docs/gsgm.md says
    why.

    The window's sum is kept incrementally (add the new gradient, subtract the one it
    replaces or the one leaving the window), so an update costs O(parameters) whatever k
    and N are.

    Reference: Li, Li, Wang, Li, Zhou, Guo, Li. "Gradient Scheduling with Global Momentum
    for Non-IID Data Distributed Asynchronous Training", arXiv 1902.07848; journal
    version Wang et al., IEEE Internet of Things Journal 9(19), 2022.

    Registered (``--algorithms``) as ``gsgm``: on plain SGD, ``gsgm(lr,
    momentum=base.momentum, k=k)``; on momentum SGD and Adam, ``gsgm(base=..., k=k)``;
    server state (this function's default) on every base.

    Args:
      learning_rate: of the built-in SGD with global momentum, when no ``base`` is given.
      momentum: ``beta`` of that global momentum; ``None`` = 0.9 without ``base``, and the
        base's own first moment with ``base``.
      k: the partial-average window: an integer >= 1, ``"half"`` (``ceil(N / 2)``, the
        default) or ``"all"`` (``N``).
      base: any optax optimizer instead of ``learning_rate`` / ``momentum``.
      optimizer_state: where the base optimizer's state lives (``"server"``: global).

    Returns:
      A ``Rule`` whose state is ``GsgmState``.
    """
    if base is not None:
        if momentum is not None:
            raise RuleError("momentum: with base=, the base optimizer's own first moment is the global momentum; "
                            "leave momentum out")
        base = resolve_base(learning_rate, None, base)
    else:
        if learning_rate is None:
            raise RuleError("learning_rate: required when no base optimizer is given")
        beta = check("momentum", DEFAULT_MOMENTUM if momentum is None else momentum, RuleError,
                     low=0, high=1, high_open=True)
        lr = check("learning_rate", learning_rate, RuleError, low=0, low_open=True)
        base = optax.sgd(lr * (1 - beta), momentum=beta or None)
    optimizer_state = check_optimizer_state(optimizer_state)
    if k not in WINDOWS:
        check("k", k, RuleError, kind=int, low=1)

    def init(params, num_workers):
        size = window_size(k, num_workers)
        if size > num_workers:
            raise RuleError(f"k: {size} exceeds the number of workers ({num_workers})")
        latest = tree_stack(tree_zeros(params), num_workers) if size > 1 else ()
        return GsgmState(base_state=base_init(base, params, num_workers, optimizer_state),
                         latest_gradients=latest,
                         window_sum=tree_zeros(params) if size > 1 else (),
                         window_size=jnp.zeros((), jnp.int32),
                         last_update=jnp.full((num_workers,), -1, jnp.int32),
                         clock=jnp.zeros((), jnp.int32))

    def update(state, params, grad, *, worker, staleness, backup):
        del staleness, backup
        size = window_size(k, state.last_update.shape[0])
        if size == 1:
            direction, new = grad, {}
        else:
            direction, new = _partial_average(state, grad, worker, size)
        params, base_state = base_step(base, state.base_state, params, direction, worker, optimizer_state)
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


def _build(base, workers, gsgm_k, gsgm_policy, gsgm_momentum):
    """On plain SGD GSGM brings its own global momentum (``gsgm_momentum``, lr (1 - beta);
    0 ablates it); on momentum SGD and Adam the base's first moment is the global momentum."""
    del workers, gsgm_policy
    if base.name == "sgd":  # gsgm(lr, momentum=beta): SGD at lr (1 - beta) with heavy-ball momentum beta
        beta = gsgm_momentum
        base = Base("momentum" if beta else "sgd", base.learning_rate * (1 - beta), beta)
    return gsgm(base=base.optimizer(), k=gsgm_k, optimizer_state="server")


ALGORITHMS = (
    Algorithm(
        "gsgm", "GSGM", _build, policy=lambda values: values["gsgm_policy"],
        hyperparameters=(
            Hyperparameter("gsgm_k", "half",
                           "GSGM's partial-average window k: a number of workers' latest gradients, half "
                           "(ceil(workers / 2)) or all (every worker's)",
                           Spec(int, low=1, words=("half", "all"))),
            Hyperparameter("gsgm_policy", "whitelist-wait",
                           "GSGM's server policy: the white list (wait or queue), or fifo to ablate the scheduling",
                           Spec(str, choices=("whitelist-wait", "whitelist-queue", "fifo"))),
            Hyperparameter("gsgm_momentum", DEFAULT_MOMENTUM,
                           "GSGM's global momentum beta on the sgd base (0 ablates it; on momentum and adam the "
                           "base's own first moment is the global momentum)",
                           Spec(float, low=0, high=1, high_open=True)),
        ),
        paper="Li et al., arXiv 1902.07848 (2019); Wang et al., IEEE IoT Journal 9(19), 2022",
        summary="white-list scheduling + partial average of the latest k gradients + global momentum"),
)
