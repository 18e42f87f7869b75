"""Replay a server log (a trace) with a server rule: the values half of stalesim.

The trace says, in server order, who pulled, who pushed into which pending slot, and
which slot was applied. The replay gives each event its values:

- PULL w:        ``snapshots[w] = params``
- PUSH w, slot:  ``pending[slot] = grad(loss_fn)(snapshots[w], batch_fn(data, seed, w, step_w))``;
                 ``step_w += 1``; the worker's snapshot is kept as the gradient's backup
- APPLY slot:    ``params, state = rule.update(state, params, pending[slot], worker=..,
                 staleness=.., backup=..)``

Consecutive events that fit the order push -> apply -> pull are fused into one op (the
common FIFO cycle "push, apply at once, pull" is one op, and its gradient never touches
a slot), and each op is one jitted call, or a ``lax.scan`` over a run of identical ops
(``mode="scan"``). The worker snapshots are one stacked pytree ``[N, ...]``, updated in
place (the carry is donated). ``replay_seeds`` runs R seeds over one trace in one call,
``vmap``-ed or as a loop.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .base import Rule, after, tree_row, tree_set_row, tree_stack

# event kinds, as in sim.trace (algorithms does not import sim; a test checks they agree)
PULL, PUSH, APPLY = 0, 1, 2
MODES = ("loop", "scan")
# columns of the op table; *_ROW are rows of the parameter store (see ``compile_schedule``)
(PUSH_WORKER, PUSH_SLOT, PUSH_STEP, APPLY_SLOT, APPLY_WORKER, APPLY_STEP, STALENESS, PULL_ROW, PUSH_ROW,
 APPLY_ROW) = range(10)
NUM_COLUMNS = 10
STORAGES = ("auto", "snapshots", "ring")
# what an op holds: an eager push (gradient computed now, kept in a slot), an apply, a pull;
# DEFERRED: the applied gradient is computed at apply time from its worker's snapshot
HAS_PUSH, HAS_APPLY, HAS_PULL, DEFERRED = 1, 2, 4, 8


class ReplayError(ValueError):
    """The trace and the rule or arguments do not fit together."""


class Schedule(NamedTuple):
    """A trace compiled into fused ops (see ``compile_schedule``)."""

    ops: np.ndarray  # [M, NUM_COLUMNS] int32
    variant: np.ndarray  # [M] int: HAS_PUSH | HAS_APPLY | HAS_PULL | DEFERRED
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


def _arrays(trace) -> dict:
    if isinstance(trace, Mapping):
        return dict(trace)
    if hasattr(trace, "arrays"):
        return trace.arrays()
    raise ReplayError(f"trace: expected a sim.Trace or a mapping of arrays, got {type(trace).__name__}")


def _events(trace) -> dict:
    arrays = _arrays(trace)
    for key in ("kind", "worker", "slot", "time", "num_workers", "num_slots"):
        if key not in arrays:
            raise ReplayError(f"trace: missing {key!r}")
    return {"kind": np.asarray(arrays["kind"]).tolist(), "worker": np.asarray(arrays["worker"]).tolist(),
            "slot": np.asarray(arrays["slot"]).tolist(),
            "time": np.asarray(arrays["time"], dtype=np.float64).tolist(),
            "num_workers": int(arrays["num_workers"]), "num_slots": max(int(arrays["num_slots"]), 1),
            "per_version": int(arrays.get("gradients_per_version", 1)),
            "versions": np.asarray(arrays["version"]).tolist() if "version" in arrays else None}


class _VersionClock:
    """The server version at each event: the trace's record, or else counted (one
    version per ``gradients_per_version`` applies)."""

    def __init__(self, ev: dict):
        self.recorded, self.per_version = ev["versions"], ev["per_version"]
        self.version, self.in_version = 0, 0

    def at(self, i: int) -> int:
        return self.recorded[i] if self.recorded is not None else self.version

    def applied(self) -> None:
        self.in_version += 1
        if self.in_version == self.per_version:
            self.version, self.in_version = self.version + 1, 0


def ring_size(trace) -> int:
    """Rows a ring of recent parameter versions needs for this trace: one more than the
    largest number of applies between a worker's pull and the apply of the gradient
    it computed from it."""
    return _ring_size(_events(trace))


def _ring_size(ev: dict) -> int:
    if "ring_size" not in ev:  # computed once per parsed trace: choosing and compiling both need it
        ev["ring_size"] = _count_ring_size(ev)
    return ev["ring_size"]


def _count_ring_size(ev: dict) -> int:
    mark, slot_mark, applies, size = [0] * ev["num_workers"], [0] * ev["num_slots"], 0, 1
    for k, w, s in zip(ev["kind"], ev["worker"], ev["slot"]):
        if k == PULL:
            mark[w] = applies
        elif k == PUSH:
            slot_mark[s] = mark[w]
        else:
            size = max(size, applies - slot_mark[s] + 1)
            applies += 1
    return size


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
    eager push -> apply -> pull; the FIFO cycle "push, apply, pull" is one op.

    ``storage="ring"``: the replay keeps the last K parameter versions (K =
    ``ring_size(trace)``) and a pull only notes which version the worker read. Every
    gradient is deferred and every op is "apply, then store the new version": one kind
    of op, which ``mode="scan"`` runs in chunks whatever the policy. It pays when K is
    not much larger than N and the policy makes the snapshot ops irregular
    (``whitelist``, ``barrier``, ``buffered``).
    """
    return _compile(_events(trace), storage)


