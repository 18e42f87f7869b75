"""Buffered aggregation (FedBuff) and synchronous SGD: one step along the mean of every K gradients."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from sim.checks import Spec, check

from .base import Rule, RuleError, base_init, base_step, check_optimizer_state, resolve_base, tree_zeros
from .declaration import Algorithm, Hyperparameter
from .staleness import polynomial


class BufferedState(NamedTuple):
    base_state: Any
    buffer: Any  # sum of the weighted gradients received since the last step
    count: jax.Array  # int32, gradients in the buffer
    buffer_size: jax.Array  # int32, K: gradients per step


def buffered(learning_rate=None, buffer_size: Optional[int] = None,
             weight: Optional[Callable[[jax.Array], jax.Array]] = None, *, momentum=None, base=None,
             optimizer_state: str = "server") -> Rule:
    """Buffered aggregation: one step along the mean of every ``buffer_size`` (K) gradients.

    The server adds each arriving gradient, weighted by its staleness weight s(tau), to a
    buffer; after K gradients it steps along their mean and empties the buffer::

        B <- B + s(tau) * g            (each arriving gradient)
        w <- w - lr * B / K;  B <- 0   (every K-th gradient)

    stalesim divides by K, not by the sum of the weights (public code does both):
    dividing by K keeps a stale buffer's step small, which is what the weights are for.
    The server version advances every K applied gradients, so the rule's
    ``gradients_per_version`` is K and it runs under the ``buffered:K`` policy.

    Reference: Nguyen, Malik, Zhan, Yousefpour, Rabbat, Malek, Huba. "Federated Learning
    with Buffered Asynchronous Aggregation", AISTATS 2022, arXiv 2106.06639.

    Registered (``--algorithms``) as ``fedbuff``: ``buffer_size`` from the
    configuration field ``fedbuff_buffer_size``, ``weight=polynomial(0.5)``, server
    state; ``ssgd`` is this rule with one gradient per worker.

    Args:
      learning_rate: of plain SGD, when no ``base`` is given.
      buffer_size: K, gradients per step; ``None``: one per worker (``ssgd``).
      weight: maps staleness to a weight (``algorithms.staleness``); ``None``: 1.
      momentum: heavy-ball momentum of that SGD (``None``: none).
      base: any optax optimizer, instead of ``learning_rate``/``momentum``.
      optimizer_state: where the base optimizer's state lives, ``"server"`` (default)
        or ``"worker"``, as ``asgd``.

    Returns:
      A ``Rule`` whose state is ``BufferedState``.
    """
    base = resolve_base(learning_rate, momentum, base)
    optimizer_state = check_optimizer_state(optimizer_state)
    check("buffer_size", buffer_size, RuleError, kind=int, low=1, optional=True)

    def init(params, num_workers):
        size = num_workers if buffer_size is None else buffer_size
        return BufferedState(base_init(base, params, num_workers, optimizer_state), tree_zeros(params),
                             jnp.zeros((), jnp.int32), jnp.asarray(size, jnp.int32))

    def update(state, params, grad, *, worker, staleness, backup):
        del backup
        size = state.buffer_size
        s = 1.0 if weight is None else weight(staleness)
        buffer = jax.tree_util.tree_map(lambda b, g: b + (s * g).astype(b.dtype), state.buffer, grad)
        count = state.count + 1

        def step(operand):
            params, base_state, buffer = operand
            mean = jax.tree_util.tree_map(lambda b: b / size.astype(b.dtype), buffer)
            params, base_state = base_step(base, base_state, params, mean, worker, optimizer_state)
            return params, base_state, tree_zeros(buffer), jnp.zeros((), jnp.int32)

        def hold(operand):
            params, base_state, buffer = operand
            return params, base_state, buffer, count

        params, base_state, buffer, count = jax.lax.cond(count == size, step, hold,
                                                         (params, state.base_state, buffer))
        return params, BufferedState(base_state, buffer, count, state.buffer_size)

    return Rule(init, update, name="buffered" if buffer_size is not None else "ssgd",
                gradients_per_version=buffer_size)


def ssgd(learning_rate=None, momentum=None, *, base=None) -> Rule:
    """Synchronous SGD: the mean of one gradient per worker per step.

    ``buffered`` with K = the number of workers, under the ``barrier`` policy, which
    makes every gradient fresh (tau = 0)::

        w <- w - lr * (1/N) * sum_m g_m(w)

    Registered (``--algorithms``) as ``ssgd``.

    Args:
      learning_rate: of plain SGD, when no ``base`` is given.
      momentum: heavy-ball momentum of that SGD (``None``: none).
      base: any optax optimizer, instead of ``learning_rate``/``momentum``.
    """
    return buffered(learning_rate, buffer_size=None, momentum=momentum, base=base)


def _fedbuff(base, workers, fedbuff_buffer_size):
    del workers
    return buffered(base=base.optimizer(), buffer_size=fedbuff_buffer_size, weight=polynomial(0.5),
                    optimizer_state="server")


ALGORITHMS = (
    Algorithm("ssgd", "SSGD", lambda base, workers: ssgd(base=base.optimizer()), policy="barrier",
              summary="synchronous SGD: a barrier, the mean of one gradient per worker per step"),
    Algorithm("fedbuff", "FedBuff", _fedbuff,
              policy=lambda values: f"buffered:{values['fedbuff_buffer_size']}",
              hyperparameters=(Hyperparameter("fedbuff_buffer_size", 4, "FedBuff's K: gradients averaged per step",
                                              Spec(int, low=1)),),
              paper="Nguyen et al., AISTATS 2022", summary="buffered aggregation of K staleness-weighted gradients"),
)
