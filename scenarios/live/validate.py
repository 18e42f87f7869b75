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
import os
from collections import defaultdict
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
from scenarios.reports import style
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
                          "write them with 'stalesim live SCENARIO --out DIR'")
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


# ------------------------------------------------------------------ reading the numbers
def groups(report: dict) -> dict:
    """Runs grouped by what they share but the seed: (dataset, workers, policy, algorithm, base, time scale)."""
    out = defaultdict(list)
    for r in report["runs"]:
        out[(r["dataset"], r["workers"], r["policy"], r["algorithm"], r["base"], r["time_scale"])].append(r)
    return dict(out)


def _share_gap(r: dict, kind: str) -> float:
    return float(np.max(np.abs(np.asarray(r["shares"][kind]) - np.asarray(r["shares"]["live"]))))


def _mean(values) -> float:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else float("nan")


def _pct(x) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{100 * x:.1f}"


def table(report: dict) -> str:
    """A terminal table: one line per run."""
    lines = [f"{'run':<34} {'replay':>7} {'staleness mean live/sim/cal':>29} {'KS sim/cal':>11} "
             f"{'share gap sim/cal':>18} {'acc. live/sim/cal':>18}"]
    for r in report["runs"]:
        s, o = r["staleness"], r["outcome"]
        diff = r["replay_max_abs_diff"]
        lines.append(f"{r['run'][:34]:<34} {('?' if diff is None else f'{diff:.1g}'):>7} "
                     f"{s['live']['mean']:>9.2f} {s['simulated']['mean']:>9.2f} {s['calibrated']['mean']:>9.2f} "
                     f"{r['ks']['simulated']:>5.3f} {r['ks']['calibrated']:>5.3f} "
                     f"{_share_gap(r, 'simulated'):>8.2f} {_share_gap(r, 'calibrated'):>9.2f} "
                     f"{_pct(o['live']['final_accuracy']):>6} {_pct(o['simulated']['final_accuracy']):>5} "
                     f"{_pct(o['calibrated']['final_accuracy']):>5}")
    return "\n".join(lines)


# ------------------------------------------------------------------ the figure
LINES = {"live": ("black", "-", "live"), "simulated": ("tab:blue", (0, (4, 1.5)), "simulated (as configured)"),
         "calibrated": ("tab:orange", (0, (1, 1.2)), "calibrated from the live run")}


def figure(report: dict, path: Path) -> Path:
    """Per group of runs (pooled over seeds): the staleness distributions, live and simulated, and each
    worker's share of the updates. PNG and PDF with a caption (``style.save``)."""
    grouped = groups(report)
    with style.context():
        fig, axes = style.figure(style.PAGE, 4.6, nrows=2, ncols=len(grouped))
        for col, (key, runs) in enumerate(grouped.items()):
            dataset, workers, policy, algorithm, base, _ = key
            top, bottom = axes[0, col], axes[1, col]
            for kind in KINDS:
                counts = defaultdict(int)
                for r in runs:
                    for v, c in enumerate(r["histogram"][kind]):
                        counts[v] += c
                total = sum(counts.values())
                xs = np.arange(max(counts) + 2)
                ys = np.asarray([counts.get(int(x), 0) / total for x in xs])
                color, dash, label = LINES[kind]
                top.step(xs, ys, where="mid", color=color, linestyle=dash, linewidth=1.0, label=label)
            top.set_title(f"{style.label(algorithm)} ({policy}), {workers} workers, {len(runs)} seed"
                          f"{'s' if len(runs) > 1 else ''}")
            top.set_xlabel("staleness (versions)")
            top.set_ylabel("fraction of updates")
            live = np.cumsum([sum(r["histogram"]["live"][v] if v < len(r["histogram"]["live"]) else 0
                                  for r in runs) for v in range(len(xs))])
            top.set_xlim(-0.5, int(np.searchsorted(live, 0.999 * live[-1])) + 1.5)  # the last 0.1% is a long tail
            shares = {k: np.mean([r["shares"][k] for r in runs], axis=0) for k in KINDS}
            x = np.arange(workers)
            bottom.bar(x, shares["live"], color="0.75", width=0.8, label="live share (bars)")
            for kind, mark in (("simulated", "o"), ("calibrated", "x")):
                color, _, label = LINES[kind]
                bottom.plot(x, shares[kind], linestyle="none", marker=mark, markersize=3, color=color,
                            label=f"{kind} share")
            bottom.set_xlabel("worker (slowest first)")
            bottom.set_ylabel("share of updates (%)")
            if workers > 12:
                bottom.set_xticks(x[::5])
            else:
                bottom.set_xticks(x)
        handles, labels = axes[0, 0].get_legend_handles_labels()
        more, more_labels = axes[1, 0].get_legend_handles_labels()
        fig.legend(handles + more, labels + more_labels, loc="outside upper center", ncols=3, frameon=False)
        caption = ("Live runs against the simulator. Top: the distribution of staleness (versions between a "
                   "gradient's read and its apply) of the live runs (black), the simulator as configured (blue, "
                   "dashed) and the simulator calibrated from each live run's measured compute times, latencies "
                   "and service time (orange, dotted), pooled over seeds. Bottom: each worker's share of the "
                   "applied updates, in percent, mean over seeds: live (grey bars), simulated (blue circles), "
                   "calibrated (orange crosses). The staleness axes stop where 99.9% of the live updates lie.")
        return style.save(fig, path, caption)


