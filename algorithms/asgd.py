"""Asynchronous SGD (ASGD): every gradient applied as it arrives, on any optax base optimizer."""

from __future__ import annotations

from typing import Any, NamedTuple

from .base import Rule, base_init, base_step, check_optimizer_state, resolve_base
from .declaration import Algorithm


class AsgdState(NamedTuple):
    base_state: Any


def asgd(learning_rate=None, momentum=None, *, base=None, optimizer_state: str = "worker") -> Rule:
    """Asynchronous SGD: every gradient is applied as it arrives.

    The gradient was computed on parameters that are ``tau`` versions old (tau = version
    now - version the worker read)::

        w <- w - lr * g(w_{t - tau})

    Any optax optimizer can take the place of SGD (``base=optax.adam(...)``). Where the
    base optimizer keeps state (momentum SGD's ``u``, Adam's moments), that state lives

    - on the server (``optimizer_state="server"``, "naive ASGDm" on momentum SGD):
      ``u <- beta * u + g;  w <- w - lr * u``, one ``u`` over every worker's gradients;
    - or per worker (``optimizer_state="worker"``): worker m's gradients only ever enter
      worker m's ``u[m]``. This is per-worker momentum, the baseline GSGM's global
      momentum replaces; with one class per worker it is biased towards the worker's class.

    On plain SGD (no state) the two are the same rule.

    References: Recht et al., "Hogwild!", NeurIPS 2011; Dean et al., "Large Scale
    Distributed Deep Networks" (Downpour SGD), NeurIPS 2012; see also Zheng et al.,
    ICML 2017, eq. (2).

    Registered (``--algorithms``) as ``asgd``, which is this function's default,
    ``optimizer_state="worker"`` (stalesim's ASGD baseline), and ``asgd-server``, which is
    ``optimizer_state="server"``. (Until 2026-12-02 the default was ``"server"``; a call
    on a stateful base that relied on it now needs ``optimizer_state="server"``.)

    Args:
      learning_rate: of plain SGD, when no ``base`` is given.
      momentum: heavy-ball momentum of that SGD (``None``: none).
      base: any optax optimizer, instead of ``learning_rate``/``momentum``.
      optimizer_state: ``"worker"`` (default) or ``"server"``, as above.

    Returns:
      A ``Rule`` whose state is ``AsgdState``.
    """
    base = resolve_base(learning_rate, momentum, base)
    optimizer_state = check_optimizer_state(optimizer_state)

    def init(params, num_workers):
        return AsgdState(base_init(base, params, num_workers, optimizer_state))

    def update(state, params, grad, *, worker, staleness, backup):
        del staleness, backup
        params, base_state = base_step(base, state.base_state, params, grad, worker, optimizer_state)
        return params, AsgdState(base_state)

    return Rule(init, update, name="asgd")


PAPER = "Recht et al., NeurIPS 2011 (Hogwild!); Dean et al., NeurIPS 2012 (Downpour SGD)"
ALGORITHMS = (
    Algorithm("asgd", "ASGD", lambda base, workers: asgd(base=base.optimizer(), optimizer_state="worker"),
              paper=PAPER, summary="asynchronous SGD; the base optimizer's state (momentum, Adam moments) per worker"),
    Algorithm("asgd-server", "ASGD (server)",
              lambda base, workers: asgd(base=base.optimizer(), optimizer_state="server"),
              paper=PAPER, summary="asynchronous SGD; one base-optimizer state on the server (naive ASGDm)",
              same_as=(("sgd", "asgd"),)),
)
