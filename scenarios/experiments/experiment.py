"""Carry out a planned experiment or a sweep: claim its folder, lock it, write its manifest, tune or apply shipped values, run what is missing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from scenarios.errors import ConfigError
from scenarios.experiments.lock import FolderLock
from scenarios.experiments.memory import sweep_field
from scenarios.experiments.plan import Plan, check_runs, claim_folder
from scenarios.experiments.pool import BACKENDS
from scenarios.experiments.workers import kept_workers
from scenarios.experiments.results import RunResult, write_json_atomic
from scenarios.experiments.sweep import Sweep, run_sweep
from scenarios.experiments.tuning import run_protocol


def carry_out(plan: Plan, *, log=print, invocation: Optional[dict] = None, reuse: tuple = ()) -> list[RunResult]:
    """Run a planned experiment into ``plan.out`` (finished runs are kept; runs finished in the
    folders ``reuse`` with the same key are copied in); the reported results."""
    claim_folder(plan.out, plan.options.identity, plan.options.force)
    with FolderLock(plan.out), kept_workers():  # tuning and the reported runs share the worker processes
        log(f"{plan.experiment.name}: {len(plan.runs)} reported runs -> {plan.out}")
        started = time.perf_counter()
        results = run_protocol(
            plan.runs, plan.out, grids=plan.grids, tuning_seeds=plan.tuning_seeds,
            shipped=plan.experiment.shipped_tuning, explicit=plan.options.explicit, halving=plan.halving,
            planned=lambda reported: write_json_atomic(plan.out / "experiment.json", plan.manifest(reported)),
            data_dir=plan.options.data_dir, force=plan.options.force, jobs=plan.jobs, invocation=invocation, log=log,
            reuse=reuse)
        log(f"finished in {time.perf_counter() - started:.0f} s")
    return results


def check_sweep(sweep: Sweep, *, backend: str = "local", data_dir=None) -> list:
    """Everything a sweep can be refused for, before any work; its runs."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend: must be one of {', '.join(BACKENDS)}, got {backend!r}")
    runs = sweep.runs()
    check_runs(runs, data_dir, label=sweep_field)
    if backend == "ray":
        try:
            import ray  # noqa: F401 - optional: only its presence is checked here
        except ImportError:
            raise ConfigError("--backend ray: Ray is not installed; install it with pip install 'stalesim[ray]'") from None
    return runs


def carry_out_sweep(sweep: Sweep, out: Path, *, backend: str = "local", jobs="auto", address: Optional[str] = None,
                    data_dir=None, force: bool = False, log=print, invocation: Optional[dict] = None,
                    reuse: tuple = ()) -> list[RunResult]:
    """Run a sweep into ``out`` (finished runs are kept, and runs finished in the experiment
    folders ``reuse`` with the same key are copied in); the reported results."""
    runs = check_sweep(sweep, backend=backend, data_dir=data_dir)
    identity = sweep.identity
    claim_folder(out, identity, force)

    def manifest(reported):
        write_json_atomic(out / "experiment.json", {"sweep": sweep.name, "experiment": sweep.experiment,
                                                    "identity": identity, "spec": str(sweep.path),
                                                    "axes": sweep.axes, "runs": [r.dirname for r in reported]})

    with FolderLock(out), kept_workers():
        log(f"sweep-{sweep.name}: {len(runs)} reported runs -> {out}")
        started = time.perf_counter()
        results = run_sweep(sweep, out, planned=manifest, backend=backend, jobs=jobs, address=address,
                            data_dir=data_dir, force=force, invocation=invocation, log=log, reuse=reuse)
        log(f"finished in {time.perf_counter() - started:.0f} s")
    return results
