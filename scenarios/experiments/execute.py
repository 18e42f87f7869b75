"""Carry out one run: its workload, its trace, its rule, the replay, and its result."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import jax

from algorithms import Base, registry, replay
from scenarios.experiments.catalogue import RunSpec
from scenarios.experiments.cluster import policy_for, trace_for
from scenarios.experiments.outcomes import metrics_of
from scenarios.experiments.provenance import machine, versions
from scenarios.experiments.results import RunResult
from scenarios.workloads.data import provenance
from scenarios.workloads.workload import dataset, workload
from sim import summarize


def rule_for(algorithm: str, base: str, cfg):
    """The server rule of ``algorithm`` on the base optimizer ``base`` with this configuration:
    one rule object per (algorithm, base, learning rate, momentum, workers, the algorithm's
    hyperparameters) in a process (``Algorithm.rule`` caches it on those values), so the
    replay engine compiles once for every seed of it instead of once per run."""
    return registry.get(algorithm).rule(Base(base, cfg.learning_rate(base), cfg.momentum), cfg.workers, cfg.to_dict())


def resolve_mode(cfg) -> str:
    """``auto``: one compiled loop per run of ops for the MLP and the CNN (whose convolutions
    are matrix products), one jitted call per op for the ResNet: XLA's CPU convolutions ran
    about 20x slower inside a compiled loop (measured, see benchmarks/README.md)."""
    if cfg.mode != "auto":
        return cfg.mode
    return "loop" if cfg.model == "resnet" else "scan"


def evaluate_last(run: RunSpec) -> Optional[int]:
    """How many of its last evaluation points a run evaluates at (with the start): every
    point for a reported run; for a tuning run (on the validation split) the last
    ``final_evals``, which are all that its selection and its outcome label read (with
    the start's loss); at the other points it checks only that its parameters are
    finite, so a diverging tuning run still stops where its loss stopped being finite.
    Its stability (``accuracy_std``, ``detrended_std``) is then not measured (None)."""
    return run.config.final_evals if run.split == "validation" else None


def execute(run: RunSpec, data_dir=None, trace_dir: Optional[Path] = None) -> RunResult:
    """Carry out one run and return its result (not yet written)."""

    cfg = run.config
    wl = workload(cfg, data_dir)
    files = provenance(dataset(cfg.dataset, data_dir).files)
    params0 = wl.model.init(jax.random.PRNGKey(run.seed))
    model_bytes = float(sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(params0)))
    trace = trace_for(cfg, run.algorithm, run.seed, trace_dir, wl.num_classes, model_bytes)
    rule = rule_for(run.algorithm, run.base, cfg)
    started = time.perf_counter()
    last = evaluate_last(run)
    history = replay(trace, rule, wl.problem(params0, run.split), eval_every=cfg.eval_every, seed=run.seed,
                     mode=resolve_mode(cfg), evaluate_last=last)
    wall = time.perf_counter() - started
    summary = summarize(trace)
    summary.pop("idle_time_per_worker", None)
    metrics = metrics_of(history, cfg, wl.num_classes)
    if last is not None:  # its few evaluations say nothing of its stability
        metrics.update(accuracy_std=None, detrended_std=None)
    return RunResult(
        run=run.label, key=run.key, algorithm=run.algorithm, base=run.base, seed=run.seed,
        axis=run.axis, axis_value=getattr(cfg, run.axis) if run.axis else None,
        policy=policy_for(run.algorithm, cfg), config=cfg.to_dict(), split=run.split, tuned=dict(run.tuned),
        hyperparameters={o.field: o.record(cfg) for o in run.origins},
        **metrics,
        updates_replayed=history.updates_replayed, wall_time=wall,
        updates_per_second=history.updates_replayed / wall if wall > 0 else None,
        history=history.to_records(), trace=summary, versions=versions(),
        provenance={"data": {"dataset": cfg.dataset, "files": files}, "machine": machine()})

