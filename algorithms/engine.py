"""Run a schedule's ops on a carried state: one jitted call per op, or one compiled loop over a run of them.

The values each op gives its events (see ``algorithms.schedule`` for the ops):

- PULL w:        ``stored[row] = params``
- PUSH w, slot:  ``pending[slot] = grad(loss_fn)(stored[row], batch_fn(data, seed, w, step_w))``;
                 the stored parameters are kept as the gradient's backup
- APPLY slot:    ``params, state = rule.update(state, params, gradient, worker=..,
                 staleness=.., backup=..)``, the gradient computed now (deferred) or
                 taken from its slot

The stored parameters are one stacked pytree ``[rows, ...]``: ``Carry.snapshots`` (one
row per worker) or ``Carry.ring`` (recent versions), as the schedule's storage says,
updated in place (the carry is donated). With ``vmapped`` the carry holds R seeds,
batched.

The two modes of ``advance`` name what they call: ``"loop"`` is a Python loop of
``Engine.call_per_op`` calls, one jitted call per op; ``"scan"`` runs each run of ops
of one variant with ``Engine.scan``, one compiled ``lax.fori_loop``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .base import Rule, after, tree_row, tree_set_row, tree_stack
from .schedule import Column, Schedule, Variant

MODES = ("loop", "scan")


class Carry(NamedTuple):
    params: Any
    rule_state: Any
    snapshots: Any  # [N, ...] the parameters each worker last pulled ("snapshots" storage), else ()
    ring: Any  # [K, ...] the last K parameter versions ("ring" storage), else ()
    pending: Any  # [S, ...] gradients waiting in slots, () if never needed
    backups: Any  # [S, ...] parameters those gradients were computed on, () if not needed


def _op_function(storage: str, variant: int, rule: Rule, grad_fn, batch_fn):
    """The body of one op, specialised to its storage and to what it holds (see ``compile_schedule``)."""
    has_push, has_apply, has_pull, deferred = (
        bool(variant & part) for part in (Variant.PUSH, Variant.APPLY, Variant.PULL, Variant.DEFERRED))
    store_field = "ring" if storage == "ring" else "snapshots"

    def run_op(carry: Carry, op, seed, data) -> Carry:
        params, rule_state, pending, backups = carry.params, carry.rule_state, carry.pending, carry.backups
        stored = getattr(carry, store_field)
        stored_reads = []  # what consumed a stored row: the pull's write must wait for it
        if has_push:  # eager: its worker pulls again before it is applied
            snapshot = tree_row(stored, op[Column.PUSH_ROW])
            grad = grad_fn(snapshot, batch_fn(data, seed, op[Column.PUSH_WORKER], op[Column.PUSH_STEP]))
            pending = tree_set_row(pending, op[Column.PUSH_SLOT], grad)
            stored_reads.append(grad)
            if rule.uses_backup:
                backups = tree_set_row(backups, op[Column.PUSH_SLOT], snapshot)
                stored_reads.append(backups)
        if has_apply:
            if deferred:  # the stored row is still what the worker computed on
                backup = tree_row(stored, op[Column.APPLY_ROW])
                grad = grad_fn(backup, batch_fn(data, seed, op[Column.APPLY_WORKER], op[Column.APPLY_STEP]))
                stored_reads.append(grad)
            else:
                grad = tree_row(pending, op[Column.APPLY_SLOT])
                backup = tree_row(backups, op[Column.APPLY_SLOT]) if rule.uses_backup else params
            params, rule_state = rule.update(rule_state, params, grad, worker=op[Column.APPLY_WORKER],
                                             staleness=op[Column.STALENESS], backup=backup)
        if has_pull:
            stored = tree_set_row(stored, op[Column.PULL_ROW], after(params, stored_reads))
        return carry._replace(params=params, rule_state=rule_state, pending=pending, backups=backups,
                              **{store_field: stored})

    return run_op


class Engine:
    """Jitted op functions, built on first use, per storage and variant: ``call_per_op``
    (one op per call) and ``scan`` (any range of consecutive ops of that variant in one
    ``lax.fori_loop`` whose bounds are arguments, so one compilation serves every run
    length and every trace)."""

    def __init__(self, rule, loss_fn, batch_fn, vmapped: bool):
        self.rule, self.batch_fn, self.vmapped = rule, batch_fn, vmapped
        self.grad_fn = jax.grad(loss_fn)
        self.per_op_calls: dict[tuple[str, int], Callable] = {}
        self.scans: dict[tuple[str, int], Callable] = {}

    def _jit(self, fn, unbatched: int):
        if self.vmapped:  # the carry and the seed are batched; op indices, ops and data are shared
            fn = jax.vmap(fn, in_axes=(0,) + (None,) * unbatched + (0, None, None))
        return jax.jit(fn, donate_argnums=0)

    def call_per_op(self, storage: str, variant: int) -> Callable:
        """``f(carry, i, seed, ops, data)``: op ``i`` (of this storage and variant), one jitted call."""
        key = (storage, variant)
        if key not in self.per_op_calls:
            run_op = _op_function(storage, variant, self.rule, self.grad_fn, self.batch_fn)
            self.per_op_calls[key] = self._jit(lambda carry, i, seed, ops, data: run_op(carry, ops[i], seed, data), 1)
        return self.per_op_calls[key]

    def scan(self, storage: str, variant: int) -> Callable:
        """``f(carry, start, stop, seed, ops, data)``: ops ``start`` to ``stop - 1`` (all of this
        storage and variant) in one call. (A ``lax.switch`` over mixed variants inside the loop
        was measured 2-3x slower on the CPU: the conditional copies the carry, the store included.)"""
        key = (storage, variant)
        if key not in self.scans:
            run_op = _op_function(storage, variant, self.rule, self.grad_fn, self.batch_fn)

            def run_ops(carry, start, stop, seed, ops, data):
                return jax.lax.fori_loop(start, stop, lambda i, c: run_op(c, ops[i], seed, data), carry)
            self.scans[key] = self._jit(run_ops, 2)
        return self.scans[key]

    def init_carry(self, schedule: Schedule, params0) -> Carry:
        """The starting state for ``params0`` (stacked ``[R, ...]`` when vmapped); a copy,
        since each call donates the carry. Every row of the store holds ``params0``."""
        rule = self.rule
        rows = schedule.num_rows
        ring = schedule.storage == "ring"

        def fresh_carry(p):
            state = rule.init(p, schedule.num_workers)
            zeros = jax.tree_util.tree_map(jnp.zeros_like, p)
            pending = tree_stack(zeros, schedule.num_slots) if schedule.needs_slots else ()
            backups = tree_stack(zeros, schedule.num_slots) if schedule.needs_slots and rule.uses_backup else ()
            stored = tree_stack(p, rows)
            return Carry(p, state, snapshots=() if ring else stored, ring=stored if ring else (), pending=pending,
                         backups=backups)

        params0 = jax.tree_util.tree_map(lambda x: jnp.array(x, copy=True), params0)
        return jax.vmap(fresh_carry)(params0) if self.vmapped else fresh_carry(params0)


OPS_BUCKET = 4096  # the op table is padded to a multiple of this many rows


def padded_length(num_ops: int) -> int:
    """Rows of the op table on the device: ``num_ops`` rounded up to a multiple of
    ``OPS_BUCKET``, so traces of one shape (seeds, policies) share compilations."""
    return max(1, -(-num_ops // OPS_BUCKET)) * OPS_BUCKET


class Program(NamedTuple):
    """A schedule's ops on the device (padded, see ``padded_length``), its storage, and
    where each run of one variant ends."""

    ops: Any  # [padded_length(M), NUM_COLUMNS] device array; rows past M are never run
    variant: np.ndarray
    run_end: np.ndarray
    storage: str

    @classmethod
    def of(cls, schedule: Schedule) -> "Program":
        ops, variant = schedule.ops, schedule.variant
        padded = np.full((padded_length(len(ops)), ops.shape[1]), -1, dtype=ops.dtype)
        padded[:len(ops)] = ops
        return cls(jnp.asarray(padded), variant, np.append(np.flatnonzero(np.diff(variant)) + 1, len(variant)),
                   schedule.storage)


def advance(engine: Engine, carry: Carry, program: Program, *, start: int, stop: int, seed, data, mode: str,
            chunk: int | None = None) -> Carry:
    """Run ops ``start`` to ``stop - 1``: per run of one variant, one ``Engine.scan`` call
    (``mode="scan"``; at most ``chunk`` ops per call when given) or one
    ``Engine.call_per_op`` call per op (``mode="loop"``)."""
    ops, variant, run_end, storage = program
    i = start
    while i < stop:
        v = int(variant[i])
        end = min(int(run_end[np.searchsorted(run_end, i, side="right")]), stop)
        if mode == "scan":
            scan = engine.scan(storage, v)
            while i < end:
                j = end if chunk is None else min(end, i + chunk)
                carry = scan(carry, i, j, seed, ops, data)
                i = j
        else:
            call = engine.call_per_op(storage, v)
            while i < end:
                carry = call(carry, i, seed, ops, data)
                i += 1
    return carry


@functools.lru_cache(maxsize=32)
def engine_for(rule: Rule, loss_fn, batch_fn, vmapped: bool) -> Engine:
    """The engine for this rule, loss and batch functions, reused across calls so that a
    replay with an equal rule and the same functions compiles nothing new (the registry
    builds one rule per algorithm, base and hyperparameters' values: ``Algorithm.rule``)."""
    return Engine(rule, loss_fn, batch_fn, vmapped)
