"""An experiment's report figures: accuracy against simulated time, staleness per policy, stability bars."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from algorithms import registry
from scenarios.reports import style
from scenarios.reports.plots.common import (
    BASE_ORDER,
    _accuracy_name,
    _legend_on_top,
    _mean_band,
    _seeds_text,
    _setting_note,
    _sort_key,
    _value,
    _yerr,
    base_label,
    field_label,
)
from scenarios.reports.plots.staleness import staleness_histograms


def report_figures(results, rows: list[dict], out_dir: Path) -> list[Path]:
    """Draw an experiment's figures under ``out_dir``; return the PNG paths (PDFs and captions beside)."""
    out_dir = Path(out_dir)
    if not results:
        return []
    with style.context():
        paths = [accuracy_vs_time(results, out_dir / "accuracy_vs_time")]
        hist = staleness_histograms(results, out_dir / "staleness_histograms",
                                    axes=[results[0].axis] if any(r.axis for r in results) else [])
        if hist is not None:
            paths.append(hist)
        if rows:
            paths.append(stability_bars(rows, out_dir / "stability"))
    return paths


def _curve(runs, accuracy_key="accuracy"):
    """Mean and 95% band over runs on a common simulated-time grid (up to the earliest-finishing run)."""
    histories = [r.history for r in runs if r.history]
    if not histories:
        return None
    end = min(h[-1]["sim_time"] for h in histories)
    grid = np.unique(np.concatenate([[e["sim_time"] for e in h if e["sim_time"] <= end] for h in histories]))
    if len(grid) == 0:
        return None
    values = np.array([np.interp(grid, [e["sim_time"] for e in h], [e[accuracy_key] for e in h])
                       for h in histories])
    mean, half = _mean_band(values)
    return grid, mean, half, len(histories)


def accuracy_vs_time(results, path: Path) -> Path:
    """Accuracy against simulated time: one panel per (axis value, base), shared y axis, one legend."""
    import matplotlib.lines as mlines

    axis_name = next((r.axis for r in results if r.axis), None)
    groups = defaultdict(list)
    for r in results:
        groups[(r.axis_value, r.base, r.algorithm)].append(r)
    panels = sorted({(k[0], k[1]) for k in groups}, key=lambda p: (_sort_key(p[0]), BASE_ORDER.get(p[1], 9), p[1]))
    algorithms = sorted({k[2] for k in groups}, key=lambda a: (registry.order(a), a))
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    width = style.COLUMN if ncols == 1 else style.PAGE
    fig, axes = style.figure(width, (2.0 if ncols > 1 else 2.3) * nrows + 0.35, nrows, ncols, sharey=True)
    seeds, diverged_notes = [], []
    for ax, (axis_value, base) in zip(axes.flat, panels):
        notes = []
        for algorithm in algorithms:
            runs = groups.get((axis_value, base, algorithm), [])
            if not runs:
                continue
            kept = [r for r in runs if r.outcome != "diverged"]
            if len(kept) < len(runs):
                notes.append(f"{style.label(algorithm)}: {len(runs) - len(kept)}/{len(runs)} diverged")
            curve = _curve(kept)
            if curve is None:
                continue
            t, mean, half, n = curve
            seeds.append(n)
            c = style.color(algorithm)
            ax.plot(t, 100 * mean, color=c, ls=style.linestyle(algorithm), lw=1.0)
            if half is not None:  # accuracy lies in [0, 100]%: so does the band
                ax.fill_between(t, np.clip(100 * (mean - half), 0, 100), np.clip(100 * (mean + half), 0, 100),
                                color=c, alpha=style.BAND_ALPHA, lw=0)
        title = base_label(base)
        if axis_name:
            title = f"{field_label(axis_name)} = {_value(axis_value)}, {title}"
        ax.set_title(title)
        if notes:
            ax.text(0.98, 0.03, "\n".join(notes), transform=ax.transAxes, ha="right", va="bottom",
                    fontsize=style.SMALL_SIZE - 1, color="0.3")
            diverged_notes += notes
        ax.set_xlim(left=0)
        ax.margins(x=0.02)
    for ax in axes[-1]:
        ax.set_xlabel("simulated time (s)")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{_accuracy_name(results)} (%)")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    present = [a for a in algorithms if any(k[2] == a for k in groups)]
    handles = [mlines.Line2D([], [], color=style.color(a), ls=style.linestyle(a), lw=1.2) for a in present]
    _legend_on_top(fig, handles, [style.label(a) for a in present])
    what = "base optimizer" + (f" and {field_label(axis_name)}" if axis_name else "")
    caption = (
        f"{_accuracy_name(results).capitalize()} (%) against simulated time (s), one panel per {what}; "
        f"colour and dash pattern per algorithm. Lines: mean over {_seeds_text(seeds)} of each run's evaluations, "
        "linearly interpolated onto a common simulated-time grid; a curve ends where its earliest-finishing seed "
        "ends (every run makes the same number of updates; a server that waits takes longer to make them). "
        "Shaded: 95% t-interval of the mean over seeds, cut to 0-100% (no band where there is one seed). "
        "Runs that failed (did not reach and hold the target accuracy) are included. "
        + ("Runs that diverged are left out and counted in their panel. " if diverged_notes else "")
        + _setting_note(results))
    return style.save(fig, path, caption)


