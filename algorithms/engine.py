"""Run a schedule's ops on a carried state: one jitted call per op, or a ``lax.scan`` over a run of them.

The values each op gives its events (see ``algorithms.schedule`` for the ops):

- PULL w:        ``stored[row] = params``
- PUSH w, slot:  ``pending[slot] = grad(loss_fn)(stored[row], batch_fn(data, seed, w, step_w))``;
                 the stored parameters are kept as the gradient's backup
- APPLY slot:    ``params, state = rule.update(state, params, gradient, worker=..,
                 staleness=.., backup=..)``, the gradient computed now (deferred) or
                 taken from its slot

The stored parameters are one stacked pytree ``[rows, ...]``, updated in place (the
carry is donated). With ``vmapped`` the carry holds R seeds, batched.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .base import Rule, after, tree_row, tree_set_row, tree_stack
from .schedule import (APPLY_ROW, APPLY_SLOT, APPLY_STEP, APPLY_WORKER, DEFERRED, HAS_APPLY, HAS_PULL, HAS_PUSH,
                       PULL_ROW, PUSH_ROW, PUSH_SLOT, PUSH_STEP, PUSH_WORKER, STALENESS, Schedule)

MODES = ("loop", "scan")


class Carry(NamedTuple):
    params: Any
    rule_state: Any
    snapshots: Any  # [rows, ...] the stored parameters workers compute on
    pending: Any  # [S, ...] gradients waiting in slots, () if never needed
    backups: Any  # [S, ...] parameters those gradients were computed on, () if not needed


def _op_function(variant: int, rule: Rule, grad_fn, batch_fn):
    """The body of one op, specialised to what it holds (see ``compile_schedule``)."""
    has_push, has_apply, has_pull, deferred = (bool(variant & f) for f in (HAS_PUSH, HAS_APPLY, HAS_PULL, DEFERRED))

    def run_op(carry: Carry, op, seed, data) -> Carry:
        params, rule_state, snapshots, pending, backups = carry
        snapshot_reads = []  # what consumed a snapshot row: the pull's write must wait for it
        if has_push:  # eager: its worker pulls again before it is applied
            snapshot = tree_row(snapshots, op[PUSH_ROW])
            grad = grad_fn(snapshot, batch_fn(data, seed, op[PUSH_WORKER], op[PUSH_STEP]))
            pending = tree_set_row(pending, op[PUSH_SLOT], grad)
            snapshot_reads.append(grad)
            if rule.uses_backup:
                backups = tree_set_row(backups, op[PUSH_SLOT], snapshot)
                snapshot_reads.append(backups)
        if has_apply:
            if deferred:  # the worker's snapshot is still what it computed on
                backup = tree_row(snapshots, op[APPLY_ROW])
                grad = grad_fn(backup, batch_fn(data, seed, op[APPLY_WORKER], op[APPLY_STEP]))
                snapshot_reads.append(grad)
            else:
                grad = tree_row(pending, op[APPLY_SLOT])
                backup = tree_row(backups, op[APPLY_SLOT]) if rule.uses_backup else params
            params, rule_state = rule.update(rule_state, params, grad, worker=op[APPLY_WORKER],
                                             staleness=op[STALENESS], backup=backup)
        if has_pull:
            snapshots = tree_set_row(snapshots, op[PULL_ROW], after(params, snapshot_reads))
        return Carry(params, rule_state, snapshots, pending, backups)

    return run_op


class Engine:
    """Jitted op functions, built lazily: per variant, one step and one ``lax.scan``
    over a chunk of consecutive ops of that variant."""

    def __init__(self, rule, loss_fn, batch_fn, vmapped: bool, chunk: int):
        self.rule, self.batch_fn, self.vmapped, self.chunk = rule, batch_fn, vmapped, chunk
        self.grad_fn = jax.grad(loss_fn)
        self.steps: dict[int, Callable] = {}
        self.scans: dict[int, Callable] = {}

    def _wrap(self, fn):
        if self.vmapped:
            fn = jax.vmap(fn, in_axes=(0, None, 0, None, None))
        return jax.jit(fn, donate_argnums=0)

    def step(self, variant: int):
        if variant not in self.steps:
            run_op = _op_function(variant, self.rule, self.grad_fn, self.batch_fn)
            self.steps[variant] = self._wrap(lambda carry, i, seed, ops, data: run_op(carry, ops[i], seed, data))
        return self.steps[variant]

    def scan(self, variant: int):
        """``lax.scan`` over ``chunk`` consecutive ops of one variant. (A ``lax.switch``
        over mixed variants inside the scan was measured 2-3x slower on the CPU: the
        conditional copies the carry, snapshots included.)"""
        if variant not in self.scans:
            run_op = _op_function(variant, self.rule, self.grad_fn, self.batch_fn)
            chunk = self.chunk

            def run_chunk(carry, start, seed, ops, data):
                rows = jax.lax.dynamic_slice_in_dim(ops, start, chunk)
                return jax.lax.scan(lambda c, op: (run_op(c, op, seed, data), None), carry, rows)[0]
            self.scans[variant] = self._wrap(run_chunk)
        return self.scans[variant]

    def init_carry(self, schedule: Schedule, params0) -> Carry:
        """The starting state for ``params0`` (stacked ``[R, ...]`` when vmapped); a copy,
        since each call donates the carry."""
        rule = self.rule

        def fresh_carry(p):
            state = rule.init(p, schedule.num_workers)
            zeros = jax.tree_util.tree_map(jnp.zeros_like, p)
            pending = tree_stack(zeros, schedule.num_slots) if schedule.needs_slots else ()
            backups = tree_stack(zeros, schedule.num_slots) if schedule.needs_slots and rule.uses_backup else ()
            return Carry(p, state, tree_stack(p, schedule.num_rows), pending, backups)

        params0 = jax.tree_util.tree_map(lambda x: jnp.array(x, copy=True), params0)
        return jax.vmap(fresh_carry)(params0) if self.vmapped else fresh_carry(params0)


class Program(NamedTuple):
    """A schedule's ops on the device, and where each run of one variant ends."""

    ops: Any  # [M, NUM_COLUMNS] device array
    variant: np.ndarray
    run_end: np.ndarray

    @classmethod
    def of(cls, schedule: Schedule) -> "Program":
        variant = schedule.variant
        return cls(jnp.asarray(schedule.ops), variant, np.append(np.flatnonzero(np.diff(variant)) + 1, len(variant)))


