"""A sweep's report figures: stability and accuracy against staleness, time to the target accuracy."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from algorithms import registry
from scenarios.reports import style
from scenarios.reports.plots.common import (
    BASE_ORDER,
    _legend_on_top,
    _seeds_text,
    _setting,
    _setting_note,
    _sort_key,
    _value,
    _yerr,
    base_label,
    field_label,
)
from scenarios.reports.plots.region import stability_region
from scenarios.reports.plots.staleness import _histograms, staleness_histograms
from scenarios.reports.stats import censored_times, estimate, time_to_target


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
