"""Run a schedule's ops on a carried state: one jitted call per op, or one compiled loop over a run of them.

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
    """Jitted op functions, built lazily, per variant: one step (one op per call) and one
    loop over any range of consecutive ops of that variant (a ``lax.fori_loop`` whose
    bounds are arguments, so one compilation serves every run length and every trace)."""

    def __init__(self, rule, loss_fn, batch_fn, vmapped: bool):
        self.rule, self.batch_fn, self.vmapped = rule, batch_fn, vmapped
        self.grad_fn = jax.grad(loss_fn)
        self.steps: dict[int, Callable] = {}
        self.loops: dict[int, Callable] = {}

    def _wrap(self, fn, unbatched: int):
        if self.vmapped:  # the carry and the seed are batched; op indices, ops and data are shared
            fn = jax.vmap(fn, in_axes=(0,) + (None,) * unbatched + (0, None, None))
        return jax.jit(fn, donate_argnums=0)

    def step(self, variant: int):
        if variant not in self.steps:
            run_op = _op_function(variant, self.rule, self.grad_fn, self.batch_fn)
            self.steps[variant] = self._wrap(lambda carry, i, seed, ops, data: run_op(carry, ops[i], seed, data), 1)
        return self.steps[variant]

    def loop(self, variant: int):
        """Ops ``start`` to ``stop - 1`` (all of this variant) in one call. (A ``lax.switch``
        over mixed variants inside the loop was measured 2-3x slower on the CPU: the
        conditional copies the carry, snapshots included.)"""
        if variant not in self.loops:
            run_op = _op_function(variant, self.rule, self.grad_fn, self.batch_fn)

            def run_ops(carry, start, stop, seed, ops, data):
                return jax.lax.fori_loop(start, stop, lambda i, c: run_op(c, ops[i], seed, data), carry)
            self.loops[variant] = self._wrap(run_ops, 2)
        return self.loops[variant]

    def init_carry(self, schedule: Schedule, params0) -> Carry:
        """The starting state for ``params0`` (stacked ``[R, ...]`` when vmapped); a copy,
        since each call donates the carry. Every row of the store holds ``params0``."""
        rule = self.rule
        rows = schedule.num_rows

        def fresh_carry(p):
            state = rule.init(p, schedule.num_workers)
            zeros = jax.tree_util.tree_map(jnp.zeros_like, p)
            pending = tree_stack(zeros, schedule.num_slots) if schedule.needs_slots else ()
            backups = tree_stack(zeros, schedule.num_slots) if schedule.needs_slots and rule.uses_backup else ()
            return Carry(p, state, tree_stack(p, rows), pending, backups)

        params0 = jax.tree_util.tree_map(lambda x: jnp.array(x, copy=True), params0)
        return jax.vmap(fresh_carry)(params0) if self.vmapped else fresh_carry(params0)


OPS_BUCKET = 4096  # the op table is padded to a multiple of this many rows


def padded_length(num_ops: int) -> int:
    """Rows of the op table on the device: ``num_ops`` rounded up to a multiple of
    ``OPS_BUCKET``, so traces of one shape (seeds, policies) share compilations."""
    return max(1, -(-num_ops // OPS_BUCKET)) * OPS_BUCKET


class Program(NamedTuple):
    """A schedule's ops on the device (padded, see ``padded_length``), and where each run
    of one variant ends."""

    ops: Any  # [padded_length(M), NUM_COLUMNS] device array; rows past M are never run
    variant: np.ndarray
    run_end: np.ndarray

    @classmethod
    def of(cls, schedule: Schedule) -> "Program":
        variant, ops = schedule.variant.copy(), schedule.ops
        padded = np.full((padded_length(len(ops)), ops.shape[1]), -1, dtype=ops.dtype)
        padded[:len(ops)] = ops
        # The last op of a FIFO trace applies without a pull (the run stops there). Nothing
        # reads the store after it, so it may pull too, into its worker's own row: it then
        # joins the run before it instead of compiling a variant of its own.
        if len(variant) > 1 and variant[-1] & HAS_APPLY and variant[-2] == variant[-1] | HAS_PULL:
            variant[-1] |= HAS_PULL
            padded[len(ops) - 1, PULL_ROW] = max(0, int(padded[len(ops) - 1, APPLY_ROW]))
        return cls(jnp.asarray(padded), variant, np.append(np.flatnonzero(np.diff(variant)) + 1, len(variant)))


def advance(engine: Engine, carry: Carry, program: Program, start: int, stop: int, seed, data, mode: str,
            chunk: int | None = None) -> Carry:
    """Run ops ``start`` to ``stop - 1``: per run of one variant, one loop call
    (``mode="scan"``; at most ``chunk`` ops per call when given) or one jitted call per
    op (``mode="loop"``)."""
    ops, variant, run_end = program
    i = start
    while i < stop:
        v = int(variant[i])
        end = min(int(run_end[np.searchsorted(run_end, i, side="right")]), stop)
        if mode == "scan":
            loop = engine.loop(v)
            while i < end:
                j = end if chunk is None else min(end, i + chunk)
                carry = loop(carry, i, j, seed, ops, data)
                i = j
        else:
            step = engine.step(v)
            while i < end:
                carry = step(carry, i, seed, ops, data)
                i += 1
    return carry


_ENGINES: dict = {}
_MAX_ENGINES = 32


def engine_for(rule, loss_fn, batch_fn, vmapped: bool) -> Engine:
    """The engine for these functions, reused across calls so a replay with the same
    rule object, loss and batch functions compiles nothing new (``scenarios.runner``
    keeps one rule object per algorithm, base and hyperparameters for this)."""
    key = (rule, loss_fn, batch_fn, vmapped)
    if key not in _ENGINES:
        if len(_ENGINES) >= _MAX_ENGINES:
            _ENGINES.pop(next(iter(_ENGINES)))
        _ENGINES[key] = Engine(rule, loss_fn, batch_fn, vmapped)
    return _ENGINES[key]
