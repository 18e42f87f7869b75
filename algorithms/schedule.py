"""Compile a trace into the table of fused ops the engine runs, for one way of storing parameters.

Two stores of the parameters workers computed on (``storage``):

- ``"snapshots"``: one row per worker, written at its pull. Consecutive events are fused
  into ops in the order eager push -> apply -> pull; the FIFO cycle "push, apply, pull"
  is one op.
- ``"ring"``: the last K parameter versions (K = ``ring_size(trace)``); a pull only notes
  which version the worker read, and every op is "apply, then store the new version".

``choose_storage`` picks one for ``"auto"``. Both give the same numbers.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

import jax
import numpy as np

from sim.events import APPLY, PULL, PUSH, EventLog, ReplayError


class Column(enum.IntEnum):
    """The op table's columns (``Schedule.ops[:, Column.X]``), -1 where an op has no such
    part; the ``*_ROW`` columns are rows of the parameter store."""

    PUSH_WORKER = 0  # an eager push: the gradient's worker,
    PUSH_SLOT = 1  # the slot it waits in,
    PUSH_STEP = 2  # its minibatch step
    APPLY_SLOT = 3  # an apply: the slot of the gradient (when it was pushed eagerly),
    APPLY_WORKER = 4  # its worker,
    APPLY_STEP = 5  # its minibatch step,
    STALENESS = 6  # its staleness (0 where the op applies nothing)
    PULL_ROW = 7  # the row a pull (or the ring's "store the new version") writes
    PUSH_ROW = 8  # the row an eager push computes its gradient on
    APPLY_ROW = 9  # the row a deferred apply computes its gradient on


class Variant(enum.IntFlag):
    """What an op holds; an op's variant (``Schedule.variant``) is the union of its parts.

    ``PUSH``: an eager push (the gradient is computed now and kept in a slot); ``APPLY``:
    an apply; ``PULL``: a pull; ``DEFERRED``: the applied gradient is computed at apply
    time from its worker's stored parameters (never kept in a slot)."""

    PUSH = 1
    APPLY = 2
    PULL = 4
    DEFERRED = 8


NUM_COLUMNS = len(Column)
STORAGES = ("auto", "snapshots", "ring")
RING_BUDGET_BYTES = 1 << 30
_STAGE = {PUSH: 1, APPLY: 2, PULL: 3}  # the order of events within one op


class Schedule(NamedTuple):
    """A trace compiled into fused ops (see ``compile_schedule``)."""

    ops: np.ndarray  # [M, NUM_COLUMNS] int32, see Column
    variant: np.ndarray  # [M] int: a union of Variant flags
    applied: np.ndarray  # [M] applied gradients after each op
    time: np.ndarray  # [M] sim time of each op's last event
    staleness: np.ndarray  # [U] per applied gradient
    applied_worker: np.ndarray  # [U]
    num_workers: int
    num_slots: int
    needs_slots: bool  # some gradient must be computed before its worker pulls again
    gradients_per_version: int = 1
    storage: str = "snapshots"  # "snapshots": one row per worker; "ring": recent versions
    num_rows: int = 0  # rows of the parameter store


def ring_size(trace) -> int:
    """Rows a ring of recent parameter versions needs for this trace: one more than the
    largest number of applies between a worker's pull and the apply of the gradient
    it computed from it."""
    return EventLog(trace).ring_size


def choose_storage(trace, params, storage: str = "auto") -> str:
    """``storage`` itself, or for ``"auto"`` the ring when it needs at most 2N rows and
    1 GiB, else one snapshot per worker (see ``compile_schedule``)."""
    return _choose(EventLog(trace), params, storage)


