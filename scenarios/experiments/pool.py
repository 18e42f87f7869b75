"""Carry out many runs: skip finished ones, run the rest in this process, local processes or on Ray, write each result.

Every command that runs experiments (``run``, ``reproduce``, ``sweep``) goes through
``run_many``: it skips runs already finished in the output folder (same key), carries
out the rest in this process, a local process pool (``jobs``) or on Ray, and writes
each result as it arrives. The numbers do not depend on where a run was carried out.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import as_completed
from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional

from scenarios.errors import ConfigError
from scenarios.experiments.catalogue import RunSpec
from scenarios.experiments.execute import execute
from scenarios.experiments.progress import Progress
from scenarios.experiments.results import RunResult, load_result, write_result
from scenarios.experiments.workers import accelerator, cores, use_compilation_cache, workers
from scenarios.workloads.workload import shape

BACKENDS = ("local", "ray")


AUTO = "auto"  # --jobs auto: see processes_for


AUTO_MIN_UPDATES = 20_000  # less work than this is carried out in this process under --jobs auto


TASK_RUNS = 2  # at most this many runs in one task of the local pool (see tasks)


def processes_for(jobs, todo: list) -> int:
    """Local processes for the runs ``todo``: ``jobs`` itself when it is a number, or for
    ``"auto"`` one per CPU core, at most one per task (``tasks``), and this process alone
    when the runs total fewer than ``AUTO_MIN_UPDATES`` applied updates (a worker process
    spends about 3 s starting, importing JAX and reading the data), or when JAX computes on
    an accelerator. Separate processes are how a run of many replays uses a machine of many
    cores (on 2 cores a second one adds little: benchmarks/README.md); results are the same
    for every number of processes."""
    if jobs != AUTO:
        return max(1, min(int(jobs), len(todo)))
    if sum(run.config.updates for run in todo) < AUTO_MIN_UPDATES or accelerator():
        return 1
    return max(1, min(cores(), len(tasks(todo))))


def finished_elsewhere(folders) -> dict:
    """key -> result.json path of every finished run in the experiment folders ``folders``."""
    index = {}
    for folder in folders:
        for path in sorted(Path(folder).glob("runs/*/result.json")):
            result = load_result(path)
            if result is not None:
                index.setdefault(result.key, path)
    return index


def reused(run: RunSpec, path: Path) -> RunResult:
    """Another experiment's finished run with the same key (the same numbers), labelled as this
    run: its name, axis, tuned values and their sources; ``provenance["reused_from"]`` says where."""
    result = load_result(path)
    result.run, result.axis = run.label, run.axis
    result.axis_value = getattr(run.config, run.axis) if run.axis else None
    result.tuned = dict(run.tuned)
    result.hyperparameters = {o.field: o.record(run.config) for o in run.origins}
    result.provenance = {**result.provenance, "reused_from": str(path.parent)}
    return result


def pending(runs: list[RunSpec], out: Path, force: bool, reuse: dict | None = None) -> tuple[dict, list[RunSpec]]:
    """Runs already finished in ``out`` (by key), or in another experiment's folder (``reuse``:
    key -> result path, ``finished_elsewhere``; copied into ``out``), and the runs still to do."""
    done, todo = {}, []
    for run in runs:
        if not force and reuse and run.key in reuse and not (out / "runs" / run.dirname / "result.json").exists():
            write_result(out / "runs" / run.dirname, reused(run, reuse[run.key]))
        path = out / "runs" / run.dirname / "result.json"
        existing = None if force else load_result(path)
        if existing is None and path.exists() and not force:
            raise ConfigError(f"--out {out}: {path.relative_to(out)} is unreadable (corrupt, or not a stalesim "
                              "result); remove it, or use --force to recompute every run")
        if existing is not None and existing.key != run.key:
            raise ConfigError(f"--out {out}: {path.relative_to(out)} holds another run (key {existing.key}); "
                              "remove it, or use --force to recompute every run")
        if existing is not None:
            done[run.key] = existing
        else:
            todo.append(run)
    return done, todo


def _order_for_trace_reuse(runs: list[RunSpec]) -> list[RunSpec]:
    """Runs sharing a cluster shape and seed next to each other, so the first simulates
    the trace and the others find it in the cache."""
    return sorted(runs, key=lambda r: (r.seed, json.dumps(r.config.to_dict(), sort_keys=True), r.algorithm, r.base))


def _task(run: RunSpec, data_dir, trace_dir) -> RunResult:
    """What a worker process does: one run, its result returned (the caller writes it)."""
    use_compilation_cache()
    return execute(run, data_dir=data_dir, trace_dir=Path(trace_dir) if trace_dir else None)


def _runs_task(runs: list[RunSpec], data_dir, trace_dir) -> list[RunResult]:
    """What a worker process of the local pool does: one task (``tasks``), runs that share a
    compiled replay."""
    return [_task(run, data_dir, trace_dir) for run in runs]


def program(run: RunSpec) -> tuple:
    """What a run's replay compiles for: its algorithm, base and configuration, every field
    but the seed and the base's learning rate (a value of the optimizer's state, not a
    constant of the program: ``algorithms.declaration.learning_rate_in_state``), so a
    cell's learning-rate candidates and its reported runs share one program."""
    return run.algorithm, run.base, replace(run.config, **{f"lr_{run.base}": None})


