"""A sweep's outputs from its results: the tidy table (one row per run), the figures, and a summary of what the data shows."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from algorithms import registry
from scenarios.experiments.results import RunResult, write_text_atomic
from scenarios.experiments.sweep import Sweep
from scenarios.reports.plots import sweep_figures
from scenarios.reports.stats import censored_times, estimate, time_to_target


def tidy_rows(results: list[RunResult], sweep: Sweep) -> list[dict]:
    rows = []
    for r in results:
        row = {name: r.config[name] for name in sweep.axes}
        row.update(algorithm=r.algorithm, base=r.base, seed=r.seed, policy=r.policy,
                   mean_staleness=r.trace["mean_staleness"], p95_staleness=r.trace["p95_staleness"],
                   max_staleness=r.trace["max_staleness"], sim_time=r.trace["sim_time"],
                   final_accuracy=r.final_accuracy, accuracy_std=r.accuracy_std, diverged=r.diverged,
                   outcome=r.outcome, time_to_target=time_to_target(r.history, sweep.target_accuracy))
        lr = f"lr_{r.base}"
        row.update(learning_rate=r.config.get(lr), learning_rate_source=r.hyperparameters.get(lr, {}).get("source", ""))
        rows.append(row)
    return rows


def tidy_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


def _shape(row: dict, axes) -> str:
    return ", ".join(f"{a}={row[a]}" for a in axes)


def _spearman(x, y) -> float:
    if len(x) < 3:
        return float("nan")
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    if np.std(rx) == 0 or np.std(ry) == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


MIN_POINTS = 5  # no correlation or trend sentence from fewer runs


def write_sweep_report(results: list[RunResult], sweep: Sweep, out: Path) -> str:
    """The tidy CSV, plots and a Markdown summary of what the data shows (and no more)."""


    rows = tidy_rows([r for r in results if r.split == "test"], sweep)
    write_text_atomic(out / "runs.csv", tidy_csv(rows))
    axes = list(sweep.axes)
    shapes = sorted({_shape(r, axes) for r in rows})
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["algorithm"], _shape(r, axes)), []).append(r)

    def converged(rs, key):
        return [r[key] for r in rs if r["outcome"] == "converged"]

    sweep_figures(results, sweep, out / "plots")

    lines = [f"# Sweep {sweep.name}", "",
             f"Base experiment `{sweep.experiment}`; axes: " + "; ".join(f"{a} in {sweep.axes[a]}" for a in axes)
             + f"; {', '.join(registry.display_name(a) for a in sweep.algorithms)} on {', '.join(sweep.bases)}; "
             f"{sweep.seeds} seeds; {len(rows)} runs.", "", _rates(rows), "", "## What the data shows", ""]
    for algorithm in sweep.algorithms:
        mine = [r for r in rows if r["algorithm"] == algorithm]
        rs = [r for r in mine if r["outcome"] == "converged"]
        counts = f"{len(rs)}/{len(mine)} runs converged"
        if len(rs) < MIN_POINTS:
            lines.append(f"- **{registry.display_name(algorithm)}**: too few runs for a trend ({counts}; a rank "
                         f"correlation needs at least {MIN_POINTS}).")
            continue
        rho = _spearman([r["mean_staleness"] for r in rs], [r["accuracy_std"] for r in rs])
        rho_acc = _spearman([r["mean_staleness"] for r in rs], [r["final_accuracy"] for r in rs])
        lines.append(f"- **{registry.display_name(algorithm)}**: rank correlation of mean staleness with accuracy "
                     f"std {_rho(rho)}, with final accuracy {_rho(rho_acc)} ({counts}).")
    stale = {s: np.mean([r["mean_staleness"] for a in sweep.algorithms for r in groups.get((a, s), [])]) for s in shapes}
    worst = max(shapes, key=lambda s: stale[s])
    stds = {a: estimate(converged(groups.get((a, worst), []), "accuracy_std")) for a in sweep.algorithms}
    ranked = sorted((a for a in sweep.algorithms if stds[a].mean is not None), key=lambda a: stds[a].mean)
    if len(ranked) >= 2 and min(stds[a].n for a in ranked) >= 2:
        lines.append(f"- At the most stale cluster shape ({worst}) the lowest accuracy std is "
                     f"{registry.display_name(ranked[0])}'s, then "
                     + ", ".join(registry.display_name(a) for a in ranked[1:])
                     + " (means over converged seeds; intervals in the table below).")
    else:
        lines.append(f"- At the most stale cluster shape ({worst}): too few converged runs to rank the algorithms.")
    lines += ["", "## Per cluster shape (mean ± 95% interval over converged seeds)", "",
              "| shape | algorithm | converged | mean / p95 staleness | final acc. (%) | acc. std (%) | "
              f"time to {100 * sweep.target_accuracy:.0f}% |", "|---|---|---|---|---|---|---|"]
    for s in shapes:
        for a in sweep.algorithms:
            rs = groups.get((a, s), [])
            if not rs:
                continue
            ms = np.mean([r["mean_staleness"] for r in rs])
            p95 = np.mean([r["p95_staleness"] for r in rs])
            outcomes = f"{sum(r['outcome'] == 'converged' for r in rs)}/{len(rs)}" + "".join(
                f", {sum(r['outcome'] == o for r in rs)} {o}" for o in ("failed", "diverged")
                if any(r["outcome"] == o for r in rs))
            ttt = censored_times([r["time_to_target"] for r in rs], [r["sim_time"] for r in rs]).format()
            lines.append(f"| {s} | {registry.display_name(a)} | {outcomes} | {ms:.1f} / {p95:.0f} | "
                         f"{estimate(converged(rs, 'final_accuracy')).format()} | "
                         f"{estimate(converged(rs, 'accuracy_std')).format(digits=2)} | {ttt} |")
    plots = sorted(p.name for p in (out / "plots").glob("*.png"))
    lines += ["", "Plots (PNG and PDF, each with a caption .txt): " + ", ".join(f"`plots/{p}`" for p in plots)
              + "; every run: `runs.csv`.", ""]
    summary = "\n".join(lines)
    write_text_atomic(out / "summary.md", summary)
    return summary


def _rates(rows: list[dict]) -> str:
    """The learning rates the sweep ran at, and where they came from."""
    rates = sorted({(r["base"], r["learning_rate"], r["learning_rate_source"] or "unrecorded") for r in rows},
                   key=str)
    tuned = all(source in ("tuned here", "shipped") for _, _, source in rates)
    return ("Learning rates: " + "; ".join(f"{base} {rate:g} ({source})" for base, rate, source in rates)
            + ("." if tuned else "; not tuned for these cluster shapes (a `[tune]` table tunes them per shape)."))


def _rho(value: float) -> str:
    return "undefined (no variation)" if math.isnan(value) else f"{value:+.2f}"
