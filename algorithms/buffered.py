"""Buffered aggregation (FedBuff) and synchronous SGD.

Buffered aggregation: Nguyen, Malik, Zhan, Yousefpour, Rabbat, Malek, Huba. "Federated
Learning with Buffered Asynchronous Aggregation", AISTATS 2022, arXiv 2106.06639.

The server adds each arriving gradient, weighted by its staleness weight s(tau), to a
buffer; after K gradients it steps along their mean and empties the buffer:

    B <- B + s(tau) * g            (each arriving gradient)
    w <- w - lr * B / K;  B <- 0   (every K-th gradient)

stalesim divides by K, not by the sum of the weights (public code does both): dividing
by K keeps a stale buffer's step small, which is what the weights are for.

Synchronous SGD (``ssgd``) is the same rule with K = number of workers and the
``barrier`` policy, which makes every gradient fresh (tau = 0):

    w <- w - lr * (1/N) * sum_m g_m(w)
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from .base import Rule, RuleError, base_init, base_step, check_scope, resolve_base, tree_zeros


class BufferedState(NamedTuple):
    base_state: Any
    buffer: Any  # sum of the weighted gradients received since the last step
    count: jax.Array  # int32, gradients in the buffer
    size: jax.Array  # int32, K: gradients per step


def buffered(learning_rate=None, buffer_size: Optional[int] = None,
             weight: Optional[Callable[[jax.Array], jax.Array]] = None, *, momentum=None, base=None,
             state_scope: str = "server") -> Rule:
    """Step along the mean of every ``buffer_size`` gradients (``None``: one per worker).

    ``weight`` maps staleness to a weight (``algorithms.staleness``); default 1."""
    base = resolve_base(learning_rate, momentum, base)
    scope = check_scope(state_scope)
    if buffer_size is not None and (isinstance(buffer_size, bool) or not isinstance(buffer_size, int)
                                    or buffer_size < 1):
        raise RuleError(f"buffer_size: must be an integer >= 1 or None (one per worker), got {buffer_size!r}")

    def init(params, num_workers):
        k = num_workers if buffer_size is None else buffer_size
        return BufferedState(base_init(base, params, num_workers, scope), tree_zeros(params),
                             jnp.zeros((), jnp.int32), jnp.asarray(k, jnp.int32))

    def update(state, params, grad, *, worker, staleness, backup):
        del backup
        k = state.size
        s = 1.0 if weight is None else weight(staleness)
        buffer = jax.tree_util.tree_map(lambda b, g: b + (s * g).astype(b.dtype), state.buffer, grad)
        count = state.count + 1

        def step(operand):
            params, base_state, buffer = operand
            mean = jax.tree_util.tree_map(lambda b: b / k.astype(b.dtype), buffer)
            params, base_state = base_step(base, base_state, params, mean, worker, scope)
            return params, base_state, tree_zeros(buffer), jnp.zeros((), jnp.int32)

        def hold(operand):
            params, base_state, buffer = operand
            return params, base_state, buffer, count

        params, base_state, buffer, count = jax.lax.cond(count == k, step, hold,
                                                         (params, state.base_state, buffer))
        return params, BufferedState(base_state, buffer, count, state.size)

    return Rule(init, update, name="buffered" if buffer_size is not None else "ssgd",
                gradients_per_step=buffer_size)


def ssgd(learning_rate=None, momentum=None, *, base=None) -> Rule:
    """Synchronous SGD: the mean of one gradient per worker per step (``barrier`` policy)."""
    return buffered(learning_rate, buffer_size=None, momentum=momentum, base=base)