# ------------------------------------------------------------------ docs/validation.md
def markdown(report: dict, folder: Path, doc: Path) -> str:
    """``doc`` (docs/validation.md): how well the simulator predicts live runs, from ``report``
    (the folder's validation.json) and the figure beside it."""
    folder = Path(folder)
    png = Path(os.path.relpath(folder / "validation.png", Path(doc).parent)).as_posix()
    lines = ["# The simulator validated against live runs", "",
             f"Generated by `stalesim validate {folder.as_posix()} --doc docs/validation.md` from the live runs "
             f"committed under `{folder.as_posix()}` (written by `stalesim live`, see below); a test fails when this "
             "file is not what the generator writes from them.", "",
             "A live run trains for real: this process is the parameter server, and each worker is its own process "
             "computing real JAX gradients on its own minibatches, each step held to the compute time the "
             "simulator would draw for it (the configured compute model over the node's speed) times the time "
             "scale, so the configured heterogeneity exists in wall time. The server applies every gradient with "
             "the rule `stalesim run` uses, under the same policy, and logs a trace. For each run:", "",
             "- **replay**: `algorithms.replay` of the live trace gives the live run's final parameters bit for bit "
             "(largest absolute difference below);",
             "- **simulated**: the simulator as configured, at the run's seed (the trace `stalesim run` replays);",
             "- **calibrated**: the simulator with each worker's measured compute times (`compute=replay`, one column "
             "per worker, from the run's `compute_times.csv`), the measured pull and push latencies "
             "(`latency + Exp(jitter)`) and the measured service time (counted in the pull delay: see the last "
             "section).", "",
             "The live runs: `stalesim live fmnist --algorithms asgd,gsgm --base sgd --workers 10 --seeds 3 "
             "--updates 2000 --out docs/validation-data` and `stalesim live fmnist --algorithms asgd --base sgd "
             "--workers 30 --seeds 1 --updates 2000 --out docs/validation-data` (their parameters' files removed: "
             "result.json keeps their sha256, which the replay's must match).", ""]
    lines += ["## Staleness, shares and outcome", "",
              "Mean over seeds. *KS*: Kolmogorov-Smirnov distance to the live staleness distribution; *share gap*: "
              "the largest difference, over workers, of a worker's share of the updates (percentage points); "
              "*acc.*: final test accuracy (%) of the trace replayed at the run's seed, and *std* the accuracy std "
              "over the second half (%).", "",
              "| runs | replay max abs diff | staleness mean live / sim. / cal. | p95 live / sim. / cal. | "
              "max live / sim. / cal. | KS sim. / cal. | share gap sim. / cal. (pts) | acc. live / sim. / cal. | "
              "std live / sim. / cal. |", "|---|---|---|---|---|---|---|---|---|"]
    for (dataset, workers, policy, algorithm, base, scale), runs in groups(report).items():
        def m(kind, stat):
            return _mean([r["staleness"][kind][stat] for r in runs])

        def o(kind, stat):
            return _mean([r["outcome"][kind][stat] for r in runs])
        diffs = [r["replay_max_abs_diff"] for r in runs]
        diff = "unknown" if any(d is None for d in diffs) else f"{max(diffs):g}"
        fmt = lambda v: "—" if not np.isfinite(v) else f"{100 * v:.1f}"  # noqa: E731
        lines.append(
            f"| {dataset}, {workers} workers, {style.label(algorithm)} on {base} ({policy}), time scale {scale:g}, "
            f"{len(runs)} seed{'s' if len(runs) > 1 else ''} | {diff} | "
            f"{m('live', 'mean'):.2f} / {m('simulated', 'mean'):.2f} / {m('calibrated', 'mean'):.2f} | "
            f"{m('live', 'p95'):.1f} / {m('simulated', 'p95'):.1f} / {m('calibrated', 'p95'):.1f} | "
            f"{m('live', 'max'):.1f} / {m('simulated', 'max'):.1f} / {m('calibrated', 'max'):.1f} | "
            f"{_mean([r['ks']['simulated'] for r in runs]):.3f} / {_mean([r['ks']['calibrated'] for r in runs]):.3f} | "
            f"{_mean([_share_gap(r, 'simulated') for r in runs]):.2f} / "
            f"{_mean([_share_gap(r, 'calibrated') for r in runs]):.2f} | "
            f"{fmt(o('live', 'final_accuracy'))} / {fmt(o('simulated', 'final_accuracy'))} / "
            f"{fmt(o('calibrated', 'final_accuracy'))} | {fmt(o('live', 'accuracy_std'))} / "
            f"{fmt(o('simulated', 'accuracy_std'))} / {fmt(o('calibrated', 'accuracy_std'))} |")
    lines += ["", f"![live and simulated staleness, and per-worker shares]({png})", "",
              "*" + (folder / "validation.txt").read_text().strip() + "*" if (folder / "validation.txt").is_file()
              else "", ""]
    lines += ["## What the simulator leaves out, measured", "",
              "What a live step costs besides the emulated compute time (medians over the runs' gradients, "
              "milliseconds of wall time), and what it does to staleness: *as configured* is the simulator "
              "without any of it; *compute only* is the calibrated simulator without the latencies and the "
              "service time (the measured compute times alone, overruns included); *service queue* is the "
              "calibrated simulator with the service time given to its `service_time` (a queue of applies) "
              "instead of the pull delay.", "",
              "The simulator's service queue releases a white list's waiting workers one apply at a time, so "
              "each reads parameters from before the rest of the refill; the live server, like the simulator "
              "with `service_time = 0`, applies the whole refill and then serves the pulls. Under "
              "whitelist-wait any positive `service_time` (1e-6 simulated seconds already) moves the "
              "simulated mean staleness from that of the list's rounds to about N - 1 (the *service queue* "
              "column), which the live runs do not show; the calibrated simulator therefore counts the "
              "service time in the pull delay.", "",
              "| runs | real gradient | steps overrun | pull latency | push latency | service | mean staleness: "
              "live / as configured / compute only / calibrated / service queue | KS compute only / service queue |",
              "|---|---|---|---|---|---|---|---|"]
    for (dataset, workers, policy, algorithm, base, scale), runs in groups(report).items():
        med = lambda name: _mean([r["measured"][name]["median"] for r in runs])  # noqa: E731
        lines.append(
            f"| {dataset}, {workers} workers, {style.label(algorithm)} ({policy}) | {med('real_gradient_ms'):.2f} | "
            f"{100 * _mean([r['measured']['overrun_fraction'] for r in runs]):.1f}% | {med('pull_latency_ms'):.2f} | "
            f"{med('push_latency_ms'):.2f} | {med('service_ms'):.2f} | "
            f"{_mean([r['staleness']['live']['mean'] for r in runs]):.2f} / "
            f"{_mean([r['staleness']['simulated']['mean'] for r in runs]):.2f} / "
            f"{_mean([r['compute_only']['staleness']['mean'] for r in runs]):.2f} / "
            f"{_mean([r['staleness']['calibrated']['mean'] for r in runs]):.2f} / "
            f"{_mean([r['service_queue']['staleness']['mean'] for r in runs]):.2f} | "
            f"{_mean([r['compute_only']['ks'] for r in runs]):.3f} / {_mean([r['service_queue']['ks'] for r in runs]):.3f} |")
    lines.append("")
    return "\n".join(lines)
