"""Validate against live runs: the replay of each run's trace, and the simulator, as configured and as calibrated from the run.

For every live run of a folder (``stalesim validate LIVE_DIR``):

- **replay**: ``algorithms.replay`` of its ``trace.npz`` with the same rule, problem and
  seed, against the live run's final parameters (``params.npz``, else their sha256 in
  result.json) and its history of evaluations;
- **simulated**: ``sim.simulate`` of the cluster as configured (``runner.trace_for``, the
  trace ``stalesim run`` replays), at the run's seed;
- **calibrated**: ``sim.simulate`` of the cluster as measured: each worker's own compute
  times (``compute_times.csv`` as ``compute=replay``, one column per worker), the pull and
  push latencies fitted as ``latency + Exp(jitter)`` (latency = the least measured, jitter
  = the mean above it), the server's mean service time added to the pull delay, all in
  simulated seconds (``calibrated_spec``);
- **compute only**: the calibrated cluster without latencies and service time, and
  **service queue**: with the service time as the simulator's ``service_time``, which
  measure what leaving them out, or modelling them so, does.

Compared: mean, p95 and max staleness, each worker's share of the updates, the
Kolmogorov-Smirnov distance between staleness distributions, and the training outcome
(final accuracy, accuracy std) of the simulated traces replayed at the run's seed.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import jax
import numpy as np

from algorithms import replay
from sim import ClusterSpec, NetworkModel, Trace, simulate, summarize
from sim.cluster import read_durations, replay_model

from scenarios.errors import ConfigError
from scenarios.experiments.config import from_dict
from scenarios.experiments.memory import parameter_bytes
from scenarios.experiments.cluster import trace_for
from scenarios.experiments.execute import resolve_mode, rule_for
from scenarios.experiments.outcomes import metrics_of
from scenarios.live.session import params_sha256
from scenarios.workloads.workload import workload

KINDS = ("live", "simulated", "calibrated")


def live_runs(folder: Path) -> list[Path]:
    """The run folders of ``folder`` holding a live result, in name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"LIVE_DIR: no folder {str(folder)!r}")
    runs = []
    for path in sorted((folder / "runs").glob("*/result.json")):
        try:
            if json.loads(path.read_text()).get("mode") == "live":
                runs.append(path.parent)
        except (OSError, ValueError):
            continue
    if not runs:
        raise ConfigError(f"LIVE_DIR: {folder} holds no live runs (runs/*/result.json with \"mode\": \"live\"); "
                          "write them with 'stalesim live EXPERIMENT --out DIR'")
    return runs


def ks_distance(a, b) -> float:
    """The Kolmogorov-Smirnov distance of two samples: the largest gap between their empirical CDFs."""
    a, b = np.sort(np.asarray(a)), np.sort(np.asarray(b))
    if not len(a) or not len(b):
        return float("nan")
    points = np.union1d(a, b)
    return float(np.max(np.abs(np.searchsorted(a, points, side="right") / len(a)
                               - np.searchsorted(b, points, side="right") / len(b))))


def read_timings(run_dir: Path) -> dict[str, np.ndarray]:
    """``timings.csv`` as one array per column."""
    with open(run_dir / "timings.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {name: np.asarray([float(r[name]) for r in rows]) for name in (rows[0] if rows else {})}


def fitted_network(latencies: np.ndarray) -> NetworkModel:
    """``latency + Exp(jitter)`` fitted to measured delays: the least, and the mean above it."""
    latencies = latencies[np.isfinite(latencies)]
    if not len(latencies):
        return NetworkModel()
    low = max(0.0, float(latencies.min()))
    return NetworkModel(latency=low, jitter=max(0.0, float(latencies.mean()) - low))


def calibrated_spec(run_dir: Path, num_workers: int, time_scale: float, *, delays: bool = True,
                    service_queue: bool = False) -> ClusterSpec:
    """The cluster as the live run measured it (see the module docstring), in simulated seconds.

    The server's mean service time is added to the pull delay (a worker gets its parameters
    after its gradient's apply); ``service_queue=True`` gives it to the simulator's
    ``service_time`` instead, whose queue releases a white list's waiting workers one apply at
    a time, where the live server (as the simulator without a service time) applies the whole
    refill and then serves the pulls."""
    compute = replay_model(read_durations(run_dir / "compute_times.csv"))
    if not delays:
        return ClusterSpec(num_workers=num_workers, compute=compute)
    t = read_timings(run_dir)
    measured = t["service"][np.isfinite(t["service"])]
    service = float(measured.mean()) / time_scale if len(measured) else 0.0
    pull = t["pull_latency"] / time_scale + (0.0 if service_queue else service)
    return ClusterSpec(num_workers=num_workers, compute=compute, pull=fitted_network(pull),
                       push=fitted_network(t["push_latency"] / time_scale),
                       service_time=service if service_queue else 0.0)


def _staleness(trace: Trace) -> dict:
    s = summarize(trace)
    return {"mean": s["mean_staleness"], "p95": s["p95_staleness"], "max": s["max_staleness"]}


def _shares(trace: Trace) -> list[float]:
    counts = np.bincount(trace.applied_worker, minlength=trace.num_workers)
    return [float(c) for c in 100.0 * counts / max(1, counts.sum())]


def _max_diff(a, b) -> float:
    return float(max((np.max(np.abs(np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)))
                      for x, y in zip(a, b)), default=0.0))