def compile_groups(runs: list[RunSpec]) -> list[list[RunSpec]]:
    """The runs, in their order, grouped by what their replay compiles for (``program``),
    so that one process compiles it once for all of them."""
    groups: dict = {}
    for run in runs:
        groups.setdefault(program(run), []).append(run)
    return list(groups.values())


def tasks(runs: list[RunSpec]) -> list[list[RunSpec]]:
    """The local pool's tasks: every group of runs sharing a compiled replay
    (``compile_groups``) cut into near-equal chunks of at most ``TASK_RUNS`` runs, the
    chunks of one workload shape next to each other (a worker process keeps the last
    workload it built: ``workloads.workload.shape``), in the order of ``runs`` otherwise.
    Small tasks keep every process busy to the end of a batch: as whole groups, the ten
    reported seeds of a study's one cell were one task, carried out by one process while
    the others had nothing to do. A chunk carried out by another process than its group's
    first loads the compiled replay from the command's compilation cache
    (``command_cache``) instead of compiling it."""
    chunks = []
    for group in compile_groups(runs):
        pieces = math.ceil(len(group) / TASK_RUNS)
        size, extra = divmod(len(group), pieces)
        start = 0
        for i in range(pieces):
            stop = start + size + (i < extra)
            chunks.append(group[start:stop])
            start = stop
    shapes: dict = {}
    for chunk in chunks:
        shapes.setdefault(shape(chunk[0].config), []).append(chunk)
    return [chunk for same in shapes.values() for chunk in same]


def run_many(runs: list[RunSpec], out: Path, *, data_dir=None, force: bool = False, jobs: int | str = 1,
             backend: str = "local", address: Optional[str] = None, log=print,
             invocation: Optional[dict] = None, reuse: tuple = ()) -> list[RunResult]:
    """Carry out every run not already finished in ``out``; results in the order of ``runs``.

    ``invocation`` (the command line and the overrides) is recorded in each result's
    provenance. ``jobs``: local processes, a number or ``"auto"`` (``processes_for``).
    ``reuse``: other experiments' folders whose finished runs with the same key are copied
    in instead of being run again (``claims --rerun``: a run several experiments share is
    carried out once)."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend: must be one of {', '.join(BACKENDS)}, got {backend!r}")
    use_compilation_cache()
    done, todo = pending(runs, out, force, finished_elsewhere(reuse) if reuse else None)
    jobs = processes_for(jobs, todo) if todo else 1
    where = f"{jobs} processes" if backend == "local" and jobs > 1 else ("ray" if backend == "ray" else "in process")
    log(f"{len(runs)} runs, {len(done)} already finished, {len(todo)} to do ({where})")
    progress = Progress(len(runs), log)
    for run in runs:
        if run.key in done:
            progress.kept(run.label)
    results = dict(done)
    trace_dir = str(out / "traces")

    def finished(run: RunSpec, result: RunResult):
        if invocation:
            result.provenance["invocation"] = invocation
        write_result(out / "runs" / run.dirname, result)
        results[run.key] = result
        progress.finished(result)

    if todo:
        if backend == "ray":
            _run_ray(todo, address, data_dir, trace_dir, finished)
        else:
            _run_local(_order_for_trace_reuse(todo) if jobs > 1 else todo, jobs, data_dir, trace_dir, finished)
    return [results[r.key] for r in runs]


def _run_local(todo, jobs: int, data_dir, trace_dir, finished: Callable) -> None:

    if jobs == 1:
        for run in todo:
            finished(run, _task(run, data_dir, trace_dir))
        return
    chunks = tasks(todo)
    with workers(min(jobs, len(chunks))) as pool:
        futures = {pool.submit(_runs_task, chunk, data_dir, trace_dir): chunk for chunk in chunks}
        for future in as_completed(futures):
            for run, result in zip(futures[future], future.result()):
                finished(run, result)


def _run_ray(todo, address, data_dir, trace_dir, finished: Callable) -> None:
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray: Ray is not installed; install it with "
                          "pip install 'stalesim[ray]' (or pip install ray)") from None
    started_here = not ray.is_initialized()
    # stalesim is made for offline machines: no usage report unless the user asks for one
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(_task)
        refs = {task.remote(run, data_dir, trace_dir): run for run in todo}
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            for ref in ready:
                finished(refs.pop(ref), ray.get(ref))
    finally:
        if started_here:
            ray.shutdown()

