"""The rules: each of the paper's claims judged from results into a Claim record, its rule sentence what the code tests.

Every comparison is paired over seeds (seeds are blocks: every algorithm of an
experiment runs on the same seeds and, within a policy, the same trace): a per-seed
difference or ratio, a 95% t-interval over seeds, and the paired t-test's p-value,
Holm-adjusted across the comparisons one verdict rests on. A comparison *supports* a
claim when its interval lies on the claim's side of 0 and its adjusted p-value is below
0.05 (``Comparison.sign``). Identical configurations (identical histories) count once.
"""

from __future__ import annotations

from typing import Optional

from scenarios.experiments.results import RunResult
from scenarios.reports.claims.data import (
    Cell,
    Tuning,
    axis_values,
    cells,
    equal_time,
    strongest,
    to_budget,
    validation_score,
)
from scenarios.reports.claims.records import (
    DIFFERENCE,
    GAIN,
    LEVEL,
    NOT_REPRODUCED,
    NOT_TESTABLE,
    REPRODUCED,
    Basis,
    Claim,
    Comparison,
    Part,
    Table,
    adjusted,
    gain,
    judge,
)
from scenarios.reports.claims.region import region_notes, stability_region
from scenarios.reports.stats import estimate, paired_difference, paired_ratio

PAPER_STABILITY_GAIN = 0.20  # "raises training stability by about 20%"
PAPER_CIFAR100_GAIN = 0.37  # "on CIFAR-100 ... stability improves by 37%"

TITLES = {
    "stability": "GSGM raises training stability by about 20% with a slight accuracy gain (Fashion-MNIST, 10 nodes)",
    "scale": "With 30 nodes only GSGM converges well (against ASGD and DC-ASGD)",
    "noniid": "GSGM is robust to the degree of non-IID data",
    "dcasgd": "DC-ASGD-a is more accurate than ASGD (DC-ASGD's own claim, Zheng et al. 2017)",
    "cifar": f"The same on CIFAR-10 (10 nodes), and +{100 * PAPER_CIFAR100_GAIN:.0f}% stability on CIFAR-100",
}
WORDS = {  # the paper's words (abstracts of arXiv 1902.07848 and the 2022 journal version; docs/gsgm.md)
    "stability": "On Fashion-MNIST and CIFAR-10, GSGM applied to popular optimization algorithms raises training "
                 f"stability by about {100 * PAPER_STABILITY_GAIN:.0f}%, with a slight accuracy gain.",
    "scale": "With 30 computing nodes, only GSGM converges well, against ASGD and DC-ASGD.",
    "noniid": "GSGM is robust to different degrees of non-IID data.",
    "dcasgd": "DC-ASGD (Zheng et al., ICML 2017): delay compensation makes asynchronous SGD more accurate than ASGD.",
    "cifar": "On CIFAR-100, with more nodes and so a sparser data distribution, stability improves by "
             f"{100 * PAPER_CIFAR100_GAIN:.0f}%.",
}
NO_TUNING = Tuning()  # no tuning file: no strongest baseline can be chosen
STABILITY_GAIN = "stability gain, 1 − detrended std GSGM / baseline"
RAW_STABILITY_GAIN = "raw-std stability gain, 1 − std GSGM / std baseline"
ACCURACY = "final accuracy, GSGM − baseline"


def _keys(results: list[RunResult]) -> tuple[str, ...]:
    return tuple(sorted(r.key for r in results if r.split == "test"))


def _merged(all_cells: list[Cell]) -> tuple[str, ...]:
    return tuple(c.name for c in all_cells if len(c.members) > 1)


def _words(c: Comparison) -> str:
    """"larger than / smaller than / consistent with the paper's 20%", from the gain's interval."""
    e = c.estimate
    paper = f"the paper's {100 * PAPER_STABILITY_GAIN:.0f}%"
    if e.low is None:
        return f"no interval to compare with {paper}"
    if e.low > PAPER_STABILITY_GAIN:
        return f"larger than {paper}"
    if e.high < PAPER_STABILITY_GAIN:
        return f"smaller than {paper}"
    return f"consistent with {paper}"


