"""The ablation and sensitivity studies beside the claims: each study set against fmnist's own runs, paired by seed.

Every study (``scenarios.experiments.catalogue.STUDIES``) is fmnist with one change, tuned
by the protocol on its own tuning seeds and run on the same reported seeds as fmnist, so
a study's runs and fmnist's are paired seed by seed (within one server policy they also
replay the same simulated trace). Three records come out:

- GSGM's parts: full GSGM on sgd against GSGM with one part taken away, the white list in
  its queueing form, synchronous SGD, and the strongest baseline, each with the paired
  ratio of its detrended std to full GSGM's and the paired accuracy difference;
- the share of the stability gain each part accounts for, with a paired bootstrap interval;
- sensitivity: GSGM's k and beta, DC-ASGD-a's lam0, against each default;
- equal simulated time: GSGM against the strongest baselines run to the same simulated
  time (``time-budget``), over the same window of it;
- like with like: GSGM without global momentum against ASGD on sgd (no momentum on either
  side), and GSGM with it against the momentum baselines (per worker and server state).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from scenarios.experiments.catalogue import STUDIES
from scenarios.experiments.results import RunResult
from scenarios.reports.claims.data import Cell, Tuning, accuracy_in_window, cells, strongest, to_budget
from scenarios.reports.claims.records import DIFFERENCE, GAIN, Comparison, Table, adjusted, gain
from scenarios.reports.stats import estimate, paired_difference, paired_ratio

PARTS = (("gsgm-fifo", "without the white list"), ("gsgm-k1", "without the partial average"),
         ("gsgm-no-momentum", "without global momentum"))
FORMS = (("gsgm-queue", "with a white list that queues gradients (no waiting)"),)
SENSITIVITY = (
    ("GSGM's window k", ("gsgm", "sgd"), "5 = N/2 (default)", (("gsgm-k1", "1"), ("gsgm-k3", "3"),
                                                                ("gsgm-k10", "10 = N"))),
    ("GSGM's global momentum beta", ("gsgm", "sgd"), "0.9 (default)",
     (("gsgm-no-momentum", "0"), ("gsgm-beta0.5", "0.5"), ("gsgm-beta0.99", "0.99"))),
    ("DC-ASGD-a's lam0", ("dcasgd-a", "sgd"), "2 (default)", (("dcasgd-lam0.5", "0.5"), ("dcasgd-lam8", "8"))),
)
BOOTSTRAP = 4000  # paired bootstrap resamples of the seeds (fixed generator: the same interval every time)


@dataclass(frozen=True)
class Study:
    """One study section of docs/claims.md: what it compares, its table, its paired findings
    (one Holm family) and sentences computed from the data."""

    title: str
    what: str
    table: Table
    findings: tuple[Comparison, ...] = ()
    sentences: tuple[str, ...] = ()


def _cell(results: list[RunResult], algorithm: str, base: str) -> Optional[Cell]:
    return next((c for c in cells(results) if (algorithm, base) in c.members), None)


def _against(subject: str, mine: Cell, reference: Cell, name: str) -> tuple[Comparison, Comparison]:
    ratio = paired_ratio(mine.values("detrended_std"), reference.values("detrended_std"))
    return (Comparison(subject, f"detrended std, 1 − this / {name}", GAIN, gain(ratio),
                       above=f"steadier than {name}", below=f"less steady than {name}"),
            Comparison(subject, f"final accuracy, this − {name}", DIFFERENCE,
                       paired_difference(mine.values("final_accuracy"), reference.values("final_accuracy")),
                       above=f"more accurate than {name}", below=f"less accurate than {name}"))


def _row(label: str, c: Cell, lr_field: str) -> tuple:
    runs = c.at()
    rate = sorted({r.config.get(lr_field) for r in runs})
    return (label, ", ".join(f"{v:g}" for v in rate), c.outcome_counts(),
            estimate(c.counted_values("final_accuracy")), estimate(c.counted_values("detrended_std")),
            f"{np.mean([r.trace['mean_staleness'] for r in runs]):.1f} / "
            f"{np.mean([r.trace['p95_staleness'] for r in runs]):.0f}",
            f"{np.median([r.sim_time for r in runs]):.0f}")


COLUMNS = ("configuration", "learning rate (tuned)", "outcomes", "final acc. (%)", "detrended std (%)",
           "staleness mean / p95", "sim. time (s)")


def share_of_gain(full: dict, without: dict, baseline: dict, seed: int = 0) -> tuple[float, float, float, int]:
    """The share of GSGM's stability gain over the baseline that one part accounts for, on the
    log scale: 1 − log(std_without / std_baseline) / log(std_full / std_baseline), with the
    ratios' geometric means over the seeds all three have; a 95% percentile interval from a
    paired bootstrap over those seeds. Returns (share, low, high, seeds)."""
    seeds = sorted(s for s in full if all(d.get(s) is not None and d[s] > 0 for d in (full, without, baseline)))
    if len(seeds) < 2:
        return (math.nan, math.nan, math.nan, len(seeds))
    logs = np.log(np.array([[full[s], without[s], baseline[s]] for s in seeds]))

    def share(rows):
        f, w, b = rows.mean(axis=0)
        return 1.0 - (w - b) / (f - b) if f != b else math.nan
    draws = np.random.default_rng(seed).integers(0, len(seeds), size=(BOOTSTRAP, len(seeds)))
    boot = np.array([share(logs[d]) for d in draws])
    boot = boot[np.isfinite(boot)]
    low, high = (np.percentile(boot, [2.5, 97.5]) if boot.size else (math.nan, math.nan))
    return share(logs), float(low), float(high), len(seeds)


def parts(fmnist: list[RunResult], studies: dict, tuning: Tuning) -> Optional[Study]:
    """GSGM's parts taken away one at a time, the queueing white list and SSGD, against full GSGM on sgd."""
    full = _cell(fmnist, "gsgm", "sgd")
    best = strongest(cells(fmnist), tuning)
    if full is None or not any(studies.get(n) for n, _ in PARTS + FORMS + (("ssgd", ""),)):
        return None
    rows = [_row("GSGM on sgd (fmnist: all three parts)", full, "lr_sgd")]
    findings, shares, seeds = [], [], 0
    for name, what in PARTS + FORMS:
        c = _cell(studies.get(name, []), "gsgm", "sgd")
        if c is None:
            continue
        rows.append(_row(f"GSGM on sgd {what} (`{name}`)", c, "lr_sgd"))
        findings += _against(f"`{name}` vs full GSGM", c, full, "full GSGM")
        if best is not None and (name, what) in PARTS:
            s, low, high, n = share_of_gain(full.values("detrended_std"), c.values("detrended_std"),
                                            best.values("detrended_std"))
            if math.isfinite(s):
                shares.append(f"{what.removeprefix('without ')}: {100 * s:+.0f}% [{100 * low:+.0f}%, "
                              f"{100 * high:+.0f}%]")
                seeds = n
    for base in ("sgd", "momentum"):
        c = _cell(studies.get("ssgd", []), "ssgd", base)
        if c is not None:
            rows.append(_row(f"SSGD on {base} (`ssgd`)", c, f"lr_{base}"))
            findings += _against(f"SSGD on {base} vs full GSGM", c, full, "full GSGM")
    if best is not None:
        rows.append(_row(f"{best.name} (strongest baseline, fmnist)", best, f"lr_{best.members[0][1]}"))
    sentences = () if not shares else (
        f"The share of full GSGM's stability gain over {best.name} that each part accounts for (what is lost "
        f"without it, on the log scale; 95% interval from a paired bootstrap over {seeds} seeds; 100% = the whole "
        "gain, below 0 = steadier without it): " + "; ".join(shares) + ".",)
    return Study("Ablations: GSGM's three parts, the queueing white list, and synchronous SGD",
                 "Each row is fmnist with one change, tuned on its own tuning seeds and run on fmnist's reported "
                 "seeds; each is paired seed by seed with full GSGM on sgd (fmnist's runs).",
                 Table(COLUMNS, tuple(rows), "Mean ± 95% half-width over the reported seeds; final accuracy over "
                                             "finite runs, detrended std over converged runs."),
                 adjusted(findings), sentences)


