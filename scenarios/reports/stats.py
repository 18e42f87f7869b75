"""Statistics over seeds: means with 95% intervals, paired differences and ratios, Holm's correction, censored times.

Small samples are reported honestly: one value has no spread ("—"), an interval needs
two, and a time to target is a median only where at least half the runs reached it.

Every algorithm of an experiment runs on the same seeds (the same data order, the same
initial parameters and, within a policy, the same trace), so comparisons are *paired*:
seeds are blocks, and a difference or a ratio is taken seed by seed before it is
averaged (``paired_difference``, ``paired_ratio``).
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


def _common(a: dict, b: dict) -> list:
    """The seeds both ``a`` and ``b`` have a value for, in order."""
    return sorted(s for s in a if s in b and a[s] is not None and b[s] is not None)


class Paired(NamedTuple):
    """A paired comparison over ``n`` seeds: the estimate, its 95% interval, and the two-sided
    p-value of "no difference" (None where it cannot be computed: n < 2)."""

    mean: Optional[float]
    low: Optional[float]
    high: Optional[float]
    n: int
    p_value: Optional[float]

    @property
    def half_width(self) -> Optional[float]:
        return None if self.low is None else (self.high - self.low) / 2

    def format(self, scale: float = 100.0, digits: int = 1, sign: str = "+") -> str:
        if self.mean is None:
            return "—"
        if self.low is None:
            return f"{scale * self.mean:{sign}.{digits}f} (n={self.n})"
        return f"{scale * self.mean:{sign}.{digits}f} [{scale * self.low:{sign}.{digits}f}, " \
               f"{scale * self.high:{sign}.{digits}f}]"


def paired_difference(a: dict, b: dict) -> Paired:
    """Mean over common seeds of ``a[seed] - b[seed]``, its 95% t-interval and the paired
    t-test's p-value; ``a``, ``b``: seed -> value (None: no value, that seed is left out)."""
    seeds = _common(a, b)
    d = np.asarray([a[s] - b[s] for s in seeds], dtype=float)
    if len(d) == 0:
        return Paired(None, None, None, 0, None)
    mean = float(d.mean())
    if len(d) == 1:
        return Paired(mean, None, None, 1, None)
    se = float(d.std(ddof=1) / math.sqrt(len(d)))
    hw = t_quantile(len(d) - 1) * se
    p = (0.0 if mean != 0 else 1.0) if se == 0 else t_two_sided_p(mean / se, len(d) - 1)
    return Paired(mean, mean - hw, mean + hw, len(d), p)


def paired_ratio(a: dict, b: dict) -> Paired:
    """The geometric mean over common seeds of ``a[seed] / b[seed]`` with a 95% interval, taken
    as a t-interval on the per-seed log ratios and mapped back (so it is never negative and
    is symmetric in which side is on top); p-value: the paired t-test of log ratio 0.
    Seeds where either value is not positive are left out."""
    pos_a = {s: v for s, v in a.items() if v is not None and v > 0}
    pos_b = {s: v for s, v in b.items() if v is not None and v > 0}
    logs = paired_difference({s: math.log(v) for s, v in pos_a.items()},
                             {s: math.log(v) for s, v in pos_b.items()})
    if logs.mean is None:
        return logs
    back = (lambda x: None if x is None else math.exp(x))
    return Paired(back(logs.mean), back(logs.low), back(logs.high), logs.n, logs.p_value)


def holm(p_values: dict) -> dict:
    """Holm's step-down adjustment of several p-values (name -> p, None kept as None): the
    family-wise error stays at the level used, whichever comparisons are true."""
    known = sorted(((p, name) for name, p in p_values.items() if p is not None), key=lambda x: x[0])
    adjusted, running = {}, 0.0
    m = len(known)
    for i, (p, name) in enumerate(known):
        running = max(running, min(1.0, (m - i) * p))
        adjusted[name] = running
    return {name: adjusted.get(name) for name in p_values}


def t_two_sided_p(t: float, dof: int) -> float:
    """P(|T| >= |t|) for Student's t with ``dof`` degrees of freedom: I_x(dof/2, 1/2) with x = dof / (dof + t^2)."""
    if math.isinf(t):
        return 0.0
    return _regularized_beta(dof / (dof + t * t), dof / 2.0, 0.5)


def _regularized_beta(x: float, a: float, b: float) -> float:
    """The regularized incomplete beta function I_x(a, b), by its continued fraction
    (Lentz's method, as in Numerical Recipes' betacf)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - _regularized_beta(1.0 - x, b, a)
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 300):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * f / a


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


def accuracy_over(history: list[dict], start: float, end: float) -> Optional[float]:
    """Mean accuracy of the evaluations in the simulated-time window (start, end]; the last
    evaluation at or before ``end`` when none falls inside (None if there is none)."""
    inside = [e["accuracy"] for e in history if start < e["sim_time"] <= end]
    return float(np.mean(inside)) if inside else accuracy_at(history, end)


def accuracy_at(history: list[dict], time: float) -> Optional[float]:
    """Accuracy of the last evaluation at or before simulated ``time`` (None if none)."""
    value = None
    for e in history:
        if e["sim_time"] > time:
            break
        value = e["accuracy"]
    return value
