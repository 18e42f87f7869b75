"""Replay a trace with a server rule: check the arguments, compile the trace, run its ops and evaluate as they go.

The trace (``sim.simulate``'s server log) says who pulled, who pushed and what was
applied, in server order; the replay gives each event its values with ``rule`` on a
``Problem``. ``replay_seeds`` runs R seeds over one trace in one call, ``vmap``-ed or
as a loop.
"""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sim.events import ReplayError

from .base import Rule, tree_row
from .engine import MODES, Program, advance, engine_for
from .history import History, Recorder
from .schedule import Schedule, Variant, schedule_for


class Problem(NamedTuple):
    """What is trained: ``loss_fn(params, batch) -> scalar``; ``batch_fn(data, seed, worker,
    step) -> batch`` (traceable: a worker's minibatches are a pure function of seed, worker
    and step); ``eval_fn(params) -> {"loss": .., "accuracy": ..}``; ``data`` (any pytree,
    passed to ``batch_fn``); ``params0`` (the initial parameters; for ``replay_seeds``
    stacked ``[R, ...]``, one initialisation per seed)."""

    loss_fn: Callable
    batch_fn: Callable
    eval_fn: Callable
    data: Any
    params0: Any


def replay(trace, rule: Rule, problem: Problem, *, eval_every: int, seed: int = 0, mode: str = "loop",
           chunk: int | None = None, storage: str = "auto", keep_params: bool = False,
           evaluate_last: int | None = None) -> History:
    """Replay ``trace`` (a ``sim.Trace``, a mapping of its arrays, or a ``Schedule``) with
    ``rule`` on ``problem``.

    ``problem.eval_fn`` runs every ``eval_every`` applied gradients and at the end.
    ``mode`` is ``"loop"`` (a Python loop, one jitted call per op) or ``"scan"`` (one
    compiled loop per run of identical ops, at most ``chunk`` ops per call when given;
    one compilation per kind of op serves every run length and every trace of one
    shape). ``storage`` is ``"snapshots"`` (one parameter copy per worker), ``"ring"``
    (the last K versions, see ``compile_schedule``) or ``"auto"``: the ring when K <= 2N
    and it fits in 1 GiB, else snapshots. Both give the same numbers. ``keep_params``:
    the history keeps the final parameters.

    ``evaluate_last=K``: ``eval_fn`` runs only at the start and at the last K of those
    points; at the others the replay checks only that the parameters are finite, and a
    run whose parameters are not stops there, diverged (a tuning run, whose selection
    reads its last K evaluations: the values it records are the same numbers, since
    evaluating changes nothing in the training)."""
    return _replay(trace, rule, problem, eval_every=eval_every, seeds=[int(seed)], vmapped=False, mode=mode,
                   chunk=chunk, storage=storage, keep_params=keep_params, evaluate_last=evaluate_last)[0]


def replay_seeds(trace, rule: Rule, problem: Problem, *, eval_every: int, seeds: Sequence[int], vmap: bool = True,
                 mode: str = "loop", chunk: int | None = None, storage: str = "auto",
                 keep_params: bool = False) -> list[History]:
    """Replay one trace with R seeds in one call; ``problem.params0`` is stacked ``[R, ...]``
    (one initialisation per seed). ``vmap=True`` runs the seeds as one batched program,
    ``vmap=False`` as a loop; both give the same numbers up to float rounding."""
    seeds = [int(s) for s in seeds]
    if not vmap:
        _check_problem(problem)
        return [replay(trace, rule, problem._replace(params0=tree_row(problem.params0, r)), eval_every=eval_every,
                       seed=seed, mode=mode, chunk=chunk, storage=storage, keep_params=keep_params)
                for r, seed in enumerate(seeds)]
    return _replay(trace, rule, problem, eval_every=eval_every, seeds=seeds, vmapped=True, mode=mode, chunk=chunk,
                   storage=storage, keep_params=keep_params, evaluate_last=None)