def stability_bars(rows: list[dict], path: Path) -> Path:
    """Accuracy std over the second half per algorithm and (axis value, base), 95% interval bars."""
    import matplotlib.patches as mpatches

    axis_name = next((r["axis_name"] for r in rows if r["axis_name"]), None)
    groups = sorted({(r["axis"], r["base"]) for r in rows},
                    key=lambda g: (_sort_key(g[0]), BASE_ORDER.get(g[1], 9), g[1]))
    algorithms = sorted({r["algorithm"] for r in rows}, key=lambda a: (registry.order(a), a))
    width = 0.8 / max(1, len(algorithms))
    wide = len(groups) * len(algorithms) > 12
    fig, axes = style.figure(style.PAGE if wide else style.COLUMN, 2.3)
    ax = axes[0, 0]
    by_key = {(r["axis"], r["base"], r["algorithm"]): r for r in rows}
    missing, counts = [], []
    top = 0.0
    for j, algorithm in enumerate(algorithms):
        for i, g in enumerate(groups):
            row = by_key.get((g[0], g[1], algorithm))
            if row is None:
                continue
            x = i + (j - (len(algorithms) - 1) / 2) * width
            est = row["accuracy_std"]
            if est.mean is None:
                missing.append((x, row))
                continue
            counts.append(est.n)
            err = _yerr(100 * est.mean, None if est.half_width is None else 100 * est.half_width)
            ax.bar(x, 100 * est.mean, width * 0.92, color=style.color(algorithm), lw=0)
            if err is not None:
                ax.errorbar(x, 100 * est.mean, yerr=err, color="0.15", lw=0.7, capsize=1.5, capthick=0.7)
            top = max(top, 100 * (est.mean + (est.half_width or 0)))
    for x, row in missing:
        ax.text(x, 0, "n/c", ha="center", va="bottom", fontsize=style.SMALL_SIZE - 1, color="0.3")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([(f"{field_label(axis_name)} = {_value(g[0])}\n" if axis_name else "") + base_label(g[1])
                        for g in groups])
    ax.set_xlim(-0.5, len(groups) - 0.5)
    ax.set_ylim(0, top * 1.08 if top > 0 else 1)
    ax.grid(axis="x", visible=False)
    ax.set_ylabel("accuracy std, 2nd half (pp)")
    handles = [mpatches.Patch(color=style.color(a), lw=0) for a in algorithms]
    _legend_on_top(fig, handles, [style.label(a) for a in algorithms])
    seeds = sorted({r["seeds"] for r in rows})
    caption = (
        "Training stability: each run's standard deviation of accuracy over the evaluations in the second half of "
        "training, in percentage points (pp; lower is more stable), per algorithm (colour) and "
        + ("value of " + field_label(axis_name) + " and " if axis_name else "") + "base optimizer. "
        f"Bars: mean over the seeds that converged ({_seeds_text(counts)} per bar, of {_seeds_text(seeds)} run). "
        "Error bars: 95% t-interval of that mean (none where fewer than two seeds converged; the lower end is cut "
        "at zero). "
        + ("n/c: no seed converged (failed or diverged), so there is no stability to show." if missing else ""))
    return style.save(fig, path, caption)