def advance(engine: Engine, carry: Carry, program: Program, start: int, stop: int, seed, data, mode: str) -> Carry:
    """Run ops ``start`` to ``stop - 1``: per run of one variant, ``lax.scan`` over whole
    chunks (``mode="scan"``), then one jitted call per remaining op."""
    ops, variant, run_end = program
    i = start
    while i < stop:
        v = int(variant[i])
        end = min(int(run_end[np.searchsorted(run_end, i, side="right")]), stop)
        if mode == "scan":
            while end - i >= engine.chunk:
                carry = engine.scan(v)(carry, i, seed, ops, data)
                i += engine.chunk
        step = engine.step(v)
        while i < end:
            carry = step(carry, i, seed, ops, data)
            i += 1
    return carry


_ENGINES: dict = {}
_MAX_ENGINES = 16


def engine_for(rule, loss_fn, batch_fn, vmapped: bool, chunk: int) -> Engine:
    """The engine for these functions, reused across calls so a replay with the same
    rule object, loss and batch functions compiles nothing new."""
    key = (rule, loss_fn, batch_fn, vmapped, chunk)
    if key not in _ENGINES:
        if len(_ENGINES) >= _MAX_ENGINES:
            _ENGINES.pop(next(iter(_ENGINES)))
        _ENGINES[key] = Engine(rule, loss_fn, batch_fn, vmapped, chunk)
    return _ENGINES[key]