def stability_pair(subject: str, mine: Cell, theirs: Cell, axis_value=None, where: str = "",
                   measure: str = "detrended_std") -> tuple[Comparison, ...]:
    """Stability gain (on the log ratio of the detrended accuracy stds, or of ``measure``)
    and final-accuracy difference of two cells, paired by seed."""
    ratio = paired_ratio(mine.values(measure, axis_value), theirs.values(measure, axis_value))
    title = STABILITY_GAIN if measure == "detrended_std" else RAW_STABILITY_GAIN
    return (Comparison(subject, title, GAIN, gain(ratio), above=f"GSGM is steadier{where}",
                       below=f"GSGM is less steady{where}"),
            Comparison(subject, ACCURACY, DIFFERENCE,
                       paired_difference(mine.values("final_accuracy", axis_value),
                                         theirs.values("final_accuracy", axis_value)),
                       above=f"GSGM is more accurate{where}", below=f"GSGM is less accurate{where}"))


def _cell_table(all_cells: list[Cell], tuning: Tuning, best: Optional[Cell], axis_value=None) -> Table:
    rows = []
    for c in all_cells:
        score = validation_score(c, tuning, axis_value)
        rows.append((c.name + (" (strongest baseline)" if c is best else ""),
                     "—" if score is None else f"{100 * score:.1f}", c.outcome_counts(axis_value),
                     estimate(c.counted_values("final_accuracy", axis_value)),
                     estimate(c.counted_values("detrended_std", axis_value)),
                     estimate(c.counted_values("accuracy_std", axis_value))))
    return Table(("configuration", "validation acc. (%), tuning seeds", "outcomes", "final acc. (%)",
                  "detrended std (%)", "raw std (%)"),
                 tuple(rows), "Validation accuracy: the chosen learning rate's score on the tuning seeds, from "
                              f"`{tuning.label or 'no tuning file'}`; it alone picks the strongest baseline. The "
                              "other columns: reported seeds, mean ± 95% half-width; final accuracy over finite "
                              "runs, the stds over converged runs.")


# ---------------------------------------------------------------------- 1. stability on Fashion-MNIST
STABILITY_RULE = (
    "*reproduced* when, for every distinct GSGM configuration, the stability gain over the strongest baseline lies "
    "above 0 (its 95% interval above 0 and its Holm-adjusted p-value below {level}) and the final-accuracy "
    "difference is not significantly negative (not: interval below 0 with adjusted p below {level}); *partly* when "
    "that holds for some configurations; *not reproduced* when it holds for none and some gain or accuracy "
    "difference is significantly negative; *not resolved* otherwise. The size is then set against the paper's "
    "{paper}%: *larger than* when the whole interval lies above it, *smaller than* when below, else *consistent "
    "with*. The stability gain is 1 − std_GSGM / std_baseline, where std is the *detrended* std of test accuracy "
    "over the second half (the residual std around its least-squares line: the fluctuation, without the rise of a "
    "run still learning, which would count against the method that learns longest), over converged runs; the "
    "raw std's gain is reported beside it as a finding. The ratio is taken seed by seed: its estimate is "
    "the geometric mean of the per-seed ratios, its interval a t-interval on the per-seed log ratios mapped back "
    "(so the ratio's interval stays positive and the gain's stays below 100%)."
    " The strongest baseline is the baseline whose tuned learning rate scored highest on the validation split of "
    "the tuning seeds, never on the reported seeds.")
