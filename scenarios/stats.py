"""Statistics over seeds: means with 95% intervals, censored times to a target, equal-time accuracy.

Small samples are reported honestly: one value has no spread ("—"), an interval needs
two, and a time to target is a median only where at least half the runs reached it.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence

import numpy as np

# two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom (then the normal's 1.96)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


class Estimate(NamedTuple):
    """A mean over ``n`` seeds and the half-width of its 95% interval (None for n < 2)."""

    mean: Optional[float]
    half_width: Optional[float]
    n: int

    def format(self, scale: float = 100.0, digits: int = 1) -> str:
        if self.mean is None:
            return "—"
        if self.half_width is None:
            return f"{scale * self.mean:.{digits}f} ± —"
        return f"{scale * self.mean:.{digits}f} ± {scale * self.half_width:.{digits}f}"

    @property
    def low(self) -> Optional[float]:
        return None if self.half_width is None else self.mean - self.half_width

    @property
    def high(self) -> Optional[float]:
        return None if self.half_width is None else self.mean + self.half_width


def t_quantile(dof: int) -> float:
    return _T975[dof - 1] if dof <= len(_T975) else 1.96


def estimate(values: Sequence[Optional[float]]) -> Estimate:
    """Mean and 95% t-interval of the values that exist (None: a run with no such value)."""
    xs = np.asarray([v for v in values if v is not None], dtype=float)
    if len(xs) == 0:
        return Estimate(None, None, 0)
    if len(xs) == 1:
        return Estimate(float(xs[0]), None, 1)
    return Estimate(float(xs.mean()), float(t_quantile(len(xs) - 1) * xs.std(ddof=1) / math.sqrt(len(xs))), len(xs))


def difference(a: Sequence[float], b: Sequence[float]) -> Estimate:
    """Mean of ``a`` minus mean of ``b`` with a Welch 95% interval (None for fewer than two each)."""
    xa, xb = np.asarray([v for v in a if v is not None], float), np.asarray([v for v in b if v is not None], float)
    if len(xa) == 0 or len(xb) == 0:
        return Estimate(None, None, 0)
    diff = float(xa.mean() - xb.mean())
    if len(xa) < 2 or len(xb) < 2:
        return Estimate(diff, None, min(len(xa), len(xb)))
    va, vb = xa.var(ddof=1) / len(xa), xb.var(ddof=1) / len(xb)
    se = math.sqrt(va + vb)
    if se == 0:
        return Estimate(diff, 0.0, min(len(xa), len(xb)))
    dof = (va + vb) ** 2 / (va ** 2 / (len(xa) - 1) + vb ** 2 / (len(xb) - 1))
    return Estimate(diff, float(t_quantile(max(1, int(dof))) * se), min(len(xa), len(xb)))


def time_to_target(history: list[dict], target: float) -> Optional[float]:
    """Simulated time of the first evaluation with accuracy >= target (None: never, censored)."""
    for e in history:
        if e["accuracy"] >= target:
            return e["sim_time"]
    return None


class Censored(NamedTuple):
    """Times to a target over runs, some censored (the run ended before reaching it)."""

    reached: int
    runs: int
    median: Optional[float]  # over all runs, censored ones counted as never; None unless >= half reached
    longest_censored: Optional[float]  # the longest time a censored run was watched

    def format(self, unit: str = " s") -> str:
        if self.runs == 0:
            return "—"
        if self.median is not None:
            return f"{self.median:.0f}{unit} ({self.reached}/{self.runs})"
        if self.longest_censored is None:
            return f"never ({self.reached}/{self.runs})"
        return f"> {self.longest_censored:.0f}{unit} ({self.reached}/{self.runs})"


def censored_times(times: Sequence[Optional[float]], watched: Sequence[float]) -> Censored:
    """``times[i]``: run i's time to target or None; ``watched[i]``: how long run i ran."""
    n = len(times)
    reached = sorted(t for t in times if t is not None)
    censored = [w for t, w in zip(times, watched) if t is None]
    median = None
    if n and len(reached) >= math.ceil(n / 2) and (n % 2 == 1 or len(reached) > n // 2):
        ordered = reached + [math.inf] * (n - len(reached))
        median = float(np.median(ordered))
    elif n and n % 2 == 0 and len(reached) == n // 2:
        median = None  # the median falls between a reached and a censored run: not known
    return Censored(len(reached), n, median, max(censored) if censored else None)


def accuracy_at(history: list[dict], time: float) -> Optional[float]:
    """Accuracy of the last evaluation at or before simulated ``time`` (None if none)."""
    value = None
    for e in history:
        if e["sim_time"] > time:
            break
        value = e["accuracy"]
    return value
