"""What every server rule shares: the ``Rule`` pair, base optimizers, pytree helpers.

A rule is a pair of pure functions in the optax style over a ``NamedTuple`` state::

    state = rule.init(params, num_workers)
    params, state = rule.update(state, params, grad, worker=w, staleness=tau, backup=w_bak)

``backup`` is the parameter pytree the worker read before computing ``grad``.
Rules turn the gradient into a *direction* (delay-compensated, partially averaged,
staleness-weighted, buffered) and hand it to a base optax optimizer, so "X on SGD /
momentum / Adam" is one argument.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from sim.checks import check

OPTIMIZER_STATES = ("server", "worker")  # where the base optimizer's state lives


class RuleError(ValueError):
    """A rule argument is out of range or of the wrong kind."""


class _RuleFields(NamedTuple):
    init: Callable[..., Any]
    update: Callable[..., Any]
    name: str = "rule"
    uses_backup: bool = False
    gradients_per_version: Optional[int] = 1


_OLD_NAME = "gradients_per_step is deprecated: use gradients_per_version"


class Rule(_RuleFields):
    """A server rule: ``init(params, num_workers) -> state`` and
    ``update(state, params, grad, *, worker, staleness, backup) -> (params, state)``.

    ``uses_backup``: the rule reads ``backup`` (the replay keeps it only then).
    ``gradients_per_version``: how many applied gradients make one parameter step (one
    server version); 1 for asynchronous rules, ``None`` for "one per worker"
    (synchronous SGD), K for buffers. It must match the trace's ``gradients_per_version``.
    (The old name ``gradients_per_step`` is still accepted, with a ``DeprecationWarning``.)
    """

    __slots__ = ()

    def __new__(cls, init, update, name="rule", uses_backup=False, gradients_per_version=1, **old):
        if "gradients_per_step" in old:
            warnings.warn(_OLD_NAME, DeprecationWarning, 2)
            gradients_per_version = old.pop("gradients_per_step")
        if old:
            raise TypeError(f"Rule() got unexpected keyword arguments {', '.join(old)}")
        return super().__new__(cls, init, update, name, uses_backup, gradients_per_version)

    def _replace(self, **changes):
        if "gradients_per_step" in changes:
            warnings.warn(_OLD_NAME, DeprecationWarning, 2)
            changes["gradients_per_version"] = changes.pop("gradients_per_step")
        return super()._replace(**changes)

    @property
    def gradients_per_step(self) -> Optional[int]:
        warnings.warn(_OLD_NAME, DeprecationWarning, 2)
        return self.gradients_per_version


def check_optimizer_state(optimizer_state: str) -> str:
    return check("optimizer_state", optimizer_state, RuleError, kind=str, choices=OPTIMIZER_STATES)


def resolve_base(learning_rate, momentum, base) -> optax.GradientTransformation:
    """``base`` if given, else ``optax.sgd(learning_rate, momentum)``.

    With momentum: ``v = beta * v + g; w = w - lr * v`` (optax's heavy-ball form)."""
    if base is not None:
        if learning_rate is not None or momentum is not None:
            raise RuleError("base: give either base=optax... or learning_rate/momentum, not both")
        if not (hasattr(base, "init") and hasattr(base, "update")):
            raise RuleError(f"base: expected an optax GradientTransformation, got {type(base).__name__}")
        return base
    if learning_rate is None:
        raise RuleError("learning_rate: required when no base optimizer is given")
    check("learning_rate", learning_rate, RuleError, low=0, low_open=True)
    check("momentum", momentum, RuleError, low=0, high=1, high_open=True, optional=True)
    return optax.sgd(learning_rate, momentum=momentum or None)


# ------------------------------------------------------------------ pytree helpers
def tree_stack(tree, n: int):
    """``n`` copies of every leaf, stacked on a new leading axis."""
    return jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (n,) + jnp.shape(x)), tree)  # a new buffer


def tree_row(stacked, i):
    """Row ``i`` of a stacked pytree (a dynamic slice, which XLA keeps in place)."""
    return jax.tree_util.tree_map(lambda x: jax.lax.dynamic_index_in_dim(x, i, keepdims=False), stacked)


def tree_set_row(stacked, i, tree):
    """``stacked`` with row ``i`` replaced by ``tree``: a dynamic-update-slice, done in
    place under donation (``x.at[i].set`` lowers to a scatter, which XLA on the CPU
    copied whole when the same array was also read: 100 x slower at 100 workers)."""
    return jax.tree_util.tree_map(lambda x, v: jax.lax.dynamic_update_index_in_dim(x, v.astype(x.dtype), i, 0),
                                  stacked, tree)


def after(value, *dependencies):
    """``value`` unchanged, but data-dependent on every leaf of ``dependencies``.

    A rule that reads a row of a stacked ``[N, ...]`` buffer and then writes a row of
    it in place must make the written value depend on what consumed the read; else
    XLA on the CPU cannot order the read first and copies the whole buffer on every
    update (measured: 40 instead of 4,000 updates/s at 100 workers). ``isnan(x) &
    isinf(x)`` is false for every float, but XLA cannot prove it."""
    never = jnp.zeros((), bool)
    for leaf in jax.tree_util.tree_leaves(dependencies):
        probe = leaf.reshape(-1)[0]
        never = never | (jnp.isnan(probe) & jnp.isinf(probe))
    return jax.tree_util.tree_map(lambda v: jnp.where(never, jnp.zeros_like(v), v), value)


def tree_zeros(tree):
    return jax.tree_util.tree_map(jnp.zeros_like, tree)


def tree_scale(tree, s):
    return jax.tree_util.tree_map(lambda x: (x * s).astype(x.dtype), tree)


def tree_where(flag, a, b):
    return jax.tree_util.tree_map(lambda x, y: jnp.where(flag, x, y), a, b)


# ------------------------------------------------------- base optimizer, one or per worker
def base_init(base: optax.GradientTransformation, params, num_workers: int, optimizer_state: str):
    """State of the base optimizer: one on the server, or one per worker."""
    state = base.init(params)
    return tree_stack(state, num_workers) if optimizer_state == "worker" else state


def base_step(base: optax.GradientTransformation, base_state, params, direction, worker, optimizer_state: str):
    """One step of the base optimizer along ``direction``; with ``optimizer_state="worker"``
    only worker ``worker``'s optimizer state (its own momentum) is read and advanced."""
    if optimizer_state == "worker":
        own = tree_row(base_state, worker)
        updates, own = base.update(direction, own, params)
        params = optax.apply_updates(params, updates)
        # the new parameters are an output, so they exist whole before the row is written
        return params, tree_set_row(base_state, worker, after(own, params))
    updates, base_state = base.update(direction, base_state, params)
    return optax.apply_updates(params, updates), base_state
