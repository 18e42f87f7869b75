"""Estimating a command's wall time before running it (``--dry-run``): one short calibration run per kind of run, on this machine."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import jax
import jax.monitoring

from algorithms.history import TIME_EVENTS
from scenarios.experiments.execute import evaluate_last, execute
from scenarios.experiments.halving import Halving
from scenarios.experiments.pool import compile_groups, pending, processes_for
from scenarios.experiments.origins import resolve
from scenarios.experiments.tuning import tuning_runs
from scenarios.workloads.workload import workload

_SECONDS: dict = {}  # event family -> seconds, once counting has started in this process
_FAMILIES = {"compile": "/jax/core/compile/", "evaluation": TIME_EVENTS + "evaluation"}


def _seconds(family: str) -> float:
    """Seconds this process has spent on ``family`` (``_FAMILIES``: XLA compilation, from JAX's
    monitoring events; evaluation, from stalesim's), counted from the first call on."""
    if not _SECONDS:
        _SECONDS.update({name: 0.0 for name in _FAMILIES})

        def on_event(event, duration, **kwargs):
            for name, prefix in _FAMILIES.items():
                if event.startswith(prefix):
                    _SECONDS[name] += duration
        jax.monitoring.register_event_duration_secs_listener(on_event)
    return _SECONDS[family]


def compile_seconds() -> float:
    """Seconds this process has spent compiling with XLA, counted from the first call on."""
    return _seconds("compile")


def evaluation_seconds() -> float:
    """Seconds this process has spent evaluating (``algorithms.history.Recorder``), counted
    from the first call on."""
    return _seconds("evaluation")


def cost_key(run) -> tuple:
    """What a run's time per update depends on: the rule, the base optimizer and the shape
    of the problem (model, data, cluster); not its seed, learning rate, length or evaluations."""
    c = run.config
    return (run.algorithm, run.base, c.dataset, c.model, c.workers, c.batch_size)


def evaluation_key(run) -> tuple:
    """What one evaluation's time depends on: the model and the set evaluated (the test set,
    or a subset of it, or the validation split)."""
    c = run.config
    return (c.dataset, c.model, run.split, c.eval_samples if run.split == "test" else c.validation_samples)


def evaluations(run) -> int:
    """How many times a run is evaluated when it goes to its last update: at the start, every
    ``eval_every`` applied gradients and at the end; a tuning run at the start and at its
    last ``final_evals`` points (``execute.evaluate_last``)."""
    points = -(-run.config.updates // run.config.eval_every)
    last = evaluate_last(run)
    return 1 + (points if last is None else min(points, last))


@dataclass
class Calibration:
    """Seconds of XLA compilation per ``cost_key`` (once per group of runs that share a
    compiled replay), seconds per applied update per ``cost_key`` (training and trace
    simulation) and seconds per evaluation per ``evaluation_key``."""

    compile_seconds: dict
    per_update: dict
    per_evaluation: dict

    def seconds(self, runs, groups) -> float:
        """Estimated seconds for ``runs`` in one process; ``groups``: the runs grouped by
        what they compile (``pool.compile_groups``)."""
        return (sum(self.compile_seconds[cost_key(group[0])] for group in groups)
                + sum(self.per_update[cost_key(r)] * r.config.updates
                      + self.per_evaluation[evaluation_key(r)] * evaluations(r) for r in runs))


def calibrate(runs, data_dir=None, log=print) -> Calibration:
    """One short run (``2 x eval_every`` updates, at least 100, at most the run's own) per
    ``cost_key`` of ``runs`` (and per ``evaluation_key`` not met that way), after a warm-up
    run that loads the data as a real command does. The compilation and the evaluations
    JAX and stalesim report are taken apart from the time per update: a short run is
    evaluated three times in 400 updates, a whole run 31 times in 6,000, so evaluations
    counted per update charged a whole run about 1.5 times the evaluations it makes. The
    workload (the workers' shards, the model) is built, and its evaluation compiled, before
    the clock starts: a real process does both once per cluster shape, not once per run;
    timed inside 300 updates the workload made the first kind of each shape look five
    times slower, and the evaluation's compilation, counted as compiling and as evaluating,
    was taken off twice and made it look hundreds of times faster."""

    compile_seconds(), evaluation_seconds()  # counting starts
    first = runs[0]
    execute(replace(first, config=replace(first.config, updates=min(first.config.updates, 20)),
                    seed=first.seed + 10_000), data_dir=data_dir, trace_dir=None)
    kinds = {}
    for run in runs:
        kinds.setdefault(cost_key(run), run)
    met = {evaluation_key(r) for r in kinds.values()}
    for run in runs:  # an evaluation not met by the kinds above gets its own short run
        if evaluation_key(run) not in met:
            met.add(evaluation_key(run))
            kinds[("evaluation",) + evaluation_key(run)] = run
    compilation, per_update, per_evaluation = {}, {}, {}
    for k, (key, run) in enumerate(kinds.items()):
        n = min(run.config.updates, max(100, 2 * run.config.eval_every))
        short = replace(run, config=replace(run.config, updates=n), seed=run.seed + 10_001 + k)
        wl = workload(run.config, data_dir)  # built once per shape in a real process, so not timed per update here
        params0 = wl.model.init(jax.random.PRNGKey(run.seed))
        wl.problem(params0, run.split).eval_fn(params0)  # its evaluation compiled once per shape too: else a
        # compilation inside the first evaluation would count as compiling and as evaluating, and be taken off twice
        compiled, evaluated, started = compile_seconds(), evaluation_seconds(), time.perf_counter()
        execute(short, data_dir=data_dir, trace_dir=None)
        elapsed = time.perf_counter() - started
        compiling, evaluating = compile_seconds() - compiled, evaluation_seconds() - evaluated
        per_evaluation.setdefault(evaluation_key(run), evaluating / evaluations(short))
        if key[0] == "evaluation":
            continue
        compilation[key] = compiling
        per_update[key] = max(elapsed - compiling - evaluating, 1e-3) / n
        c = run.config
        log(f"  calibration {run.algorithm}-{run.base} ({c.dataset} {c.model}, {c.workers} workers, batch "
            f"{c.batch_size}): {1 / per_update[key]:,.0f} updates/s, {evaluating / evaluations(short):.2f} s per "
            f"evaluation ({run.split}), compilation {compiling:.1f} s")
    return Calibration(compilation, per_update, per_evaluation)


def dry_run(runs, grids, tuning_seeds: int, jobs, data_dir, *, out: Optional[Path] = None, force: bool = False,
            shipped: Optional[Path] = None, explicit=frozenset(), halving: Optional[Halving] = None,
            log=print) -> float:
    """The grid, the learning rates it would use and an estimated wall time: one short run per
    kind of run (algorithm, base, problem shape) on this machine (``estimate.calibrate``),
    scaled to every run still to do (finished runs in ``out`` are skipped, as a real run would);
    with several processes, a range from perfect sharing to none. Returns the range's
    midpoint in seconds (0 when nothing is to do). Runs with the same key count once. With
    ``halving``, the tuning runs are every candidate's rung run and ``keep`` full runs per cell
    (which candidates survive is known only after the rung: the first ``keep`` stand in)."""

    runs = resolve(runs, explicit=explicit, grids=grids, shipped=shipped, log=log)
    tuning = [r for entries in halved(tuning_runs(runs, grids, tuning_seeds), halving).values()
              for _, r in entries] if grids else []
    tuning = list({r.key: r for r in tuning}.values())  # cells of several experiments share their tuning runs
    cells = len({(r.config, r.algorithm, r.base) for r in runs})
    log(f"grid: {len(runs)} reported runs ({cells} cells x {len(runs) // max(1, cells)} seeds)"
          + (f" + {len(tuning)} tuning runs" if tuning else ""))
    if not grids:
        rates = {}
        for r in runs:
            for o in r.origins:
                rates.setdefault((r.algorithm, r.base), set()).add(f"{o.field}={getattr(r.config, o.field):g} "
                                                                   f"({o.source})")
        log("learning rates: " + "; ".join(f"{a} on {b}: {', '.join(sorted(v))}" for (a, b), v in rates.items()))
    first = tuning + ([] if grids else runs)  # with tuning, the reported runs' keys are known only after it
    done, todo = pending(first, out, force) if out is not None else ({}, first)
    if grids:
        todo = todo + runs  # their tuned values are known only after tuning
    if done:
        log(f"already finished in {out}: {len(done)} runs (skipped; --force recomputes them)")
    if not todo:
        log("nothing to do: every run is finished (nothing was run)")
        return 0.0
    log(f"to do: {len(todo)} runs, {sum(r.config.updates for r in todo):,} applied updates in all")
    log("calibration on this machine (one short run per algorithm, base and problem shape):")
    calibration = calibrate(todo, data_dir, log=log)
    processes = processes_for(jobs, todo)
    one = calibration.seconds(todo, compile_groups(todo))
    where = f"--jobs {jobs} ({processes} process{'es' if processes > 1 else ''})"
    if processes == 1:
        log(f"estimated wall time with {where}: {duration(one)} (nothing was run; drop --dry-run to run)")
    else:
        log(f"estimated wall time with {where}: between {duration(one / processes)} (processes that never "
            f"slow each other) and {duration(one)} (one process); they share the memory bandwidth "
            f"(nothing was run; drop --dry-run to run)")
    log("  every run is counted to its last update: one that diverges stops at its first non-finite "
        "evaluation, so a grid with diverging rates takes less")
    return one if processes == 1 else (one / processes + one) / 2


def halved(plan: dict, halving: Optional[Halving]) -> dict:
    """The tuning plan as ``halving`` would carry it out, for the estimate: per cell cut by it,
    every candidate's rung run, then the first ``keep`` candidates' full runs."""
    if halving is None:
        return plan
    out = {}
    for cell, entries in plan.items():
        if not halving.cuts(entries):
            out[cell] = entries
            continue
        stand_ins = list(dict.fromkeys(cand for cand, _ in entries))[:halving.keep]
        out[cell] = ([(cand, halving.rung(run)) for cand, run in entries]
                     + [(cand, run) for cand, run in entries if cand in stand_ins])
    return out


def duration(seconds: float) -> str:
    if seconds >= 600:
        return f"{seconds / 60:.0f} min"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"
