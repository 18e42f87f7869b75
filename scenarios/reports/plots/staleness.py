"""The staleness histograms: per server policy, on shared bins, one panel per cluster shape."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Optional

import numpy as np

from algorithms import registry
from scenarios.reports import style
from scenarios.reports.plots.common import (
    _legend_on_top,
    _seeds_text,
    _setting,
    _setting_note,
    _sort_key,
    field_label,
)


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
        f"a worker reading it and its gradient being applied), per server policy; {shapes_text}"
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
