"""Figures for papers, from saved results: every one as PNG and PDF, with a caption file beside it.

An experiment's report (``report_figures``) draws

- ``accuracy_vs_time``: accuracy against simulated time, mean over seeds with a 95% band,
  one panel per (axis value, base optimizer);
- ``staleness_histograms``: the staleness of applied gradients under each server policy,
  on shared bins and a shared axis, log scale;
- ``stability``: each algorithm's accuracy std over the second half of training, with 95%
  interval bars.

A sweep's report (``sweep_figures``) draws

- ``stability_vs_staleness``: stability and final accuracy against the staleness each
  setting produced, colour per algorithm, marker per cluster shape;
- ``time_to_target``: simulated time to the target accuracy, censored runs marked;
- ``staleness_by_shape``: staleness histograms per cluster shape;
- ``stability_region`` (sweeps over ``workers`` and a learning rate): per algorithm, the
  fraction of seeds that converged at each number of nodes and learning rate.

Styles (sizes, fonts, colours) come from ``scenarios.style``; names from the registry.
No figure carries a title naming the command that made it: what a figure shows is in its
caption file (``NAME.txt``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Optional

import numpy as np

from algorithms import BASES, registry

from . import style
from .stats import censored_times, estimate, t_quantile, time_to_target

BASE_LABELS = {"sgd": "SGD", "momentum": "momentum SGD", "adam": "Adam"}
BASE_ORDER = {b: i for i, b in enumerate(BASES)}
# how a configuration field reads on an axis or in a panel title (the unit, where it has one)
FIELD_LABELS = {
    "workers": "nodes", "classes_per_worker": "classes per node", "alpha": "Dirichlet alpha",
    "spread": "speed spread (fastest/slowest)", "compute_sigma": "compute-time sigma", "latency": "latency (s)",
    "bandwidth": "bandwidth (bytes/s)", "jitter": "jitter (s)", "batch_size": "batch size",
    "lr_sgd": "learning rate (SGD)", "lr_momentum": "learning rate (momentum SGD)",
    "lr_adam": "learning rate (Adam)", "momentum": "momentum", "updates": "updates",
    "stragglers": "stragglers", "straggler_slowdown": "straggler slowdown (x)",
}
LR_FIELDS = ("lr_sgd", "lr_momentum", "lr_adam")


def base_label(base: str) -> str:
    return BASE_LABELS.get(base, base)


def field_label(name: str) -> str:
    return FIELD_LABELS.get(name, name.replace("_", " "))


def _value(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _setting(config_or_row: dict, names) -> str:
    """``nodes = 10, speed spread = 4`` for the named fields."""
    return ", ".join(f"{field_label(n)} = {_value(config_or_row[n])}" for n in names)


def _sort_key(v):
    return (0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, str(v))


def _seeds_text(counts) -> str:
    counts = sorted(set(counts))
    if not counts:
        return "0 seeds"
    if len(counts) == 1:
        return f"{counts[0]} seed{'s' if counts[0] != 1 else ''}"
    return f"{counts[0]}-{counts[-1]} seeds"


def _accuracy_name(results) -> str:
    splits = {getattr(r, "split", "test") for r in results}
    return "validation accuracy" if splits == {"validation"} else "test accuracy"


def _setting_note(results, varied=()) -> str:
    """What the runs share: dataset, model, nodes, updates (fields that vary are left out)."""
    if not results:
        return ""
    parts = []
    config = results[0].config
    same = {k for k in ("dataset", "model", "workers", "updates", "classes_per_worker", "spread")
            if k not in varied and k in config and all(r.config.get(k) == config[k] for r in results)}
    if "dataset" in same:
        parts.append(f"dataset {config['dataset']}")
    if "model" in same:
        parts.append(f"model {config['model']}")
    if "workers" in same:
        parts.append(f"{config['workers']} nodes")
    if "classes_per_worker" in same:
        k = config["classes_per_worker"]
        parts.append(f"{k} class{'es' if k != 1 else ''} per node")
    if "spread" in same:
        parts.append(f"node speeds spread {config['spread']:g}x")
    if "updates" in same:
        parts.append(f"{config['updates']} updates per run")
    return "Setting: " + ", ".join(parts) + "." if parts else ""


def _mean_band(values: np.ndarray):
    """Per column of ``values`` (seeds x points): mean and half-width of the 95% t-interval (None for 1 seed)."""
    n = values.shape[0]
    mean = values.mean(axis=0)
    if n < 2:
        return mean, None
    return mean, t_quantile(n - 1) * values.std(axis=0, ddof=1) / math.sqrt(n)


def _yerr(mean: float, half: Optional[float], low: float = 0.0, high: float = math.inf):
    """An error bar of +-``half`` around ``mean``, cut to [low, high] (a std is never negative, an
    accuracy never above 100%); None without an interval."""
    if half is None:
        return None
    return [[mean - max(low, mean - half)], [min(high, mean + half) - mean]]


def _legend_on_top(fig, handles, labels, ncols: Optional[int] = None):
    if handles:
        fig.legend(handles, labels, loc="outside upper center", ncols=ncols or min(len(labels), 6),
                   frameon=False)


# ------------------------------------------------------------------ an experiment's report
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
        "Runs that failed (ended near chance accuracy) are included. "
        + ("Runs that diverged are left out and counted in their panel. " if diverged_notes else "")
        + _setting_note(results))
    return style.save(fig, path, caption)


def _histograms(results, axes) -> tuple[dict, list]:
    """(shape label -> policy -> {staleness: count}) pooled over seeds, and the axes that change them.

    An axis that leaves every histogram as it is (a learning rate, the data's split) is dropped,
    so the panels are the distinct cluster shapes."""
    full = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    for r in results:
        shape = tuple(r.config.get(a) for a in axes)
        for v, c in r.trace["staleness_histogram"].items():
            full[shape][r.policy][int(v)] += c
    kept = list(range(len(axes)))
    for i in list(kept):
        others = [j for j in kept if j != i]
        merged: dict = {}
        same = True
        for shape, per_policy in full.items():
            key = tuple(shape[j] for j in others)
            for policy, hist in per_policy.items():
                h = dict(hist)
                total = sum(h.values())
                h = {k: v / total for k, v in h.items()} if total else h
                if (key, policy) in merged and merged[(key, policy)] != h:
                    same = False
                merged.setdefault((key, policy), h)
        if same:
            kept = others
    pooled = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    for shape, per_policy in full.items():
        key = tuple(shape[j] for j in kept)
        for policy, hist in per_policy.items():
            for v, c in hist.items():
                pooled[key][policy][v] += c
    return pooled, [axes[j] for j in kept]


def staleness_histograms(results, path: Path, axes=(), shape_word: str = "") -> Optional[Path]:
    """Staleness of applied gradients per server policy, on shared bins, shared axes, log scale;
    one panel per cluster shape (values of ``axes`` that change the histograms)."""
    import matplotlib.lines as mlines

    results = [r for r in results if r.trace.get("staleness_histogram")]
    if not results:
        return None
    pooled, kept = _histograms(results, list(axes))
    shapes = sorted(pooled, key=lambda s: tuple(_sort_key(v) for v in s))
    policies = sorted({p for per in pooled.values() for p in per})
    users = defaultdict(set)
    for r in results:
        users[r.policy].add(r.algorithm)
    # a policy is drawn in the colour of the first algorithm (registry order) that runs under it
    first = {p: min(users[p], key=lambda a: (registry.order(a), a)) for p in policies}
    policy_color = {p: style.color(first[p]) for p in policies}
    if len(set(policy_color.values())) < len(policies):  # two policies' first users share a colour
        policy_color = {p: style.PALETTE[i % len(style.PALETTE)] for i, p in enumerate(policies)}
    # the mean and p95 of each (shape, policy): the runs' own summaries, averaged, as in the tables
    per_run = defaultdict(list)
    for r in results:
        per_run[(tuple(r.config.get(a) for a in kept), r.policy)].append(r.trace)
    summaries = {k: (float(np.mean([t["mean_staleness"] for t in v])), float(np.mean([t["p95_staleness"] for t in v])))
                 for k, v in per_run.items()}
    top = max(v for per in pooled.values() for hist in per.values() for v in hist)
    width = max(1, math.ceil((top + 1) / 120))
    edges = np.arange(0, top + width + 1, width) - 0.5
    ncols = min(4, len(shapes))
    nrows = -(-len(shapes) // ncols)
    fig, axs = style.figure(style.COLUMN if ncols == 1 else style.PAGE,
                            (2.1 if ncols == 1 else 1.7) * nrows + 0.45, nrows, ncols, sharex=True, sharey=True)
    stats = {}
    for ax, shape in zip(axs.flat, shapes):
        for policy in policies:
            hist = pooled[shape].get(policy)
            if not hist:
                continue
            values = np.array(sorted(hist))
            counts = np.array([hist[v] for v in values], dtype=float)
            fraction, _ = np.histogram(values, bins=edges, weights=counts / counts.sum())
            mean, p95 = summaries[(shape, policy)]
            stats[(shape, policy)] = (mean, p95)
            shown = np.where(fraction > 0, fraction, np.nan)
            ax.stairs(np.nan_to_num(shown, nan=0.0), edges, color=policy_color[policy], lw=0.9,
                      baseline=None)
            ax.axvline(mean, color=policy_color[policy], ls="--", lw=0.7)
        if kept:
            ax.set_title(_setting(dict(zip(kept, shape)), kept))
        ax.set_yscale("log")
    floor = min(hist_min for hist_min in (_min_fraction(pooled[s][p]) for s in shapes for p in pooled[s]))
    for ax in axs.flat:
        ax.set_ylim(bottom=max(floor / 2, 1e-7), top=1.5)
        ax.set_xlim(edges[0], edges[-1] + width)
    for ax in axs[-1]:
        ax.set_xlabel("staleness (versions)")
    for ax in axs[:, 0]:
        ax.set_ylabel("fraction of updates" + (f" ({width}-version bins)" if width > 1 else ""))
    for ax in list(axs.flat)[len(shapes):]:
        ax.set_visible(False)
    handles, labels = [], []
    for policy in policies:
        names = ", ".join(style.label(a) for a in sorted(users[policy], key=lambda a: (registry.order(a), a)))
        text = f"{policy} ({names})"
        if len(shapes) == 1:
            mean, p95 = stats[(shapes[0], policy)]
            text += f": mean {mean:.1f}, p95 {p95:.0f}"
        handles.append(mlines.Line2D([], [], color=policy_color[policy], lw=1.0))
        labels.append(text)
    _legend_on_top(fig, handles, labels, ncols=1 if len(shapes) == 1 else min(len(labels), 3))
    seeds = {r.seed for r in results}
    shapes_text = (f"one panel per {shape_word or 'cluster shape'} ({', '.join(field_label(k) for k in kept)}); "
                   if kept else "")
    caption = (
        "Staleness of the gradients the server applied (versions: how many updates the model advanced between "
        f"a node reading it and its gradient being applied), per server policy; {shapes_text}"
        f"colour per policy (the algorithms running under it in brackets). Lines: fraction of applied updates "
        f"in each bin, pooled over {_seeds_text([len(seeds)])} and the runs sharing a policy; bins {width} version"
        f"{'s' if width > 1 else ''} wide, the same in every panel; log scale. Dashed: mean staleness (the runs' "
        "means, averaged; the legend's mean and p95 are the same averages, as in the tables). "
        + ("Axes dropped from the panels leave the histograms unchanged. " if len(kept) < len(axes) else "")
        + _setting_note(results, varied=axes))
    return style.save(fig, path, caption)


def _min_fraction(hist) -> float:
    total = sum(hist.values())
    return min(hist.values()) / total if total else 1.0


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


# ------------------------------------------------------------------ a sweep's report
def sweep_figures(results, sweep, out_dir: Path) -> list[Path]:
    """Draw a sweep's figures under ``out_dir``; return the PNG paths (PDFs and captions beside)."""
    out_dir = Path(out_dir)
    if not results:
        return []
    axes = list(sweep.axes)
    paths = []
    with style.context():
        _, shape_axes = _histograms(results, axes)
        paths.append(stability_vs_staleness(results, axes, shape_axes, out_dir / "stability_vs_staleness"))
        paths.append(time_to_target_figure(results, axes, sweep.target_accuracy, out_dir / "time_to_target"))
        hist = staleness_histograms(results, out_dir / "staleness_by_shape", axes=axes)
        if hist is not None:
            paths.append(hist)
        region = stability_region(results, axes, out_dir / "stability_region")
        if region is not None:
            paths.append(region)
    return paths


def _by_setting(results, axes):
    groups = defaultdict(list)
    for r in results:
        groups[(r.algorithm, r.base, tuple(r.config.get(a) for a in axes))].append(r)
    return groups


def stability_vs_staleness(results, axes, shape_axes, path: Path) -> Path:
    """Stability and final accuracy against staleness: colour per algorithm, marker per cluster shape."""
    import matplotlib.lines as mlines

    groups = _by_setting(results, axes)
    shapes = sorted({tuple(r.config.get(a) for a in shape_axes) for r in results},
                    key=lambda s: tuple(_sort_key(v) for v in s))
    marker_of = {s: style.marker(i) for i, s in enumerate(shapes)}
    algorithms = sorted({r.algorithm for r in results}, key=lambda a: (registry.order(a), a))
    bases = sorted({r.base for r in results}, key=lambda b: BASE_ORDER.get(b, 9))
    fig, axs = style.figure(style.PAGE, 2.5, 1, 2)
    ax1, ax2 = axs[0]
    # settings of one shape (they differ in other fields, a learning rate say) share an x: spread them
    # sideways a little, so that their error bars stay apart
    other_values = sorted({tuple(v for a, v in zip(axes, setting) if a not in shape_axes)
                           for (_, _, setting) in groups}, key=lambda s: tuple(_sort_key(v) for v in s))
    series = sorted({(a, b) for (a, b, _) in groups}, key=lambda ab: (registry.order(ab[0]), BASE_ORDER.get(ab[1], 9)))
    slots = len(other_values) * len(series)
    span = {k: (max(r.trace[k] for r in results) - min(r.trace[k] for r in results)) or 1.0
            for k in ("mean_staleness", "p95_staleness")}
    step = 0.012 if slots > 1 else 0.0
    drawn, left_out, seeds = 0, 0, []
    for (algorithm, base, setting), runs in sorted(groups.items(), key=lambda kv: registry.order(kv[0][0])):
        converged = [r for r in runs if r.outcome == "converged"]
        seeds.append(len(runs))
        if not converged:
            left_out += 1
            continue
        shape = tuple(r_value for a, r_value in zip(axes, setting) if a in shape_axes)
        slot = (other_values.index(tuple(v for a, v in zip(axes, setting) if a not in shape_axes)) * len(series)
                + series.index((algorithm, base)))
        c, m = style.color(algorithm), marker_of[shape]
        for ax, xkey, ykey in ((ax1, "mean_staleness", "accuracy_std"), (ax2, "p95_staleness", "final_accuracy")):
            x = float(np.mean([r.trace[xkey] for r in runs])) + (slot - (slots - 1) / 2) * step * span[xkey]
            est = estimate([getattr(r, ykey) for r in converged])
            yerr = _yerr(100 * est.mean, None if est.half_width is None else 100 * est.half_width, 0.0,
                         100.0 if ykey == "final_accuracy" else math.inf)
            ax.errorbar(x, 100 * est.mean, yerr=yerr, color=c, marker=m, ls="none", mfc=c, mec="white", mew=0.3,
                        elinewidth=0.6, capsize=1.5, alpha=0.9)
        drawn += 1
    ax1.set_xlabel("mean staleness (versions)")
    ax1.set_ylabel("accuracy std, 2nd half (pp)")
    ax2.set_xlabel("95th-percentile staleness (versions)")
    ax2.set_ylabel("final accuracy (%)")
    for ax, letter in ((ax1, "a"), (ax2, "b")):
        ax.set_title(f"({letter}) " + ("stability" if ax is ax1 else "accuracy") + " against staleness",
                     loc="left")
    handles = [mlines.Line2D([], [], color=style.color(a), marker="o", ls="none") for a in algorithms]
    labels = [style.label(a) for a in algorithms]
    if shape_axes:
        handles += [mlines.Line2D([], [], color="0.35", marker=marker_of[s], ls="none") for s in shapes]
        labels += [_setting(dict(zip(shape_axes, s)), shape_axes) for s in shapes]
    fig.legend(handles, labels, loc="outside right center", ncols=1, frameon=False)
    other = [a for a in axes if a not in shape_axes]
    base_text = f" on {', '.join(base_label(b) for b in bases)}" if bases else ""
    caption = (
        f"(a) Stability (each run's standard deviation of accuracy over the second half of training, percentage "
        f"points) against the trace's mean staleness (versions); (b) final accuracy (%) against the trace's "
        f"95th-percentile staleness (versions). One point per algorithm{base_text} and sweep setting"
        + (f" (settings differ in {', '.join(field_label(a) for a in other)} too; those share a marker)"
           if other else "")
        + f": colour per algorithm, marker per cluster shape"
        + (f" ({', '.join(field_label(a) for a in shape_axes)})" if shape_axes else "")
        + f". y: mean over the seeds that converged, of {_seeds_text(seeds)} per setting; error bars: 95% "
        "t-interval of that mean, cut at 0 and 100% (none where fewer than two converged); x: mean over all the "
        "setting's runs"
        + (f", points that would share an x spread sideways by up to {100 * step * (slots - 1) / 2:.0f}% of the "
           "axis's range so that their bars stay apart" if step else "")
        + ". "
        + (f"{left_out} of {left_out + drawn} settings in which no seed converged are not drawn. " if left_out
           else "")
        + _setting_note(results, varied=axes))
    return style.save(fig, path, caption)


def _x_axis(axes, results):
    """The sweep axis along x (the last one with more than one value) and the rest (one panel per combination)."""
    varied = [a for a in axes if len({_hashable(r.config.get(a)) for r in results}) > 1] or list(axes)
    if not varied:
        return None, []
    return varied[-1], [a for a in varied[:-1]]


def _hashable(v):
    return tuple(v) if isinstance(v, list) else v


def time_to_target_figure(results, axes, target: float, path: Path) -> Path:
    """Simulated time to the target accuracy per setting; censored runs marked at the time they stopped."""
    import matplotlib.lines as mlines

    xaxis, panel_axes = _x_axis(axes, results)
    algorithms = sorted({r.algorithm for r in results}, key=lambda a: (registry.order(a), a))
    bases = sorted({r.base for r in results}, key=lambda b: BASE_ORDER.get(b, 9))
    series = [(a, b) for b in bases for a in algorithms if any(r.algorithm == a and r.base == b for r in results)]
    xs = sorted({_hashable(r.config.get(xaxis)) for r in results}, key=_sort_key) if xaxis else [None]
    panels = sorted({tuple(_hashable(r.config.get(a)) for a in panel_axes) for r in results},
                    key=lambda s: tuple(_sort_key(v) for v in s))
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    wide = ncols > 1 or len(xs) * len(series) > 10
    fig, axs = style.figure(style.PAGE if wide else style.COLUMN, 2.2 * nrows + 0.4, nrows, ncols, sharey=True)
    width = 0.8 / max(1, len(series))
    any_censored, all_counts = False, []
    for ax, panel in zip(axs.flat, panels):
        for j, (algorithm, base) in enumerate(series):
            c = style.color(algorithm)
            for i, xv in enumerate(xs):
                runs = [r for r in results if r.algorithm == algorithm and r.base == base
                        and tuple(_hashable(r.config.get(a)) for a in panel_axes) == panel
                        and (xaxis is None or _hashable(r.config.get(xaxis)) == xv)]
                if not runs:
                    continue
                x = i + (j - (len(series) - 1) / 2) * width
                times = [time_to_target(r.history, target) for r in runs]
                watched = [r.sim_time for r in runs]
                cens = censored_times(times, watched)
                all_counts.append(len(runs))
                reached = [t for t in times if t is not None]
                if reached and len(reached) == len(runs):
                    est = estimate(reached)
                    yerr = _yerr(est.mean, est.half_width)
                    ax.errorbar(x, est.mean, yerr=yerr, color=c, marker="o", ls="none", elinewidth=0.7,
                                capsize=1.5)
                    continue
                any_censored = True
                for t in reached:  # the runs that did reach it, each on its own
                    ax.plot(x, t, marker="o", ls="none", color=c, ms=2.5, alpha=0.8)
                stop = cens.longest_censored
                ax.plot(x, stop, marker="^", ls="none", mfc="white", mec=c, mew=0.8)
                missed = [r for r, t in zip(runs, times) if t is None]
                diverged = sum(r.outcome == "diverged" for r in missed)
                text = f"not reached\n{len(missed)}/{len(runs)}"
                if diverged == len(missed):
                    text = f"diverged\n{len(missed)}/{len(runs)}"
                elif diverged:
                    text += f" ({diverged} div.)"
                ax.annotate(text, (x, stop),
                            xytext=(0, 4), textcoords="offset points", ha="center", va="bottom",
                            fontsize=style.SMALL_SIZE - 2, color=c, linespacing=0.9)
        ax.set_xticks(range(len(xs)))
        ax.set_xticklabels([_value(v) for v in xs] if xaxis else [""],
                           rotation=45 if len(xs) > 5 else 0, ha="right" if len(xs) > 5 else "center")
        ax.set_xlim(-0.6, len(xs) - 0.4)
        ax.grid(axis="x", visible=False)
        if xaxis:
            ax.set_xlabel(field_label(xaxis))
        if panel_axes:
            ax.set_title(_setting(dict(zip(panel_axes, panel)), panel_axes))
    for ax in axs[:, 0]:
        ax.set_ylabel(f"simulated time to {100 * target:.0f}% accuracy (s)")
    for ax in list(axs.flat)[len(panels):]:
        ax.set_visible(False)
    top = max((line.get_ydata()[0] for ax in axs.flat for line in ax.get_lines() if len(line.get_ydata())),
              default=1.0)
    for ax in axs.flat:
        ax.set_ylim(0, top * 1.25)
    multi_base = len(bases) > 1
    handles = [mlines.Line2D([], [], color=style.color(a), marker="o", ls="none") for a, b in series]
    labels = [style.label(a) + (f" ({base_label(b)})" if multi_base else "") for a, b in series]
    if any_censored:
        handles.append(mlines.Line2D([], [], color="0.3", marker="^", mfc="white", ls="none"))
        labels.append("target not reached (run stopped)")
    _legend_on_top(fig, handles, labels)
    caption = (
        f"Simulated time (s) until a run's accuracy first reached {100 * target:.0f}%, per algorithm (colour)"
        + (f" and {field_label(xaxis)}" if xaxis else "")
        + (f"; one panel per {', '.join(field_label(a) for a in panel_axes)}" if panel_axes else "")
        + f". Filled circle with error bars: mean over {_seeds_text(all_counts)} when every seed reached the "
        "target, with the 95% t-interval of the mean (none for one seed). "
        "Where some run never reached it (censored), no mean is drawn: small circles are the runs that did, "
        "and an open triangle marks the simulated time at which the censored runs stopped (the longest), "
        "labelled 'not reached k/n' (k of n seeds never reached the target; their time is only known to be "
        "longer), or 'diverged k/n' where those runs diverged, which ends a run early. "
        + _setting_note(results, varied=axes))
    return style.save(fig, path, caption)


def _lr_field(axes, base: str) -> Optional[str]:
    fields = [a for a in axes if a in LR_FIELDS]
    if not fields:
        return None
    return f"lr_{base}" if f"lr_{base}" in fields else fields[0]


def stability_region(results, axes, path: Path) -> Optional[Path]:
    """Per algorithm, the fraction of seeds that converged at each (number of nodes, learning rate);
    None unless the sweep varies ``workers`` and a learning rate."""
    import matplotlib.colors as mcolors
    from matplotlib import colormaps

    if "workers" not in axes or not any(a in LR_FIELDS for a in axes):
        return None
    algorithms = sorted({r.algorithm for r in results}, key=lambda a: (registry.order(a), a))
    bases = sorted({r.base for r in results}, key=lambda b: BASE_ORDER.get(b, 9))
    workers = sorted({r.config["workers"] for r in results})
    panels = [(b, a) for b in bases for a in algorithms if any(r.algorithm == a and r.base == b for r in results)]
    lr_of = {b: _lr_field(axes, b) for b in bases}
    lrs = {b: sorted({r.config[lr_of[b]] for r in results if r.base == b}) for b in bases}
    ncols = min(len(algorithms), 4)
    nrows = -(-len(panels) // ncols)
    max_cols = max(len(v) for v in lrs.values())
    cell = 0.42  # inches per cell, so that "2/2" and an accuracy fit
    width = min(style.PAGE, ncols * (max_cols * cell + 0.5) + 0.9)
    height = nrows * (len(workers) * cell + 0.55) + 0.2
    fig, axs = style.figure(width, height, nrows, ncols, sharey=True)
    cmap = colormaps["viridis"]
    norm = mcolors.Normalize(0, 1)
    image, pooled_axes = None, [a for a in axes if a != "workers" and a not in LR_FIELDS]
    seeds_seen = set()
    for ax, (base, algorithm) in zip(axs.flat, panels):
        lr_field, columns = lr_of[base], lrs[base]
        fraction = np.full((len(workers), len(columns)), np.nan)
        for i, w in enumerate(workers):
            for j, lr in enumerate(columns):
                runs = [r for r in results if r.algorithm == algorithm and r.base == base
                        and r.config["workers"] == w and r.config[lr_field] == lr]
                if not runs:
                    continue
                seeds_seen.add(len(runs))
                converged = [r for r in runs if r.outcome == "converged"]
                fraction[i, j] = len(converged) / len(runs)
                text = f"{len(converged)}/{len(runs)}"
                if converged:
                    text += f"\n{100 * np.mean([r.final_accuracy for r in converged]):.0f}%"
                elif all(r.outcome == "diverged" for r in runs):
                    text += "\ndiv."
                else:
                    text += "\nfailed" if all(r.outcome == "failed" for r in runs) else "\nf/d"
                ink = "white" if fraction[i, j] < 0.6 else "black"
                ax.text(j, i, text, ha="center", va="center", fontsize=style.SMALL_SIZE - 1, color=ink,
                        linespacing=1.0)
        masked = np.ma.masked_invalid(fraction)
        image = ax.imshow(masked, origin="lower", cmap=cmap, norm=norm, aspect="auto",
                          extent=(-0.5, len(columns) - 0.5, -0.5, len(workers) - 0.5))
        ax.set_facecolor("0.9")
        ax.grid(False)
        ax.set_xticks(range(len(columns)))
        rotate = len(columns) > 4 and any(len(_value(v)) > 4 for v in columns)
        ax.set_xticklabels([_value(v) for v in columns], rotation=45 if rotate else 0,
                           ha="right" if rotate else "center", rotation_mode="anchor")
        ax.set_yticks(range(len(workers)))
        ax.set_yticklabels([str(w) for w in workers])
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_xlabel(field_label(lr_field) if len(bases) == 1 else "learning rate")
        ax.set_title(style.label(algorithm) + (f" ({base_label(base)})" if len(bases) > 1 else ""))
    for ax in axs[:, 0]:
        ax.set_ylabel("nodes")
    for ax in list(axs.flat)[len(panels):]:
        ax.set_visible(False)
    if image is not None:
        bar = fig.colorbar(image, ax=axs.ravel().tolist(), shrink=0.9, aspect=15, pad=0.02)
        bar.set_label("converged fraction")
        bar.set_ticks([0, 0.5, 1])
        bar.outline.set_linewidth(0.4)
    caption = (
        "Stability region: for each algorithm (one panel"
        + (" per algorithm and base optimizer" if len(bases) > 1 else "")
        + "), the fraction of seeds whose run converged (neither failed, i.e. ended near chance accuracy or above "
        "its initial loss, nor diverged) at each number of nodes (rows) and learning rate (columns, the swept "
        "values, log-spaced). Cell text: converged seeds / seeds run, and below it the mean final accuracy (%) "
        "of the converged seeds; 'div.': every seed diverged; 'failed': every seed failed; 'f/d': some of each. "
        f"Colour: the converged fraction, one scale for all panels ({_seeds_text(seeds_seen)} per cell). "
        + (f"Runs are pooled over the other swept fields ({', '.join(field_label(a) for a in pooled_axes)}). "
           if pooled_axes else "")
        + _setting_note(results, varied=axes))
    return style.save(fig, path, caption)