def validate_run(run_dir: Path, data_dir=None) -> dict:
    """Every number of one live run's validation (see the module docstring)."""
    result = json.loads((run_dir / "result.json").read_text())
    cfg = from_dict(result["config"])
    seed, live = result["seed"], result["live"]
    trace = Trace.load(run_dir / "trace.npz")
    wl = workload(cfg, data_dir)
    params0 = wl.model.init(jax.random.PRNGKey(seed))
    problem = wl.problem(params0, result.get("split", "test"))
    rule = rule_for(result["algorithm"], result["base"], cfg)
    mode = resolve_mode(cfg)

    def replayed(t: Trace, keep: bool = False):
        return replay(t, rule, problem, eval_every=cfg.eval_every, seed=seed, mode=mode, keep_params=keep)

    history = replayed(trace, keep=True)
    leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(jax.device_get(history.params))]
    if (run_dir / "params.npz").is_file():
        with np.load(run_dir / "params.npz") as z:
            params_diff = _max_diff(leaves, [z[f"leaf{i}"] for i in range(len(leaves))])
    else:  # a committed run keeps only the parameters' sha256
        params_diff = 0.0 if params_sha256(history.params) == live["params_sha256"] else None
    live_history = result["history"]
    replay_history = history.to_records()
    history_diff = (_max_diff([[e["loss"], e["accuracy"]] for e in live_history],
                              [[e["loss"], e["accuracy"]] for e in replay_history])
                    if len(live_history) == len(replay_history) else float("inf"))

    traces = {"live": trace,
              "simulated": trace_for(cfg, result["algorithm"], seed, None, wl.num_classes,
                                     float(parameter_bytes(cfg.model, cfg.dataset))),
              "calibrated": simulate(calibrated_spec(run_dir, cfg.workers, live["time_scale"]), trace.policy,
                                     cfg.updates, seed)}
    compute_only = simulate(calibrated_spec(run_dir, cfg.workers, live["time_scale"], delays=False), trace.policy,
                            cfg.updates, seed)
    queued = simulate(calibrated_spec(run_dir, cfg.workers, live["time_scale"], service_queue=True), trace.policy,
                      cfg.updates, seed)
    outcome = {"live": {"final_accuracy": result["final_accuracy"], "accuracy_std": result["accuracy_std"]}}
    for kind in ("simulated", "calibrated"):
        m = metrics_of(replayed(traces[kind]), cfg, wl.num_classes)
        outcome[kind] = {"final_accuracy": m["final_accuracy"], "accuracy_std": m["accuracy_std"]}
    return {
        "run": run_dir.name, "algorithm": result["algorithm"], "base": result["base"], "seed": seed,
        "policy": trace.policy, "dataset": cfg.dataset, "workers": cfg.workers, "updates": cfg.updates,
        "spread": cfg.spread, "compute": cfg.compute, "time_scale": live["time_scale"], "replay_mode": mode,
        "replay_max_abs_diff": params_diff, "replay_history_max_abs_diff": history_diff,
        "staleness": {k: _staleness(t) for k, t in traces.items()},
        "ks": {k: ks_distance(traces["live"].staleness, traces[k].staleness) for k in ("simulated", "calibrated")},
        "shares": {k: _shares(t) for k, t in traces.items()},
        "outcome": outcome,
        "compute_only": {"staleness": _staleness(compute_only),
                         "ks": ks_distance(traces["live"].staleness, compute_only.staleness)},
        "service_queue": {"staleness": _staleness(queued), "ks": ks_distance(traces["live"].staleness, queued.staleness)},
        "updates_per_sim_second": {k: t.num_updates / t.sim_time for k, t in traces.items()},
        "histogram": {k: np.bincount(t.staleness).tolist() for k, t in traces.items()},
        "measured": {k: live[k] for k in ("wall_time", "overrun_fraction", "real_gradient_ms", "overrun_ms",
                                          "pull_latency_ms", "push_latency_ms", "service_ms", "crashes", "cores")},
    }


def validate_folder(folder: Path, data_dir=None) -> dict:
    return {"runs": [validate_run(d, data_dir) for d in live_runs(folder)]}