def compile_schedule(trace, storage: str = "snapshots") -> Schedule:
    """Compile a trace (a ``sim.Trace`` or a mapping with ``kind``, ``worker``, ``slot``,
    ``time``, ``num_workers``, ``num_slots`` and optionally ``version`` and
    ``gradients_per_version``) into ops.

    ``storage="snapshots"``: the replay keeps one parameter snapshot per worker. A
    gradient's value depends only on its worker's snapshot and minibatch. If the
    worker does not pull again before the gradient is applied (always so under
    ``fifo``, ``whitelist-wait`` and ``barrier``), its snapshot is unchanged at apply
    time, so the gradient is computed there (*deferred*) and never stored. Otherwise
    (``whitelist-queue``, ``buffered``, a restart after a crash) it is computed at its
    push and waits in a slot. Consecutive events are then fused into ops in the order
    eager push -> apply -> pull; the FIFO cycle "push, apply, pull" is one op. A last op
    that applies without a pull pulls too, into its worker's own row (nothing reads the
    store after it), so that it joins the run of ops before it.

    ``storage="ring"``: the replay keeps the last K parameter versions (K =
    ``ring_size(trace)``) and a pull only notes which version the worker read. Every
    gradient is deferred and every op is "apply, then store the new version": one kind
    of op, which ``mode="scan"`` runs as one loop whatever the policy. It pays when K is
    not much larger than N and the policy makes the snapshot ops irregular
    (``whitelist``, ``barrier``, ``buffered``).
    """
    return _compile(EventLog(trace), storage)


def schedule_for(trace, params, storage: str) -> Schedule:
    """Parse ``trace`` once, choose its storage for ``params`` and compile it; a ring gets
    ``ring_rows`` rows (a bucket), so traces of one shape share compilations."""
    log = EventLog(trace)
    chosen = _choose(log, params, storage)
    if chosen != "ring":
        return _compile(log, chosen)
    return _compile_ring(log, ring_rows(log.ring_size, log.num_workers, _row_bytes(params)))