ACCURACY_RULE = (
    "*reproduced* when, for every distinct GSGM configuration, its final accuracy is higher than the strongest "
    "baseline's at equal updates (interval above 0, Holm-adjusted p below {level}) and not significantly lower at "
    "equal simulated time (mean accuracy over the same window of simulated time, Holm-adjusted across the equal-"
    "time comparisons; where the `time-budget` study ran the strongest baseline on until GSGM's time, against "
    "that run, over the window ending at the budget; else against its own runs, over the window ending where "
    "they ended); *partly* for some; *not reproduced* when none is and some is significantly lower at equal "
    "updates or at equal time; *not resolved* otherwise.")


def claim_stability(results: list[RunResult], tuning: Tuning = NO_TUNING, to_time: list[RunResult] = ()) -> Claim:
    """Fashion-MNIST, 10 workers: stability up by about 20%, with a slight accuracy gain.
    ``to_time``: the ``time-budget`` study's runs (baselines run to GSGM's simulated time);
    where it has the strongest baseline, the accuracy part's equal-time test uses them."""
    rule = STABILITY_RULE.format(level=LEVEL, paper=f"{100 * PAPER_STABILITY_GAIN:.0f}")
    all_cells = cells(results)
    methods = [c for c in all_cells if c.is_method]
    best = strongest(all_cells, tuning)
    basis = (Basis("fmnist", "stalesim reproduce fmnist", _keys(results), _merged(all_cells), tuning.label),)
    if not methods or best is None:
        why = "no GSGM runs" if not methods else "no baseline with a validation score from its tuning runs"
        return Claim(TITLES["stability"], WORDS["stability"], NOT_TESTABLE, rule, f"Not judged: {why}.", basis,
                     notes=tuning.edges)
    family = adjusted([c for m in methods for c in stability_pair(f"{m.name} vs {best.name}", m, best)])
    gains, accs = family[0::2], family[1::2]
    verdict = judge([g.sign() > 0 and a.sign() >= 0 for g, a in zip(gains, accs)],
                    [g.sign() < 0 or a.sign() < 0 for g, a in zip(gains, accs)])
    clear = sum(g.estimate.low is not None and g.estimate.low > 0 for g in gains)
    outcome = "; ".join(f"{g.subject}: stability gain {g.value_text()} ({_words(g)}; {g.reading()}), accuracy "
                        f"{a.value_text()} ({a.reading()})" for g, a in zip(gains, accs)) + "."
    outcome += (f" {clear} of {len(gains)} gains have their 95% interval above 0; "
                f"{sum(g.sign() > 0 for g in gains)} stay significant after Holm's adjustment across the "
                f"{len(family)} comparisons.")
    budget_cell = next((c for c in cells(list(to_time)) if c.members[0] in best.members), None)
    if budget_cell is not None:
        at_time = adjusted([budget_comparison(f"{m.name} vs {best.name} run to GSGM's time", m, budget_cell)
                            for m in methods])
    else:
        at_time = adjusted([equal_time_comparison(f"{m.name} vs {best.name}", m, best) for m in methods])
    accuracy = judge([a.sign() > 0 and e.sign() >= 0 for a, e in zip(accs, at_time)],
                     [a.sign() < 0 or e.sign() < 0 for a, e in zip(accs, at_time)])
    part = Part("a slight accuracy gain", accuracy, ACCURACY_RULE.format(level=LEVEL),
                "; ".join(f"{a.subject}: {a.value_text()} at equal updates ({a.reading()}), {e.value_text()} at "
                          f"equal time ({e.reading()})" for a, e in zip(accs, at_time)) + ".")
    findings = [c for m in methods
                for c in stability_pair(f"{m.name} vs {best.name}", m, best, measure="accuracy_std")[:1]]
    if budget_cell is not None:  # the window at the baselines' own end, beside the run-to-time test
        findings += [equal_time_comparison(f"{m.name} vs {best.name}", m, best) for m in methods]
    return Claim(TITLES["stability"], WORDS["stability"], verdict, rule, outcome, basis, family, (part,),
                 adjusted(findings) + at_time,
                 tables=(_cell_table(all_cells, tuning, best),),
                 notes=(("Equal simulated time: the white list makes fast workers wait, so GSGM needs more simulated "
                         "time for the same updates; the finding compares both over the same window of simulated "
                         "time, ending where the faster one's runs ended and as long as its last final_evals "
                         "evaluations took (the mean over a window, as final accuracy is, rather than one noisy "
                         "evaluation)."),)
                 + _edge_note(tuning))


