"""The claim records: what each verdict rests on, as data that the rules fill and the renderer prints.

A ``Claim`` holds the paper's words, the experiments and runs it rests on, the
comparisons the verdict rests on (each a paired estimate over seeds with its 95%
interval and its Holm-adjusted p-value), the verdict and the sentence of the rule that
gave it. The Markdown is printed from these records and nothing else, so the verdicts
(``verdicts()``) are read from the records, never from the text.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence, Union

from scenarios.reports.stats import Estimate, Paired, holm

REPRODUCED, PARTLY, NOT_RESOLVED, NOT_REPRODUCED, NOT_TESTABLE = (
    "reproduced", "partly", "not resolved", "not reproduced", "not testable here")
VERDICTS = (REPRODUCED, PARTLY, NOT_RESOLVED, NOT_REPRODUCED, NOT_TESTABLE)
LEVEL = 0.05  # the family-wise error level of every verdict (Holm-adjusted p-values below it count)

# what a comparison's estimate is: a difference of fractions (shown in percentage points), or a gain
# 1 - a / b (shown in %, its interval taken on the log ratio), or a plain ratio
DIFFERENCE, GAIN = "difference", "gain"
SMALL = 0.01  # a difference whose estimate and interval are all within 1 point is shown with 2 decimals


@dataclass(frozen=True)
class Comparison:
    """One paired comparison over seeds: ``estimate`` (its 95% interval and raw p-value) and
    ``p_adjusted``, Holm's adjustment across the family of comparisons it was judged in."""

    subject: str  # e.g. "GSGM on adam vs ASGD (server) on adam"
    measure: str  # e.g. "final accuracy", "stability gain (1 - std ratio)"
    kind: str  # DIFFERENCE or GAIN
    estimate: Paired
    above: str = ""  # what it means when the interval lies above 0 (significantly), e.g. "GSGM is steadier"
    below: str = ""  # ... below 0
    p_adjusted: Optional[float] = None

    def sign(self) -> int:
        """+1 / -1 when the 95% interval lies above / below 0 and the Holm-adjusted p-value is
        below ``LEVEL``; 0 otherwise (not resolved, or not computable)."""
        e = self.estimate
        if e.low is None or self.p_adjusted is None or self.p_adjusted >= LEVEL:
            return 0
        return 1 if e.low > 0 else -1 if e.high < 0 else 0

    def reading(self) -> str:
        """What the comparison shows: ``above``, ``below``, or that these seeds do not resolve it."""
        sign = self.sign()
        if sign:
            return self.above if sign > 0 else self.below
        e = self.estimate
        if e.low is not None and (e.low > 0 or e.high < 0):
            return f"not resolved: interval clear of 0, Holm-adjusted p ≥ {LEVEL}"
        return "not resolved"

    def value_text(self) -> str:
        """The estimate and its interval: "+1.6 [-0.6, +3.8] points" or "+67% [+12%, +88%]"."""
        e = self.estimate
        if self.kind != GAIN:
            small = all(v is None or abs(v) < SMALL for v in (e.mean, e.low, e.high))
            return f"{e.format(digits=2 if small else 1)} points"
        if e.mean is None:
            return "—"
        interval = "" if e.low is None else f" [{100 * e.low:+.0f}%, {100 * e.high:+.0f}%]"
        return f"{100 * e.mean:+.0f}%{interval}"

    def p_text(self) -> str:
        return f"p = {format_p(self.estimate.p_value)}, Holm-adjusted {format_p(self.p_adjusted)}"

    def text(self) -> str:
        """One line: subject, measure, estimate, interval and p-values."""
        return f"{self.subject}, {self.measure}: {self.value_text()} (n = {self.estimate.n}; {self.p_text()})"


def format_p(p: Optional[float]) -> str:
    if p is None:
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def gain(ratio: Paired) -> Paired:
    """1 - ratio, with the ratio's interval (taken on the log scale) mapped the same way."""
    if ratio.mean is None:
        return ratio
    flip = (lambda x: None if x is None else 1.0 - x)
    return Paired(flip(ratio.mean), flip(ratio.high), flip(ratio.low), ratio.n, ratio.p_value)


def adjusted(comparisons: Sequence[Comparison]) -> tuple[Comparison, ...]:
    """The comparisons with Holm's adjustment across all of them (one family)."""
    ps = holm({i: c.estimate.p_value for i, c in enumerate(comparisons)})
    return tuple(replace(c, p_adjusted=ps[i]) for i, c in enumerate(comparisons))