def sensitivity(fmnist: list[RunResult], studies: dict) -> Optional[Study]:
    """GSGM's k and beta and DC-ASGD-a's lam0, each value against the default (fmnist's runs)."""
    rows, findings = [], []
    for title, (algorithm, base), default, points in SENSITIVITY:
        reference = _cell(fmnist, algorithm, base)
        if reference is None or not any(studies.get(n) for n, _ in points):
            continue
        rows.append(_row(f"{title} = {default}", reference, f"lr_{base}"))
        for name, value in points:
            c = _cell(studies.get(name, []), algorithm, base)
            if c is not None:
                rows.append(_row(f"{title} = {value} (`{name}`)", c, f"lr_{base}"))
                findings += _against(f"{title} = {value} vs {default.split(' ')[0]}", c, reference, "the default")
    if not rows:
        return None
    return Study("Sensitivity: GSGM's k and beta, DC-ASGD-a's lam0",
                 "Each value is fmnist with that one change, on sgd, tuned on its own tuning seeds; paired seed by "
                 "seed with the default (fmnist's runs).",
                 Table(COLUMNS, tuple(rows), "Mean ± 95% half-width over the reported seeds."), adjusted(findings))


def equal_time(fmnist: list[RunResult], studies: dict) -> Optional[Study]:
    """GSGM (fmnist's runs) against the baselines run to the same simulated time (``time-budget``):
    each run's mean accuracy over the same window of simulated time, ending at the budget."""
    runs = studies.get("time-budget", [])
    methods = [c for c in cells(fmnist) if c.is_method]
    if not runs or not methods:
        return None
    baselines = [c for c in cells(runs) if not c.is_method]
    start, budget = to_budget(methods[0], baselines[0])[:2] if baselines else (0.0, 0.0)

    def over(c: Cell) -> dict:
        return accuracy_in_window(c, start, budget)
    rows, findings = [], []
    for c in methods + baselines:
        reached = [r.history[-1]["update"] for r in c.at() if r.history]
        rows.append((c.name + ("" if c in methods else " (run to the budget)"), c.outcome_counts(),
                     f"{np.median(reached):,.0f}", f"{np.median([r.sim_time for r in c.at()]):.0f}",
                     estimate([v for v in over(c).values() if v is not None])))
    for m in methods:
        for b in baselines:
            findings.append(Comparison(f"{m.name} vs {b.name}", f"mean accuracy over simulated time {start:.0f}-"
                                       f"{budget:.0f} s, GSGM − baseline", DIFFERENCE,
                                       paired_difference(over(m), over(b)),
                                       above="GSGM is more accurate at equal time",
                                       below="GSGM is less accurate at equal time"))
    return Study("Equal simulated time: the baselines run to GSGM's time",
                 f"GSGM's 6,000 updates take about as long as the budget; the strongest baselines (server state, "
                 f"on adam) ran until {budget:.0f} simulated seconds instead of a number of updates (`time-budget`), "
                 "at the rates fmnist tuned for 6,000 updates (not tuned again). Each run's accuracy is averaged "
                 "over the same window of simulated time, as long as GSGM's last evaluations took.",
                 Table(("configuration", "outcomes", "updates reached (median)", "sim. time (s, median)",
                        f"mean acc. over {start:.0f}-{budget:.0f} s (%)"), tuple(rows),
                       "Mean ± 95% half-width over the reported seeds (runs that did not diverge)."),
                 adjusted(findings))