def equal_time_comparison(subject: str, mine: Cell, theirs: Cell, axis_value=None, where: str = "") -> Comparison:
    """Mean accuracy over the same window of simulated time (``data.equal_time``), paired by seed."""
    horizon, window, a, b = equal_time(mine, theirs, axis_value)
    return Comparison(subject, f"mean accuracy over simulated time {horizon - window:.0f}-{horizon:.0f} s (equal "
                               "time), GSGM − baseline", DIFFERENCE, paired_difference(a, b),
                      above=f"GSGM is more accurate at equal time{where}",
                      below=f"GSGM is less accurate at equal time{where}")


def budget_comparison(subject: str, mine: Cell, theirs: Cell) -> Comparison:
    """Mean accuracy over the window ending at the baseline's time budget (``data.to_budget``), paired by seed."""
    start, budget, a, b = to_budget(mine, theirs)
    return Comparison(subject, f"mean accuracy over simulated time {start:.0f}-{budget:.0f} s (equal time: the "
                               "baseline run to the same time), GSGM − baseline", DIFFERENCE, paired_difference(a, b),
                      above="GSGM is more accurate at equal time", below="GSGM is less accurate at equal time")


def _edge_note(tuning: Tuning) -> tuple[str, ...]:
    if not tuning.edges:
        return ()
    return ("Tuned at the edge of the grid (a wider grid might move these): " + "; ".join(tuning.edges) + ".",)


# ---------------------------------------------------------------------- 2. 30 workers
SCALE_RULE = (
    "*reproduced* only when, at the largest cluster of the tuned `scale` runs ({top} workers), every distinct GSGM "
    "configuration converges in every seed and no baseline does (each fails or diverges in some seed): \"only "
    "GSGM converges well\" is false as soon as one baseline converges in every seed; *not reproduced* otherwise. "
    "A run converges when each of its last final_evals evaluations reaches the target accuracy (docs/protocol.md). Every worker count is looked at: GSGM's other advantages (accuracy, steadiness) are findings of their "
    "own, each paired over seeds against that worker count's strongest baseline (chosen on validation scores), "
    "Holm-adjusted across all the findings; they do not make the claim. The stability sweep (untuned learning "
    "rates, fewer seeds) is reported beside it, not judged.")