def _compile(ev: dict, storage: str) -> Schedule:
    if storage not in ("snapshots", "ring"):
        raise ReplayError(f"storage: must be one of {', '.join(STORAGES)}, got {storage!r}")
    if storage == "ring":
        return _compile_ring(ev)
    kind, worker, slot, times = ev["kind"], ev["worker"], ev["slot"], ev["time"]
    num_workers, num_slots, per_version = ev["num_workers"], ev["num_slots"], ev["per_version"]
    clock = _VersionClock(ev)

    # pass 1: which pushes must be computed eagerly (their worker pulls before the apply)
    eager = [False] * len(kind)
    pending_of_worker: list[list[int]] = [[] for _ in range(num_workers)]  # push rows not yet applied
    push_row_of_slot = [-1] * num_slots
    for i, (k, w, s) in enumerate(zip(kind, worker, slot)):
        if k == PUSH:
            pending_of_worker[w].append(i)
            push_row_of_slot[s] = i
        elif k == APPLY:
            row = push_row_of_slot[s]
            pending_of_worker[worker[row]].remove(row)
        elif pending_of_worker[w]:
            for row in pending_of_worker[w]:
                eager[row] = True

    # pass 2: fuse into ops
    read_version = [0] * num_workers
    slot_read, slot_worker, slot_step, slot_eager = [0] * num_slots, [0] * num_slots, [0] * num_slots, [False] * num_slots
    steps = [0] * num_workers
    ops, variants, applied, op_time, staleness, applied_worker = [], [], [], [], [], []
    op, variant, stage, n_applied, last_time = None, 0, 0, 0, 0.0
    for i, (k, w, s) in enumerate(zip(kind, worker, slot)):
        if k == PUSH:
            slot_read[s], slot_worker[s], slot_step[s], slot_eager[s] = read_version[w], w, steps[w], eager[i]
            steps[w] += 1
            if not eager[i]:
                continue  # deferred: computed when applied
        order = {PUSH: 1, APPLY: 2, PULL: 3}[k]
        if op is not None and order <= stage:
            ops.append(op), variants.append(variant), applied.append(n_applied), op_time.append(last_time)
            op = None
        if op is None:
            op, variant = [-1] * NUM_COLUMNS, 0
            op[STALENESS] = 0
        stage, last_time = order, times[i]
        if k == PULL:
            op[PULL_ROW] = w
            variant |= HAS_PULL
            read_version[w] = clock.at(i)
        elif k == PUSH:
            op[PUSH_WORKER], op[PUSH_SLOT], op[PUSH_STEP], op[PUSH_ROW] = w, s, slot_step[s], w
            variant |= HAS_PUSH
        else:
            tau = clock.at(i) - slot_read[s]
            op[APPLY_SLOT], op[APPLY_WORKER], op[APPLY_STEP], op[STALENESS] = s, slot_worker[s], slot_step[s], tau
            op[APPLY_ROW] = slot_worker[s]
            variant |= HAS_APPLY | (0 if slot_eager[s] else DEFERRED)
            staleness.append(tau)
            applied_worker.append(slot_worker[s])
            n_applied += 1
            clock.applied()
    if op is not None:
        ops.append(op), variants.append(variant), applied.append(n_applied), op_time.append(last_time)
    return Schedule(ops=np.asarray(ops, dtype=np.int32).reshape(-1, NUM_COLUMNS),
                    variant=np.asarray(variants, dtype=np.int32), applied=np.asarray(applied, dtype=np.int64),
                    time=np.asarray(op_time, dtype=np.float64), staleness=np.asarray(staleness, dtype=np.int64),
                    applied_worker=np.asarray(applied_worker, dtype=np.int64), num_workers=num_workers,
                    num_slots=num_slots, needs_slots=any(eager), gradients_per_version=per_version,
                    storage="snapshots", num_rows=num_workers)


