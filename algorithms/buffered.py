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

from .base import Rule, RuleError, base_init, base_step, check_optimizer_state, resolve_base, tree_zeros
from .checks import Spec, check
from .declaration import Algorithm, Hyperparameter
from .staleness import polynomial


class BufferedState(NamedTuple):
    base_state: Any
    buffer: Any  # sum of the weighted gradients received since the last step
    count: jax.Array  # int32, gradients in the buffer
    size: jax.Array  # int32, K: gradients per step


def buffered(learning_rate=None, buffer_size: Optional[int] = None,
             weight: Optional[Callable[[jax.Array], jax.Array]] = None, *, momentum=None, base=None,
             optimizer_state: str = "server") -> Rule:
    """Step along the mean of every ``buffer_size`` gradients (``None``: one per worker).

    ``weight`` maps staleness to a weight (``algorithms.staleness``); default 1."""
    base = resolve_base(learning_rate, momentum, base)
    optimizer_state = check_optimizer_state(optimizer_state)
    check("buffer_size", buffer_size, RuleError, kind=int, low=1, optional=True)

    def init(params, num_workers):
        k = num_workers if buffer_size is None else buffer_size
        return BufferedState(base_init(base, params, num_workers, optimizer_state), tree_zeros(params),
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
            params, base_state = base_step(base, base_state, params, mean, worker, optimizer_state)
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


ALGORITHMS = (
    Algorithm("ssgd", "SSGD", lambda base, workers: ssgd(base=base.optimizer()), policy="barrier",
              summary="synchronous SGD: a barrier, the mean of one gradient per worker per step"),
    Algorithm("fedbuff", "FedBuff",
              lambda base, workers, fedbuff_buffer_size: buffered(base=base.optimizer(), buffer_size=fedbuff_buffer_size,
                                                                  weight=polynomial(0.5)),
              policy=lambda values: f"buffered:{values['fedbuff_buffer_size']}",
              hyperparameters=(Hyperparameter("fedbuff_buffer_size", 4, "FedBuff's K: gradients averaged per step",
                                              Spec(int, low=1)),),
              paper="Nguyen et al., AISTATS 2022", summary="buffered aggregation of K staleness-weighted gradients"),
)