def claim_scale(results: list[RunResult], sweep: list[RunResult], tuning: Tuning = NO_TUNING) -> Claim:
    """With 30 workers only GSGM converges well (ASGD and DC-ASGD do not)."""
    values = axis_values(results)
    all_cells = cells(results)
    basis = (Basis("scale", "stalesim reproduce scale", _keys(results), _merged(all_cells), tuning.label),
             Basis("sweep-stability", "stalesim sweep stability", _keys(sweep), _merged(cells(sweep))))
    methods = [c for c in all_cells if c.is_method]
    if not values or not methods:
        return Claim(TITLES["scale"], WORDS["scale"], NOT_TESTABLE, SCALE_RULE.format(top="—"),
                     "Not judged: no GSGM runs over a worker-count axis.", basis)
    top = values[-1]
    baselines = [c for c in all_cells if not c.is_method and c.at(top)]
    gsgm_ok = all(m.all_converged(top) for m in methods)
    holding = [c for c in baselines if c.all_converged(top)]
    verdict = REPRODUCED if gsgm_ok and baselines and not holding else NOT_REPRODUCED
    outcome = (f"At {top} workers: {'; '.join(f'{m.name} {m.outcome_counts(top)}' for m in methods)}; baselines that "
               f"converged in every seed too: {', '.join(c.name for c in holding) or 'none'}.")
    rows, findings, notes = [], [], []
    for v in values:
        for c in all_cells:
            if c.at(v):
                rows.append((v, c.name, c.outcome_counts(v), estimate(c.counted_values("final_accuracy", v)),
                             estimate(c.counted_values("accuracy_std", v))))
        best = strongest(all_cells, tuning, v)
        fails = [c.name for c in all_cells if not c.is_method and c.at(v) and not c.all_converged(v)]
        notes.append(f"At {v} workers: {'; '.join(f'{m.name} {m.outcome_counts(v)}' for m in methods)}; baselines "
                     f"that failed or diverged in some seed: {', '.join(fails) or 'none'}; strongest baseline on "
                     f"validation: {best.name if best else 'none scored'}.")
        if best is not None:
            for m in methods:
                subject = f"{v} workers: {m.name} vs {best.name}"
                findings += list(stability_pair(subject, m, best, v, f" at {v} workers"))
                findings.append(equal_time_comparison(subject, m, best, v, f" at {v} workers"))
    tables = [Table(("workers", "configuration", "outcomes", "final acc. (%)", "acc. std (%)"), tuple(rows),
                    f"Dataset: {results[0].config['dataset']} (the paper: CIFAR-100); speed assignment "
                    f"`{results[0].config['speed_assignment']}`.")]
    if sweep:
        tables.append(stability_region(sweep))
        notes += region_notes(sweep)
    return Claim(TITLES["scale"], WORDS["scale"], verdict, SCALE_RULE.format(top=top), outcome, basis,
                 findings=adjusted(findings), finding_notes=tuple(notes), tables=tuple(tables),
                 notes=_edge_note(tuning))


# ---------------------------------------------------------------------- 3. non-IID degree
NONIID_RULE = (
    "GSGM's drop (final accuracy at {iid} classes per worker, IID, minus at {sparse}) is compared with every distinct "
    "baseline's, seed by seed: *reproduced* when GSGM drops less than every baseline (the difference of drops below "
    "0: interval below 0, Holm-adjusted p below {level}); *partly* when less than some; *not reproduced* when less "
    "than none and more than some; *not resolved* when no difference is significant either way.")


def claim_noniid(results: list[RunResult], tuning: Tuning = NO_TUNING) -> Claim:
    """GSGM is robust to the degree of non-IID data."""
    values = axis_values(results)
    all_cells = cells(results)
    basis = (Basis("noniid", "stalesim reproduce noniid", _keys(results), _merged(all_cells)),)
    methods = [c for c in all_cells if c.is_method]
    baselines = [c for c in all_cells if not c.is_method]
    if len(values) < 2 or not methods or not baselines:
        return Claim(TITLES["noniid"], WORDS["noniid"], NOT_TESTABLE,
                     NONIID_RULE.format(iid="—", sparse="—", level=LEVEL),
                     "Not judged: fewer than two non-IID degrees, or no GSGM or no baseline.", basis)
    sparse, iid = values[0], values[-1]

    def drops(c: Cell) -> dict:
        a, b = c.values("final_accuracy", iid), c.values("final_accuracy", sparse)
        return {s: None if a.get(s) is None or b.get(s) is None else a[s] - b[s] for s in a}

    rows = []
    for c in all_cells:
        drop = Comparison(c.name, "drop", DIFFERENCE, paired_difference(c.values("final_accuracy", iid),
                                                                        c.values("final_accuracy", sparse)))
        rows.append((c.name,) + tuple(estimate(c.counted_values("final_accuracy", v)) for v in values) + (drop,))
    family = adjusted([Comparison(f"{m.name} vs {b.name}", "drop from IID, GSGM − baseline", DIFFERENCE,
                                  paired_difference(drops(m), drops(b)), above="GSGM drops more",
                                  below="GSGM drops less")
                       for m in methods for b in baselines])
    verdict = judge([c.sign() < 0 for c in family], [c.sign() > 0 for c in family])
    outcome = "; ".join(f"{c.subject}: {c.value_text()}, {c.reading()}" for c in family) + "."
    columns = tuple(f"{v} class{'' if v == 1 else 'es'}/worker (%)" for v in values)
    table = Table(("configuration",) + columns + ("drop from IID (points)",),
                  tuple(rows), "Final accuracy, mean ± 95% half-width over converged seeds; the drop is paired by "
                               "seed, with its 95% interval.")
    return Claim(TITLES["noniid"], WORDS["noniid"], verdict, NONIID_RULE.format(iid=iid, sparse=sparse, level=LEVEL),
                 outcome, basis, family, tables=(table,), notes=_edge_note(tuning))