def judge(supports: Sequence[bool], contradicts: Sequence[bool]) -> str:
    """The verdict from per-comparison (or per-configuration) outcomes: *reproduced* when every
    one supports the claim, *partly* when some do, *not reproduced* when none does and some
    contradict it, *not resolved* when none does either (the intervals cannot tell)."""
    if supports and all(supports):
        return REPRODUCED
    if any(supports):
        return PARTLY
    if any(contradicts):
        return NOT_REPRODUCED
    return NOT_RESOLVED


def upper_failure_rate(seeds: int) -> float:
    """The largest failure probability per seed that still gives ``seeds`` successes out of
    ``seeds`` with probability 5% (the one-sided 95% bound from zero failures)."""
    return 1.0 - LEVEL ** (1.0 / seeds) if seeds else 1.0


TableCell = Union[str, int, float, Estimate, Comparison, None]


@dataclass(frozen=True)
class Table:
    """Descriptive numbers: a header and rows; a cell is text, an ``Estimate`` (mean ± 95%
    half-width, in %) or a ``Comparison`` (its estimate and interval)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[TableCell, ...], ...]
    caption: str = ""


@dataclass(frozen=True)
class Basis:
    """An experiment a claim rests on: its folder name, the command that writes it, the run
    keys it uses, and the cells counted once because their runs are identical."""

    experiment: str
    command: str
    runs: tuple[str, ...] = ()
    merged: tuple[str, ...] = ()  # e.g. "GSGM on sgd = momentum"
    tuning: str = ""  # where the strongest baseline's validation scores come from


@dataclass(frozen=True)
class Part:
    """A part of the paper's sentence judged by its own rule (e.g. "a slight accuracy gain")."""

    words: str
    verdict: str
    rule: str
    outcome: str


@dataclass(frozen=True)
class Claim:
    """One of the paper's claims, judged."""

    title: str
    words: str  # the paper's words
    verdict: str
    rule: str  # the rule's sentence: how ``verdict`` follows from ``comparisons`` (and outcomes)
    outcome: str = ""  # how the rule applied to these results
    basis: tuple[Basis, ...] = ()
    comparisons: tuple[Comparison, ...] = ()  # the verdict's family (Holm-adjusted together)
    parts: tuple[Part, ...] = ()
    findings: tuple[Comparison, ...] = ()  # other results, with their own intervals and Holm family
    finding_notes: tuple[str, ...] = ()  # findings without an interval (counts over seeds)
    tables: tuple[Table, ...] = ()
    notes: tuple[str, ...] = ()

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}")


@dataclass(frozen=True)
class Source:
    """Where one experiment's numbers come from: counts and versions from its result.json files."""

    name: str
    reported: int
    tuning_runs: int = 0
    tuning_file: str = ""
    margins: tuple = ()  # margins.Margin of each tuned cell
    seeds: tuple[int, ...] = ()
    updates: int = 0
    replay_seconds: float = 0.0
    jax: tuple[str, ...] = ()
    machines: tuple[str, ...] = ()


@dataclass(frozen=True)
class Shared:
    """Two experiments that ran the same configuration: how far their common runs agree."""

    first: str  # e.g. "fmnist"
    second: str  # e.g. "scale at workers = 10"
    common: int  # runs with the same algorithm, base and seed
    same_key: int
    config_differences: tuple[str, ...]  # fields whose values differ in some common run
    same_tuned: int
    same_trace: int
    same_history: int
    largest_final_difference: Optional[float]  # |final accuracy| difference, over common runs
    jax: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())

    @property
    def same_configuration(self) -> bool:
        """Same seeds, learning rates and traces, and no configuration field differs but ones
        the identical traces show to be equivalent (``speed_assignment`` here)."""
        return bool(self.common) and self.same_tuned == self.common and self.same_trace == self.common and \
            set(self.config_differences) <= EQUIVALENT_WHEN_TRACES_MATCH


# fields that only decide the simulated timing: equal traces mean they made no difference
EQUIVALENT_WHEN_TRACES_MATCH = frozenset({"speed_assignment"})


@dataclass(frozen=True)
class Report:
    """Everything docs/claims.md says: the claims, the sources, the shared runs, and the seeds."""

    root: str
    claims: tuple[Claim, ...]
    sources: tuple[Source, ...] = ()
    shared: tuple[Shared, ...] = ()
    seeds: int = 0  # the fewest reported seeds of a judged experiment
    planned_seeds: int = 0
    accepted: tuple[str, ...] = ()  # provenance problems the user accepted (--accept-provenance), said up front
    studies: tuple = ()  # the ablation and sensitivity studies (rules.Study records)

    def verdicts(self) -> list[tuple[str, str]]:
        return [(c.title, c.verdict) for c in self.claims]