def _check_problem(problem) -> None:
    if not isinstance(problem, Problem):
        raise ReplayError(f"problem: expected algorithms.Problem(loss_fn, batch_fn, eval_fn, data, params0), "
                          f"got {type(problem).__name__}")


def _check_arguments(problem, eval_every, mode, chunk, evaluate_last) -> None:
    _check_problem(problem)
    if evaluate_last is not None and (isinstance(evaluate_last, bool) or not isinstance(evaluate_last, int)
                                      or evaluate_last < 1):
        raise ReplayError(f"evaluate_last: must be None or an integer >= 1, got {evaluate_last!r}")
    if mode not in MODES:
        raise ReplayError(f"mode: must be one of {', '.join(MODES)}, got {mode!r}")
    if isinstance(eval_every, bool) or not isinstance(eval_every, (int, np.integer)) or eval_every < 1:
        raise ReplayError(f"eval_every: must be an integer >= 1, got {eval_every!r}")
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
        raise ReplayError(f"chunk: must be None or an integer >= 1, got {chunk!r}")


def _check_fit(schedule: Schedule, rule: Rule) -> None:
    expected = rule.gradients_per_version if rule.gradients_per_version is not None else schedule.num_workers
    if expected != schedule.gradients_per_version:
        raise ReplayError(
            f"rule: {rule.name} steps every {expected} gradient(s) but the trace's policy makes a version every "
            f"{schedule.gradients_per_version}; use fifo/whitelist with asynchronous rules, barrier with ssgd, "
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


def _leading_pulls(schedule: Schedule) -> int:
    """How many ops at the start only pull: they store the initial parameters, which every
    row of the store holds already, so they are skipped (and need no compilation)."""
    pull_only = (schedule.variant == Variant.PULL) & (schedule.applied == 0)
    return int(np.argmin(pull_only)) if not pull_only.all() else len(pull_only)


def _replay(trace, rule: Rule, problem: Problem, *, eval_every: int, seeds: list[int], vmapped: bool, mode: str,
            chunk: int | None, storage: str, keep_params: bool, evaluate_last: int | None) -> list[History]:
    _check_arguments(problem, eval_every, mode, chunk, evaluate_last)
    loss_fn, batch_fn, eval_fn, data, params0 = problem
    if isinstance(trace, Schedule):
        schedule = trace
    else:
        schedule = schedule_for(trace, tree_row(params0, 0) if vmapped else params0, storage)
    _check_fit(schedule, rule)

    engine = engine_for(rule, loss_fn, batch_fn, vmapped)
    carry = engine.init_carry(schedule, params0)
    seed_arg = jnp.asarray(seeds if vmapped else seeds[0], jnp.int32)
    program = Program.of(schedule)
    data = jax.device_put(data)
    recorder = Recorder(eval_fn, len(seeds))
    params_of = (lambda r: tree_row(carry.params, r)) if vmapped else (lambda r: carry.params)  # the latest carry

    start = time.perf_counter()
    recorder.evaluate(params_of, 0, 0.0)
    i = _leading_pulls(schedule)
    points = _eval_points(schedule, eval_every)
    evaluated = set(points if evaluate_last is None else points[-evaluate_last:])
    for stop in points:
        carry = advance(engine, carry, program, start=i, stop=stop + 1, seed=seed_arg, data=data, mode=mode,
                        chunk=chunk)
        i = stop + 1
        if stop in evaluated:
            recorder.evaluate(params_of, schedule.applied[stop], schedule.time[stop])
        else:
            recorder.check_finite(params_of, schedule.applied[stop])
        if recorder.all_diverged:
            break
    jax.block_until_ready(carry.params)
    wall = time.perf_counter() - start

    final = [params_of(r) if keep_params else None for r in range(len(seeds))]
    return recorder.histories(schedule.staleness, schedule.applied_worker, wall,
                              int(schedule.applied[i - 1]) if i else 0, final)