LIKE_WITH_LIKE = (  # (GSGM: experiment, label), (baseline algorithm, base) in fmnist
    (("gsgm-no-momentum", "GSGM on sgd without global momentum"), (("asgd", "sgd"), ("dcasgd-a", "sgd"))),
    (("fmnist", "GSGM on sgd, global momentum 0.9"), (("asgd", "momentum"), ("asgd-server", "momentum"),
                                                      ("dcasgd-a", "momentum"), ("dcasgd-a-server", "momentum"))),
)


def like_with_like(fmnist: list[RunResult], studies: dict) -> Optional[Study]:
    """GSGM against the baselines with the same momentum: without global momentum against the
    plain-SGD baselines, with it against the momentum baselines (fmnist's tuned runs)."""
    rows, findings = [], []
    for (experiment, label), baselines in LIKE_WITH_LIKE:
        mine = _cell(fmnist if experiment == "fmnist" else studies.get(experiment, []), "gsgm", "sgd")
        if mine is None:
            continue
        rows.append(_row(f"{label}" + ("" if experiment == "fmnist" else f" (`{experiment}`)"), mine, "lr_sgd"))
        for algorithm, base in baselines:
            theirs = _cell(fmnist, algorithm, base)
            if theirs is None:
                continue
            rows.append(_row(theirs.name, theirs, f"lr_{base}"))
            findings += _against(f"{label} vs {theirs.name}", mine, theirs, theirs.name)
    if not findings:
        return None
    return Study("Like with like: GSGM against the baselines with the same momentum",
                 "GSGM on sgd carries a global momentum (beta 0.9) that ASGD on sgd does not have, so part of a gain "
                 "against ASGD on sgd could be momentum's. Here GSGM without global momentum (`gsgm-no-momentum`) "
                 "meets the baselines on plain sgd, and GSGM with it meets the baselines on momentum (per worker and "
                 "server state); every configuration at its own tuned rate, paired seed by seed.",
                 Table(COLUMNS, tuple(rows), "Mean ± 95% half-width over the reported seeds; final accuracy over "
                                             "finite runs, detrended std over converged runs."),
                 adjusted(findings))


def all_studies(fmnist: list[RunResult], studies: dict, tuning: Tuning) -> tuple[Study, ...]:
    return tuple(s for s in (parts(fmnist, studies, tuning), like_with_like(fmnist, studies),
                             sensitivity(fmnist, studies), equal_time(fmnist, studies)) if s is not None)


NAMES = tuple(STUDIES)