def _compile_ring(ev: dict) -> Schedule:
    """``storage="ring"``: one op per apply; row ``a % K`` holds the parameters after
    ``a`` applies (row 0: the initial parameters)."""
    kind, worker, slot, times = ev["kind"], ev["worker"], ev["slot"], ev["time"]
    num_workers, num_slots, per_version = ev["num_workers"], ev["num_slots"], ev["per_version"]
    clock = _VersionClock(ev)
    rows = _ring_size(ev)
    mark, read_version = [0] * num_workers, [0] * num_workers  # applies and version at each worker's pull
    slot_mark, slot_read, slot_worker, slot_step = ([0] * num_slots for _ in range(4))
    steps = [0] * num_workers
    ops, staleness, applied_worker, op_time = [], [], [], []
    applies = 0
    for i, (k, w, s) in enumerate(zip(kind, worker, slot)):
        if k == PULL:
            mark[w] = applies
            read_version[w] = clock.at(i)
        elif k == PUSH:
            slot_mark[s], slot_read[s], slot_worker[s], slot_step[s] = mark[w], read_version[w], w, steps[w]
            steps[w] += 1
        else:
            tau = clock.at(i) - slot_read[s]
            op = [-1] * NUM_COLUMNS
            op[APPLY_SLOT], op[APPLY_WORKER], op[APPLY_STEP], op[STALENESS] = s, slot_worker[s], slot_step[s], tau
            op[APPLY_ROW], op[PULL_ROW] = slot_mark[s] % rows, (applies + 1) % rows
            ops.append(op)
            op_time.append(times[i])
            staleness.append(tau)
            applied_worker.append(slot_worker[s])
            applies += 1
            clock.applied()
    return Schedule(ops=np.asarray(ops, dtype=np.int32).reshape(-1, NUM_COLUMNS),
                    variant=np.full(len(ops), HAS_APPLY | DEFERRED | HAS_PULL, dtype=np.int32),
                    applied=np.arange(1, len(ops) + 1, dtype=np.int64), time=np.asarray(op_time, dtype=np.float64),
                    staleness=np.asarray(staleness, dtype=np.int64),
                    applied_worker=np.asarray(applied_worker, dtype=np.int64), num_workers=num_workers,
                    num_slots=num_slots, needs_slots=False, gradients_per_version=per_version, storage="ring",
                    num_rows=rows)


@dataclass
class History:
    """What a replay measured. Evaluations: ``update`` (applied gradients so far),
    ``sim_time``, ``loss``, ``accuracy``. Per applied gradient: ``staleness`` and
    ``worker``. A run whose loss became NaN or inf stops at ``diverged_at`` (the update
    index of the first non-finite evaluation); its evaluations end at the last finite one."""

    update: np.ndarray
    sim_time: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    staleness: np.ndarray
    worker: np.ndarray
    diverged: bool = False
    diverged_at: int | None = None
    wall_time: float = 0.0
    updates_replayed: int = 0
    params: Any = field(default=None, repr=False)

    def to_records(self) -> list[dict]:
        return [{"update": int(u), "sim_time": float(t), "loss": float(l), "accuracy": float(a)}
                for u, t, l, a in zip(self.update, self.sim_time, self.loss, self.accuracy)]


class _Carry(NamedTuple):
    params: Any
    rule_state: Any
    snapshots: Any  # [N, ...]
    pending: Any  # [S, ...] gradients waiting in slots, () if never needed
    backups: Any  # [S, ...] parameters those gradients were computed on, () if not needed


def _op_function(variant: int, rule: Rule, grad_fn, batch_fn):
    """The body of one op, specialised to what it holds (see ``compile_schedule``)."""
    has_push, has_apply, has_pull, deferred = (bool(variant & f) for f in (HAS_PUSH, HAS_APPLY, HAS_PULL, DEFERRED))

    def run_op(carry: _Carry, op, seed, data) -> _Carry:
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
        return _Carry(params, rule_state, snapshots, pending, backups)

    return run_op


class _Engine:
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


_ENGINES: dict = {}
_MAX_ENGINES = 16


