"""What every figure shares: base and field labels, the setting note, seed counts, 95% bands and bars, the legend."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from algorithms import BASES
from scenarios.reports.stats import t_quantile

BASE_LABELS = {"sgd": "SGD", "momentum": "momentum SGD", "adam": "Adam"}
BASE_ORDER = {b: i for i, b in enumerate(BASES)}
# how a configuration field reads on an axis or in a panel title (the unit, where it has one)
FIELD_LABELS = {
    "workers": "workers", "classes_per_worker": "classes per worker", "alpha": "Dirichlet alpha",
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
    """``workers = 10, speed spread = 4`` for the named fields."""
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
    """What the runs share: dataset, model, workers, updates (fields that vary are left out)."""
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
        parts.append(f"{config['workers']} workers")
    if "classes_per_worker" in same:
        k = config["classes_per_worker"]
        parts.append(f"{k} class{'es' if k != 1 else ''} per worker")
    if "spread" in same:
        parts.append(f"worker speeds spread {config['spread']:g}x")
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