# ---------------------------------------------------------------------- 4. DC-ASGD-a against ASGD
DCASGD_PAIRS = (("dcasgd-a", "asgd"), ("dcasgd-a-server", "asgd-server"))
DCASGD_RULE = (
    "in each distinct pair (DC-ASGD-a and ASGD with the same base and the same place for the optimizer state, on "
    "the same seeds and traces) the final-accuracy difference is paired by seed: *reproduced* when DC-ASGD-a is "
    "better in every pair (interval above 0, Holm-adjusted p below {level}); *partly* in some; *not reproduced* "
    "when better in none and worse in some; *not resolved* when no difference is significant either way.")


def claim_dcasgd(results: list[RunResult]) -> Claim:
    """DC-ASGD's own claim: DC-ASGD-a is more accurate than ASGD (Zheng et al. 2017)."""
    all_cells = cells(results)
    of = {m: c for c in all_cells for m in c.members}
    pairs = []  # (DC-ASGD-a cell, ASGD cell), each distinct pair of configurations once
    for dc, plain in DCASGD_PAIRS:
        for (algorithm, base), c in of.items():
            other = of.get((plain, base))
            if algorithm == dc and other is not None and not any(d is c and a is other for d, a in pairs):
                pairs.append((c, other))
    rule = DCASGD_RULE.format(level=LEVEL)
    basis = (Basis("fmnist", "stalesim reproduce fmnist", _keys(results), _merged(all_cells)),)
    if not pairs:
        return Claim(TITLES["dcasgd"], WORDS["dcasgd"], NOT_TESTABLE, rule,
                     "Not judged: no DC-ASGD-a and ASGD pair on the same base.", basis)
    family = adjusted([Comparison(f"{d.name} vs {a.name}", "final accuracy, DC-ASGD-a − ASGD", DIFFERENCE,
                                  paired_difference(d.values("final_accuracy"), a.values("final_accuracy")),
                                  above="DC-ASGD-a is more accurate", below="DC-ASGD-a is less accurate")
                       for d, a in pairs])
    verdict = judge([c.sign() > 0 for c in family], [c.sign() < 0 for c in family])
    lows = [c.estimate.low for c in family if c.estimate.low is not None]
    highs = [c.estimate.high for c in family if c.estimate.high is not None]
    outcome = (f"{sum(c.sign() > 0 for c in family)} of {len(family)} pairs significantly better, "
               f"{sum(c.sign() < 0 for c in family)} significantly worse"
               + (f"; the intervals span {100 * min(lows):+.1f} to {100 * max(highs):+.1f} points" if lows else "")
               + ".")
    return Claim(TITLES["dcasgd"], WORDS["dcasgd"], verdict, rule, outcome, basis, family)


# ---------------------------------------------------------------------- 5. CIFAR
def claim_cifar() -> Claim:
    return Claim(TITLES["cifar"], WORDS["cifar"], NOT_TESTABLE,
                 "a claim is judged only from runs on its own dataset.",
                 "The CIFAR archives are not on this machine (`stalesim data fetch` gets them) and a CPU needs hours "
                 "per experiment; these claims were not run.",
                 (Basis("cifar10, scale with CIFAR-100", "stalesim reproduce cifar10 / scale with CIFAR"),))
