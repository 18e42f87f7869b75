"""DC-ASGD: asynchronous SGD whose server compensates each gradient's delay."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from sim.checks import Spec, check

from .base import (Rule, RuleError, after, base_init, base_step, check_optimizer_state, resolve_base, tree_row,
                   tree_set_row, tree_stack, tree_zeros)
from .declaration import Algorithm, Hyperparameter


class DcasgdState(NamedTuple):
    base_state: Any
    mean_square: Any  # pytree like params ([N, ...] per worker); () when not adaptive
    count: Any = ()  # updates of the mean square so far (per worker with per_worker_ms); () without bias_correction


def dcasgd(learning_rate=None, lam: float | None = None, adaptive: bool = True, ms_decay: float = 0.95,
           eps: float = 1e-7, per_worker_ms: bool = False, *, momentum=None, base=None,
           optimizer_state: str = "worker", bias_correction: bool = False) -> Rule:
    """DC-ASGD-a (``adaptive=True``, the default) or DC-ASGD-c (``adaptive=False``).

    Worker m's gradient ``g`` was computed at its backup ``w_bak[m]`` (what it pulled).
    The server compensates the delay with a diagonal Hessian approximation
    ``lam * g * g`` (all products element-wise)::

        g~ = g + lam * g * g * (w - w_bak[m])
        w <- w - lr * g~

    DC-ASGD-c: ``lam = lam0``, constant. DC-ASGD-a: adaptive::

        ms  <- m * ms + (1 - m) * g * g
        lam  = lam0 / sqrt(ms + eps)

    with ``lam0`` divided afresh every step (never the previous lam); ``ms`` starts at 0,
    as in the paper, so early on it is ``(1 - m)`` times too small and ``lam`` about
    ``1 / sqrt(1 - m)`` = 4.5 times too large; ``bias_correction=True`` divides ``ms`` by
    ``1 - m^t`` as Adam does (not in the paper; docs/choices.md). ``ms`` is one mean
    square for the server by default or one per worker (``per_worker_ms=True``): public
    implementations disagree. ``lam = 0`` is plain ASGD. Any optax optimizer can take
    the place of SGD, its state on the server or per worker, as in ``asgd``.

    Reference: Zheng, Meng, Wang, Chen, Yu, Ma, Liu. "Asynchronous Stochastic Gradient
    Descent with Delay Compensation", ICML 2017, arXiv 1609.08326.

    Registered (``--algorithms``) as ``dcasgd-a`` (alias ``dcasgd``):
    ``adaptive=True, optimizer_state="worker"``, this function's defaults;
    ``dcasgd-a-server``: ``optimizer_state="server"``; ``dcasgd-c``: ``adaptive=False``.
    (Until 2026-12-02 the defaults were DC-ASGD-c with the state on the server; a call
    that relied on them now needs ``adaptive=False, optimizer_state="server"``.)

    Args:
      learning_rate: of plain SGD, when no ``base`` is given.
      lam: ``lam0``; ``None``: 2 for DC-ASGD-a, 0.04 for DC-ASGD-c (the usual defaults).
      adaptive: DC-ASGD-a (``True``) or DC-ASGD-c (``False``).
      ms_decay: ``m``, the mean square's decay (0.95).
      eps: added under the square root (1e-7).
      per_worker_ms: one mean square per worker instead of one on the server.
      bias_correction: divide the mean square by ``1 - m^t`` (t: its updates so far).
      momentum: heavy-ball momentum of that SGD (``None``: none).
      base: any optax optimizer, instead of ``learning_rate``/``momentum``.
      optimizer_state: where the base optimizer's state lives, ``"worker"`` (default)
        or ``"server"``, as ``asgd``.

    Returns:
      A ``Rule`` (``uses_backup=True``) whose state is ``DcasgdState``.
    """
    base = resolve_base(learning_rate, momentum, base)
    optimizer_state = check_optimizer_state(optimizer_state)
    lam0 = check("lam", (2.0 if adaptive else 0.04) if lam is None else lam, RuleError, low=0)
    check("ms_decay", ms_decay, RuleError, low=0, high=1, high_open=True)
    check("eps", eps, RuleError, low=0, low_open=True)

    def init(params, num_workers):
        mean_square, count = (), ()
        if adaptive:
            mean_square = tree_zeros(params)
            if per_worker_ms:
                mean_square = tree_stack(mean_square, num_workers)
        if adaptive and bias_correction:
            count = jnp.zeros((num_workers,) if per_worker_ms else (), jnp.int32)
        return DcasgdState(base_init(base, params, num_workers, optimizer_state), mean_square, count)

    def update(state, params, grad, *, worker, staleness, backup):
        del staleness
        mean_square = state.mean_square
        if adaptive:
            ms = tree_row(mean_square, worker) if per_worker_ms else mean_square
            ms = jax.tree_util.tree_map(lambda s, g: ms_decay * s + (1 - ms_decay) * g * g, ms, grad)
            scale = 1.0
            if bias_correction:
                t = (state.count[worker] if per_worker_ms else state.count) + 1
                scale = 1.0 / (1.0 - ms_decay ** t.astype(jnp.float32))
            lam_t = jax.tree_util.tree_map(lambda s: lam0 / jnp.sqrt(s * scale + eps), ms)
        else:
            lam_t = jax.tree_util.tree_map(lambda g: lam0, grad)
        compensated = jax.tree_util.tree_map(lambda g, l, w, wb: g + l * g * g * (w - wb),
                                             grad, lam_t, params, backup)
        params, base_state = base_step(base, state.base_state, params, compensated, worker, optimizer_state)
        if adaptive:  # (the row is written once the new parameters exist, see base.after)
            mean_square = tree_set_row(mean_square, worker, after(ms, params)) if per_worker_ms else ms
        count = state.count
        if adaptive and bias_correction:
            count = count.at[worker].add(1) if per_worker_ms else count + 1
        return params, DcasgdState(base_state, mean_square, count)

    name = "dcasgd-a" if adaptive else "dcasgd-c"
    return Rule(init, update, name=name, uses_backup=True)


PAPER = "Zheng et al., ICML 2017, arXiv 1609.08326"
LAM = Hyperparameter("dcasgd_lam", None, "DC-ASGD's lam0; none = the variant's default (2 for -a, 0.04 for -c)",
                     Spec(float, low=0, optional=True))
ALGORITHMS = (
    Algorithm("dcasgd-a", "DC-ASGD-a",
              lambda base, workers, dcasgd_lam: dcasgd(base=base.optimizer(), lam=dcasgd_lam, adaptive=True,
                                                       optimizer_state="worker"),
              hyperparameters=(LAM,), paper=PAPER, aliases=("dcasgd",),
              summary="delay compensation, adaptive lam = lam0 / sqrt(mean square); base-optimizer state per worker"),
    Algorithm("dcasgd-a-server", "DC-ASGD-a (server)",
              lambda base, workers, dcasgd_lam: dcasgd(base=base.optimizer(), lam=dcasgd_lam, adaptive=True,
                                                       optimizer_state="server"),
              hyperparameters=(LAM,), paper=PAPER,
              summary="DC-ASGD-a with one base-optimizer state on the server", same_as=(("sgd", "dcasgd-a"),)),
    Algorithm("dcasgd-c", "DC-ASGD-c",
              lambda base, workers, dcasgd_lam: dcasgd(base=base.optimizer(), lam=dcasgd_lam, adaptive=False,
                                                       optimizer_state="worker"),
              hyperparameters=(LAM,), paper=PAPER,
              summary="delay compensation with a constant lam; base-optimizer state per worker"),
)
