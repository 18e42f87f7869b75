"""The stability region: per algorithm, the fraction of seeds that converged per number of workers and learning rate."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from algorithms import registry
from scenarios.reports import style
from scenarios.reports.plots.common import (
    BASE_ORDER,
    LR_FIELDS,
    _seeds_text,
    _setting_note,
    _value,
    base_label,
    field_label,
)


def _target_text(results) -> str:
    targets = sorted({r.config.get("target_accuracy", 0.7) for r in results})
    return " / ".join(f"{100 * t:.0f}%" for t in targets)


def _lr_field(axes, base: str) -> Optional[str]:
    fields = [a for a in axes if a in LR_FIELDS]
    if not fields:
        return None
    return f"lr_{base}" if f"lr_{base}" in fields else fields[0]


def stability_region(results, axes, path: Path) -> Optional[Path]:
    """Per algorithm, the fraction of seeds that converged at each (number of workers, learning rate);
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
                finite = [r for r in runs if r.outcome != "diverged"]
                text = f"{len(converged)}/{len(runs)}"  # converged seeds (the colour), then their accuracy
                if finite:  # the mean final accuracy of the finite runs, converged or not
                    text += f"\n{100 * np.mean([r.final_accuracy for r in finite]):.0f}%"
                else:
                    text += "\ndiv."
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
        ax.set_xlabel(field_label(lr_field))  # each panel's own base's rate
        ax.set_title(style.label(algorithm) + (f" on {base_label(base)}" if len(bases) > 1 else ""))
    for ax in axs[:, 0]:
        ax.set_ylabel("workers")
    for ax in list(axs.flat)[len(panels):]:
        ax.set_visible(False)
    fig.align_xlabels(list(axs.flat)[:len(panels)])  # one line for every rate axis, whatever its ticks' length
    if image is not None:
        bar = fig.colorbar(image, ax=axs.ravel().tolist(), shrink=0.9, aspect=15, pad=0.02)
        bar.set_label("converged fraction")
        bar.set_ticks([0, 0.5, 1])
        bar.outline.set_linewidth(0.4)
    caption = (
        "Stability region: for each algorithm (one panel"
        + (" per algorithm and base optimizer" if len(bases) > 1 else "")
        + "), the fraction of seeds whose run converged (each of its last evaluations at or above the target "
        f"accuracy, {_target_text(results)}) at each number of workers (rows) and learning rate (columns, the swept "
        "values, log-spaced). Cell text: converged seeds / seeds run, and below it the mean final accuracy (%) "
        "of the runs that did not diverge, converged or not; 'div.': every seed diverged. "
        f"Colour: the converged fraction, one scale for all panels ({_seeds_text(seeds_seen)} per cell). "
        + (f"Runs are pooled over the other swept fields ({', '.join(field_label(a) for a in pooled_axes)}). "
           if pooled_axes else "")
        + _setting_note(results, varied=axes))
    return style.save(fig, path, caption)