def _engine(rule, loss_fn, batch_fn, vmapped, chunk) -> _Engine:
    """The engine for these functions, reused across calls so a replay with the same
    rule object, loss and batch functions compiles nothing new."""
    key = (rule, loss_fn, batch_fn, vmapped, chunk)
    if key not in _ENGINES:
        if len(_ENGINES) >= _MAX_ENGINES:
            _ENGINES.pop(next(iter(_ENGINES)))
        _ENGINES[key] = _Engine(rule, loss_fn, batch_fn, vmapped, chunk)
    return _ENGINES[key]


def _check_fit(schedule: Schedule, rule: Rule, gradients_per_version: int):
    expected = rule.gradients_per_step if rule.gradients_per_step is not None else schedule.num_workers
    if expected != gradients_per_version:
        raise ReplayError(
            f"rule: {rule.name} steps every {expected} gradient(s) but the trace's policy makes a version every "
            f"{gradients_per_version}; use fifo/whitelist with asynchronous rules, barrier with ssgd, "
            f"buffered:K with buffered(buffer_size=K)")


def _eval_points(schedule: Schedule, eval_every: int) -> list[int]:
    """Op indices after which to evaluate: every ``eval_every`` applied gradients and the end."""
    if len(schedule.applied) == 0:
        return []
    targets = np.arange(eval_every, schedule.applied[-1] + 1, eval_every)
    points = np.searchsorted(schedule.applied, targets, side="left").tolist()
    last = len(schedule.applied) - 1
    if not points or points[-1] != last:
        points.append(last)
    return sorted(set(points))


def _is_finite(x) -> bool:
    return bool(np.isfinite(x))


def replay_seeds(trace, rule: Rule, loss_fn: Callable, params0, batch_fn: Callable, eval_fn: Callable,
                 eval_every: int, seeds: Sequence[int], *, data=None, vmap: bool = True, mode: str = "loop",
                 chunk: int = 32, storage: str = "auto", keep_params: bool = False) -> list[History]:
    """Replay one trace with R seeds in one call; ``params0`` is stacked ``[R, ...]``
    (one initialisation per seed). ``vmap=True`` runs the seeds as one batched program,
    ``vmap=False`` as a loop; both give the same numbers up to float rounding."""
    seeds = [int(s) for s in seeds]
    if not vmap:
        return [replay(trace, rule, loss_fn, tree_row(params0, r), batch_fn, eval_fn, eval_every, seed, data=data,
                       mode=mode, chunk=chunk, storage=storage, keep_params=keep_params)
                for r, seed in enumerate(seeds)]
    return _replay(trace, rule, loss_fn, params0, batch_fn, eval_fn, eval_every, seeds, data, True, mode, chunk,
                   storage, keep_params)


def replay(trace, rule: Rule, loss_fn: Callable, params0, batch_fn: Callable, eval_fn: Callable,
           eval_every: int, seed: int = 0, *, data=None, mode: str = "loop", chunk: int = 32,
           storage: str = "auto", keep_params: bool = False) -> History:
    """Replay ``trace`` with ``rule``.

    ``loss_fn(params, batch) -> scalar``; ``batch_fn(data, seed, worker, step) -> batch``
    (traceable: a worker's minibatches are a pure function of seed, worker and step);
    ``eval_fn(params) -> {"loss": .., "accuracy": ..}``, run every ``eval_every``
    applied gradients and at the end. ``mode`` is ``"loop"`` (one jitted call per op)
    or ``"scan"`` (``lax.scan`` over runs of ``chunk`` identical ops). ``storage`` is
    ``"snapshots"`` (one parameter copy per worker), ``"ring"`` (the last K versions,
    see ``compile_schedule``) or ``"auto"``: the ring when K <= 2N and it fits in
    1 GiB, else snapshots. Both give the same numbers."""
    return _replay(trace, rule, loss_fn, params0, batch_fn, eval_fn, eval_every, [int(seed)], data, False, mode,
                   chunk, storage, keep_params)[0]


RING_BUDGET_BYTES = 1 << 30


def choose_storage(trace, params, storage: str = "auto") -> str:
    """``storage`` itself, or for ``"auto"`` the ring when it needs at most 2N rows and
    1 GiB, else one snapshot per worker (see ``compile_schedule``)."""
    return _choose(_events(trace), params, storage)


def _choose(ev: dict, params, storage: str) -> str:
    if storage not in STORAGES:
        raise ReplayError(f"storage: must be one of {', '.join(STORAGES)}, got {storage!r}")
    if storage != "auto":
        return storage
    rows = _ring_size(ev)
    row_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(params))
    fits = rows <= 2 * ev["num_workers"] and rows * row_bytes <= RING_BUDGET_BYTES
    return "ring" if fits else "snapshots"