def ring_rows(needed: int, num_workers: int, row_bytes: int = 0) -> int:
    """Rows to give a ring that needs ``needed``: rounded up to a multiple of ceil(N / 2),
    but never above 2N or ``RING_BUDGET_BYTES`` (nor below ``needed``). Any number of rows
    >= ``needed`` gives the same numbers; a shared number lets the seeds of one cluster
    (whose rings need, e.g., 18 or 19 rows for 10 workers) share one compilation."""
    step = max(1, -(-num_workers // 2))
    cap = 2 * num_workers
    if row_bytes > 0:
        cap = min(cap, RING_BUDGET_BYTES // row_bytes)
    return max(needed, min(-(-needed // step) * step, cap))


def _row_bytes(params) -> int:
    return sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(params))


def _applies(log: EventLog) -> np.ndarray:
    return np.flatnonzero(np.asarray(log.kind, dtype=np.int64) == APPLY)


def _choose(log: EventLog, params, storage: str) -> str:
    if storage not in STORAGES:
        raise ReplayError(f"storage: must be one of {', '.join(STORAGES)}, got {storage!r}")
    if storage != "auto":
        return storage
    rows = log.ring_size
    row_bytes = _row_bytes(params)
    fits = rows <= 2 * log.num_workers and rows * row_bytes <= RING_BUDGET_BYTES
    return "ring" if fits else "snapshots"


def _compile(log: EventLog, storage: str) -> Schedule:
    if storage not in ("snapshots", "ring"):
        raise ReplayError(f"storage: must be one of {', '.join(STORAGES)}, got {storage!r}")
    return _compile_ring(log) if storage == "ring" else _compile_snapshots(log)


def _compile_snapshots(log: EventLog) -> Schedule:
    walk = log.walk
    version, origin, step, read, eager = walk.version, walk.origin, walk.step, walk.read, walk.eager
    ops, variants, applied, op_time, staleness, applied_worker = [], [], [], [], [], []
    op, variant, stage, n_applied, last_time = None, 0, 0, 0, 0.0

    def close_op():
        ops.append(op)
        variants.append(variant)
        applied.append(n_applied)
        op_time.append(last_time)

    for i, (k, w, s, t) in enumerate(zip(log.kind, log.worker, log.slot, log.time)):
        if k == PUSH and not eager[i]:
            continue  # deferred: computed when applied
        order = _STAGE[k]
        if op is not None and order <= stage:
            close_op()
            op = None
        if op is None:
            op, variant = [-1] * NUM_COLUMNS, 0
            op[Column.STALENESS] = 0
        stage, last_time = order, t
        if k == PULL:
            op[Column.PULL_ROW] = w
            variant |= Variant.PULL
        elif k == PUSH:
            op[Column.PUSH_WORKER], op[Column.PUSH_SLOT], op[Column.PUSH_STEP], op[Column.PUSH_ROW] = w, s, step[i], w
            variant |= Variant.PUSH
        else:
            tau = version[i] - read[i]
            op[Column.APPLY_SLOT], op[Column.APPLY_WORKER], op[Column.APPLY_STEP] = s, origin[i], step[i]
            op[Column.STALENESS], op[Column.APPLY_ROW] = tau, origin[i]
            variant |= Variant.APPLY | (0 if eager[i] else Variant.DEFERRED)
            staleness.append(tau)
            applied_worker.append(origin[i])
            n_applied += 1
    if op is not None:
        if (variants and variant & Variant.APPLY and not variant & Variant.PULL
                and variants[-1] == variant | Variant.PULL):
            # The last op of a FIFO trace applies without a pull (the run stops there).
            # Nothing reads the store after it, so it may pull too, into its worker's own
            # row: it then joins the run of ops before it instead of compiling a variant.
            op[Column.PULL_ROW] = op[Column.APPLY_ROW]
            variant |= Variant.PULL
        close_op()
    return Schedule(ops=np.asarray(ops, dtype=np.int32).reshape(-1, NUM_COLUMNS),
                    variant=np.asarray(variants, dtype=np.int32), applied=np.asarray(applied, dtype=np.int64),
                    time=np.asarray(op_time, dtype=np.float64), staleness=np.asarray(staleness, dtype=np.int64),
                    applied_worker=np.asarray(applied_worker, dtype=np.int64), num_workers=log.num_workers,
                    num_slots=log.num_slots, needs_slots=any(eager), gradients_per_version=log.gradients_per_version,
                    storage="snapshots", num_rows=log.num_workers)


def _compile_ring(log: EventLog, rows: int | None = None) -> Schedule:
    """One op per apply; row ``a % K`` holds the parameters after ``a`` applies (row 0:
    the initial parameters). K = ``rows``, at least ``ring_size``, which it defaults to."""
    needed = log.ring_size
    if rows is None:
        rows = needed
    elif rows < needed:
        raise ReplayError(f"ring: {rows} rows, but this trace needs {needed}")
    at = _applies(log)
    column = lambda values, dtype=np.int64: np.asarray(values, dtype=dtype)[at]  # noqa: E731
    worker, staleness = column(log.walk.origin), column(log.walk.version) - column(log.walk.read)
    ops = np.full((len(at), NUM_COLUMNS), -1, dtype=np.int32)
    ops[:, Column.APPLY_SLOT], ops[:, Column.APPLY_WORKER] = column(log.slot), worker
    ops[:, Column.APPLY_STEP], ops[:, Column.STALENESS] = column(log.walk.step), staleness
    ops[:, Column.APPLY_ROW] = column(log.walk.read_applies) % rows
    ops[:, Column.PULL_ROW] = np.arange(1, len(at) + 1) % rows
    return Schedule(ops=ops, variant=np.full(len(at), Variant.APPLY | Variant.DEFERRED | Variant.PULL, dtype=np.int32),
                    applied=np.arange(1, len(at) + 1, dtype=np.int64), time=column(log.time, np.float64),
                    staleness=staleness, applied_worker=worker, num_workers=log.num_workers,
                    num_slots=log.num_slots, needs_slots=False, gradients_per_version=log.gradients_per_version,
                    storage="ring", num_rows=rows)
