"""The report of ``stalesim validate``: its terminal table, its figure and docs/validation.md, from the numbers ``validate`` measured."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from scenarios.live.validate import KINDS
from scenarios.reports import style


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
             "simulator would draw for it (the configured compute model over the worker's speed) times the time "
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