def _replay(trace, rule, loss_fn, params0, batch_fn, eval_fn, eval_every, seeds, data, vmapped, mode, chunk,
            storage, keep_params) -> list[History]:
    if mode not in MODES:
        raise ReplayError(f"mode: must be one of {', '.join(MODES)}, got {mode!r}")
    if isinstance(eval_every, bool) or not isinstance(eval_every, (int, np.integer)) or eval_every < 1:
        raise ReplayError(f"eval_every: must be an integer >= 1, got {eval_every!r}")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ReplayError(f"chunk: must be an integer >= 1, got {chunk!r}")
    if isinstance(trace, Schedule):
        schedule = trace
    else:
        ev = _events(trace)  # parsed once for choosing the storage and compiling
        schedule = _compile(ev, _choose(ev, tree_row(params0, 0) if vmapped else params0, storage))
    _check_fit(schedule, rule, schedule.gradients_per_version)

    n, r = schedule.num_workers, len(seeds)
    engine = _engine(rule, loss_fn, batch_fn, vmapped, chunk)

    def fresh_carry(p):
        state = rule.init(p, n)
        zeros = jax.tree_util.tree_map(jnp.zeros_like, p)
        pending = tree_stack(zeros, schedule.num_slots) if schedule.needs_slots else ()
        backups = tree_stack(zeros, schedule.num_slots) if schedule.needs_slots and rule.uses_backup else ()
        return _Carry(p, state, tree_stack(p, schedule.num_rows), pending, backups)

    params0 = jax.tree_util.tree_map(lambda x: jnp.array(x, copy=True), params0)  # the carry is donated
    if vmapped:
        carry = jax.vmap(fresh_carry)(params0)
        seed_arg = jnp.asarray(seeds, jnp.int32)
    else:
        carry = fresh_carry(params0)
        seed_arg = jnp.asarray(seeds[0], jnp.int32)
    ops = jnp.asarray(schedule.ops)
    variant = schedule.variant
    run_end = np.append(np.flatnonzero(np.diff(variant)) + 1, len(variant))  # where each run of one variant ends
    data = jax.device_put(data)

    evals = [[] for _ in range(r)]  # (update, time, loss, accuracy)
    diverged_at: list[int | None] = [None] * r

    def evaluate(carry, update, sim_time):
        for i in range(r):
            if diverged_at[i] is not None:
                continue
            params = tree_row(carry.params, i) if vmapped else carry.params
            metrics = eval_fn(params)
            loss, acc = float(metrics["loss"]), float(metrics["accuracy"])
            if not (_is_finite(loss) and _is_finite(acc)):
                diverged_at[i] = int(update)
            else:
                evals[i].append((int(update), float(sim_time), loss, acc))

    start = time.perf_counter()
    evaluate(carry, 0, 0.0)
    i = 0
    for stop in _eval_points(schedule, eval_every):
        stop += 1
        while i < stop:
            v = int(variant[i])
            end = min(int(run_end[np.searchsorted(run_end, i, side="right")]), stop)
            if mode == "scan":
                while end - i >= chunk:
                    carry = engine.scan(v)(carry, i, seed_arg, ops, data)
                    i += chunk
            step = engine.step(v)
            while i < end:
                carry = step(carry, i, seed_arg, ops, data)
                i += 1
        evaluate(carry, schedule.applied[stop - 1], schedule.time[stop - 1])
        if all(d is not None for d in diverged_at):
            break
    jax.block_until_ready(carry.params)
    wall = time.perf_counter() - start

    histories = []
    for k in range(r):
        rows = np.asarray(evals[k], dtype=np.float64).reshape(-1, 4)
        histories.append(History(
            update=rows[:, 0].astype(np.int64), sim_time=rows[:, 1], loss=rows[:, 2], accuracy=rows[:, 3],
            staleness=schedule.staleness, worker=schedule.applied_worker,
            diverged=diverged_at[k] is not None, diverged_at=diverged_at[k], wall_time=wall,
            updates_replayed=int(schedule.applied[i - 1]) if i else 0,
            params=(tree_row(carry.params, k) if vmapped else carry.params) if keep_params else None))
    return histories


def updates_per_second(history: History) -> float:
    return history.updates_replayed / history.wall_time if history.wall_time > 0 else math.inf
