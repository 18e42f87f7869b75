"""The claim rules on hand-made results: every verdict each rule can give, and the rendered text against the record."""

from pathlib import Path

import pytest

from scenarios.experiments.results import RunResult
from scenarios.reports import readme
from scenarios.reports.claims import verdicts
from scenarios.reports.claims.data import Tuning, cells, shared, strongest
from scenarios.reports.claims.records import (
    DIFFERENCE,
    GAIN,
    NOT_REPRODUCED,
    NOT_RESOLVED,
    NOT_TESTABLE,
    PARTLY,
    REPRODUCED,
    Comparison,
    Report,
    adjusted,
    gain,
    judge,
)
from scenarios.reports.claims.region import region_notes, stability_region
from scenarios.reports.claims.rendering import claim as render_claim
from scenarios.reports.claims.rendering import render
from scenarios.reports.claims.rules import (
    claim_dcasgd,
    claim_noniid,
    claim_scale,
    claim_stability,
)
from scenarios.reports.claims.studies import all_studies, like_with_like
from scenarios.reports.stats import Paired

ROOT = Path(__file__).resolve().parents[3]
SEEDS = (0, 1, 2)
NOISE = (0.0, 0.004, -0.003)  # a seed-to-seed spread shared by every algorithm (the seed is a block)
JITTER = (0.02, -0.03, 0.015)  # a spread of one algorithm's own: no consistent difference


def run(algorithm, base, seed, acc, std, *, outcome="converged", axis=None, axis_value=None, lr=0.01, history=None,
        workers=10, key=None):
    """A small RunResult: two evaluations, the second at the final accuracy; its std is both
    the raw and the detrended one."""
    if history is None:
        history = [{"update": 0, "sim_time": 0.0, "loss": 2.0, "accuracy": 0.1, "tag": f"{algorithm}/{base}"},
                   {"update": 100, "sim_time": 10.0 + seed, "loss": 1.0, "accuracy": acc}]
    return RunResult(run=f"{algorithm}-{base}-s{seed}", key=key or f"{algorithm}-{base}-{axis_value}-{seed}",
                     algorithm=algorithm, base=base, seed=seed, policy="fifo",
                     config={f"lr_{base}": lr, "workers": workers, "dataset": "fmnist", "speed_assignment": "class"},
                     history=history, trace={"mean_staleness": 1.0, "p95_staleness": 3.0}, final_accuracy=acc, accuracy_std=std,
                     detrended_std=std, outcome=outcome, axis=axis, axis_value=axis_value)


def cell(algorithm, base, accs, stds, **kw):
    return [run(algorithm, base, s, a, d, **kw) for s, a, d in zip(SEEDS, accs, stds)]


def shifted(values, by):
    return [v + by for v in values]


def scaled(values, by):
    return [v * by for v in values]


BASE_ACC = [0.80 + n for n in NOISE]
BASE_STD = [0.03 * (1 + 10 * n) for n in NOISE]


def tuning(*scores):
    """Tuning records: (algorithm, base, validation score[, axis value]) with the lr the runs ran at."""
    return Tuning({(a, b, str(v[0]) if v else ""): (f"lr_{b}", 0.01, score) for a, b, score, *v in scores},
                  label="test/tuning.csv")


# ---------------------------------------------------------------------- records
def test_gain_maps_the_ratio_interval_and_keeps_its_p_value():
    g = gain(Paired(0.25, 0.2, 0.4, 3, 0.01))
    assert (g.mean, g.low, g.high, g.p_value) == (0.75, pytest.approx(0.6), 0.8, 0.01)


def test_sign_needs_the_interval_and_the_holm_adjusted_p_value():
    clear = Paired(0.05, 0.01, 0.09, 3, 0.03)
    assert Comparison("a", "m", DIFFERENCE, clear, p_adjusted=0.03).sign() == 1
    assert Comparison("a", "m", DIFFERENCE, clear, p_adjusted=0.09).sign() == 0  # clear only before adjusting
    assert "Holm-adjusted p ≥ 0.05" in Comparison("a", "m", DIFFERENCE, clear, p_adjusted=0.09).reading()
    below = Paired(-0.05, -0.09, -0.01, 3, 0.001)
    assert Comparison("a", "m", DIFFERENCE, below, p_adjusted=0.001).sign() == -1
    family = adjusted([Comparison("a", "m", DIFFERENCE, clear), Comparison("b", "m", DIFFERENCE, below)])
    assert [c.p_adjusted for c in family] == [pytest.approx(0.03), pytest.approx(0.002)]


def test_judge_every_verdict():
    assert judge([True, True], [False, False]) == REPRODUCED
    assert judge([True, False], [False, True]) == PARTLY
    assert judge([False, False], [True, False]) == NOT_REPRODUCED
    assert judge([False, False], [False, False]) == NOT_RESOLVED


def test_identical_runs_are_one_configuration():
    history = {s: [{"update": 0, "sim_time": 0.0, "loss": 2.0, "accuracy": 0.1},
                   {"update": 100, "sim_time": 30.0, "loss": 1.0, "accuracy": 0.85 + s / 100}] for s in SEEDS}
    results = [run("gsgm", b, s, 0.85, 0.01, history=history[s]) for b in ("sgd", "momentum") for s in SEEDS]
    merged = cells(results)
    assert len(merged) == 1 and merged[0].name == "GSGM on sgd = momentum"
    results[-1] = run("gsgm", "momentum", 2, 0.85, 0.01)  # one seed differs: two configurations
    assert len(cells(results)) == 2


def test_strongest_baseline_is_chosen_on_validation_scores_and_only_at_the_rate_the_runs_ran():
    results = cell("asgd", "sgd", shifted(BASE_ACC, 0.05), BASE_STD) + cell("asgd-server", "momentum", BASE_ACC,
                                                                            BASE_STD)
    by_validation = tuning(("asgd", "sgd", 0.70), ("asgd-server", "momentum", 0.75))
    assert strongest(cells(results), by_validation).name == "ASGD (server) on momentum"  # not the best on test
    other_rate = Tuning({("asgd", "sgd", ""): ("lr_sgd", 0.01, 0.70),
                         ("asgd-server", "momentum", ""): ("lr_momentum", 0.5, 0.75)})
    assert strongest(cells(results), other_rate).name == "ASGD on sgd"


# ---------------------------------------------------------------------- 1. stability
def stability_results(gsgm_std_factor, gsgm_acc_shift, *, adam=None):
    results = cell("asgd-server", "adam", BASE_ACC, BASE_STD)
    results += cell("gsgm", "sgd", shifted(BASE_ACC, gsgm_acc_shift), scaled(BASE_STD, gsgm_std_factor))
    if adam is not None:
        results += cell("gsgm", "adam", shifted(BASE_ACC, adam[1]), [d * f for d, f in zip(BASE_STD, adam[0])])
    return results


STABILITY_TUNING = tuning(("asgd-server", "adam", 0.83))


def test_stability_reproduced_with_its_size_against_the_paper():
    c = claim_stability(stability_results(0.3, 0.01), STABILITY_TUNING)
    assert c.verdict == REPRODUCED
    assert [x.kind for x in c.comparisons] == [GAIN, DIFFERENCE]
    assert c.comparisons[0].estimate.mean == pytest.approx(0.7)
    assert "larger than the paper's 20%" in c.outcome
    assert c.parts[0].verdict == REPRODUCED  # a consistent +1 point: the accuracy gain is resolved too
    near = claim_stability(stability_results(0.8, 0.0), STABILITY_TUNING)
    assert near.verdict == REPRODUCED and "smaller than the paper's 20%" in near.outcome
    assert near.parts[0].verdict == NOT_RESOLVED  # no accuracy difference: "a slight gain" not resolved


def test_stability_accuracy_gain_must_hold_at_equal_time_too():
    """GSGM one point ahead after the same updates, but its runs took three times the simulated
    time and, where the baseline's runs ended, GSGM was 10 points behind: not reproduced."""
    def history(times, accs, seed):
        return [{"update": 50 * i, "sim_time": t, "loss": 2.0 - 0.5 * i, "accuracy": a + (NOISE[seed] if i else 0)}
                for i, (t, a) in enumerate(zip(times, accs))]
    results = [run("asgd-server", "adam", s, BASE_ACC[s], BASE_STD[s], history=history((0, 5, 10), (0.1, 0.75, 0.80), s))
               for s in SEEDS]
    results += [run("gsgm", "sgd", s, BASE_ACC[s] + 0.01, 0.3 * BASE_STD[s],
                    history=history((0, 10, 30), (0.1, 0.70, 0.81), s)) for s in SEEDS]
    for r in results:
        r.config["final_evals"] = 2  # the baseline's last two evaluations span 5-10 s: the window
    c = claim_stability(results, STABILITY_TUNING)
    at_time = [f for f in c.findings if "equal time" in f.measure]
    assert len(at_time) == 1 and at_time[0].estimate.mean == pytest.approx(-0.10)
    assert c.parts[0].verdict == NOT_REPRODUCED and "at equal time" in c.parts[0].outcome


def test_stability_partly_not_reproduced_not_resolved_not_testable():
    partly = claim_stability(stability_results(0.3, 0.0, adam=([1.4, 0.7, 1.1], 0.0)), STABILITY_TUNING)
    assert partly.verdict == PARTLY and len(partly.comparisons) == 4
    worse = claim_stability(stability_results(2.0, 0.0), STABILITY_TUNING)
    assert worse.verdict == NOT_REPRODUCED and worse.comparisons[0].reading() == "GSGM is less steady"
    steadier_but_less_accurate = claim_stability(stability_results(0.3, -0.02), STABILITY_TUNING)
    assert steadier_but_less_accurate.verdict == NOT_REPRODUCED
    assert steadier_but_less_accurate.parts[0].verdict == NOT_REPRODUCED
    noisy = cell("asgd-server", "adam", BASE_ACC, BASE_STD) + cell(
        "gsgm", "sgd", [a + j for a, j in zip(BASE_ACC, JITTER)], [d * f for d, f in zip(BASE_STD, (1.5, 0.6, 1.1))])
    assert claim_stability(noisy, STABILITY_TUNING).verdict == NOT_RESOLVED
    assert claim_stability(stability_results(0.3, 0.0), Tuning()).verdict == NOT_TESTABLE  # no validation scores


def test_stability_counts_identical_gsgm_configurations_once():
    results = stability_results(0.3, 0.01)
    results += [run("gsgm", "momentum", r.seed, r.final_accuracy, r.accuracy_std, history=r.history)
                for r in results if r.algorithm == "gsgm"]
    c = claim_stability(results, STABILITY_TUNING)
    assert len(c.comparisons) == 2 and c.comparisons[0].subject.startswith("GSGM on sgd = momentum vs")
    assert c.basis[0].merged == ("GSGM on sgd = momentum",)


# ---------------------------------------------------------------------- 2. scale
def scale_results(baseline_outcome_at_30="converged", gsgm_outcome_at_30="converged", baseline_outcome_at_20=None):
    results = []
    for v in (10, 20, 30):
        for algorithm, base, acc, std in (("asgd", "sgd", BASE_ACC, BASE_STD),
                                          ("gsgm", "sgd", shifted(BASE_ACC, 0.02), scaled(BASE_STD, 0.4))):
            outcome = {30: gsgm_outcome_at_30 if algorithm == "gsgm" else baseline_outcome_at_30,
                       20: baseline_outcome_at_20 if algorithm == "asgd" and baseline_outcome_at_20 else "converged"}
            results += [run(algorithm, base, s, a, d, axis="workers", axis_value=v, workers=v,
                            outcome=outcome.get(v, "converged") if s == 0 else "converged")
                        for s, a, d in zip(SEEDS, acc, std)]
    return results


SCALE_TUNING = tuning(*[("asgd", "sgd", 0.8, v) for v in (10, 20, 30)])


def test_scale_every_verdict():
    assert claim_scale(scale_results("diverged"), [], SCALE_TUNING).verdict == REPRODUCED
    # "only GSGM converges well" is false once one baseline converges in every seed at 30 workers
    holds = cell("asgd-server", "momentum", BASE_ACC, BASE_STD, axis="workers", axis_value=30, workers=30)
    second = claim_scale(scale_results("diverged") + holds, [], SCALE_TUNING)
    assert second.verdict == NOT_REPRODUCED and "converged in every seed too: ASGD (server) on momentum" in \
        second.outcome
    everyone = claim_scale(scale_results(), [], SCALE_TUNING)
    assert everyone.verdict == NOT_REPRODUCED
    # GSGM's advantages are findings (steadier, more accurate at equal updates and at equal time),
    # each paired and adjusted across the 3 worker counts
    assert len(everyone.findings) == 9 and all(f.p_adjusted is not None for f in everyone.findings)
    assert everyone.findings[-3].reading() == "GSGM is steadier at 30 workers"
    assert "equal time" in everyone.findings[-1].measure
    assert claim_scale(scale_results("failed", "failed"), [], SCALE_TUNING).verdict == NOT_REPRODUCED
    assert claim_scale([], [], SCALE_TUNING).verdict == NOT_TESTABLE


def test_scale_looks_at_every_worker_count():
    c = claim_scale(scale_results(baseline_outcome_at_20="failed"), [], SCALE_TUNING)
    assert c.verdict == NOT_REPRODUCED  # the claim is about the largest cluster
    assert any(n.startswith("At 20 workers") and "ASGD on sgd" in n for n in c.finding_notes)


# ---------------------------------------------------------------------- 3. non-IID
def noniid_results(baseline_drop, gsgm_drop, jitter=(0.0, 0.0, 0.0), *, server=None):
    """ASGD dropping ``baseline_drop`` from IID to one class per worker (plus its own ``jitter``), GSGM
    ``gsgm_drop``, and with ``server`` = (drop, jitter) ASGD (server) as a second baseline."""
    still = (0.0, 0.0, 0.0)
    configurations = [("asgd", "sgd", baseline_drop, jitter), ("gsgm", "sgd", gsgm_drop, still)]
    if server is not None:
        configurations.append(("asgd-server", "momentum", *server))
    results = []
    for v, at_iid in ((1, False), (10, True)):
        for algorithm, base, drop, own in configurations:
            accs = [0.86 + n - (0 if at_iid else drop + j) for n, j in zip(NOISE, own)]
            results += cell(algorithm, base, accs, BASE_STD, axis="classes_per_worker", axis_value=v)
    return results


def test_noniid_every_verdict():
    assert claim_noniid(noniid_results(0.06, 0.01)).verdict == REPRODUCED
    assert claim_noniid(noniid_results(0.06, 0.01, server=(0.01, (0.03, -0.04, 0.0)))).verdict == PARTLY
    assert claim_noniid(noniid_results(0.01, 0.06)).verdict == NOT_REPRODUCED
    assert claim_noniid(noniid_results(0.03, 0.01, jitter=(0.05, -0.06, 0.02))).verdict == NOT_RESOLVED
    assert claim_noniid([r for r in noniid_results(0.06, 0.01) if r.axis_value == 1]).verdict == NOT_TESTABLE


def test_noniid_drop_is_paired_by_seed():
    c = claim_noniid(noniid_results(0.06, 0.01))
    assert c.comparisons[0].estimate.mean == pytest.approx(-0.05)
    assert c.comparisons[0].estimate.half_width == pytest.approx(0.0, abs=1e-9)  # the shared noise cancels


# ---------------------------------------------------------------------- 4. DC-ASGD-a against ASGD
def dcasgd_results(sgd_diff, momentum_diff, jitter=(0.0, 0.0, 0.0)):
    spread = (0.0, 0.08, -0.06)  # large between seeds: only pairing resolves a 0.5-point difference
    results = []
    for base, diff in (("sgd", sgd_diff), ("momentum", momentum_diff)):
        results += cell("asgd", base, [0.8 + s for s in spread], BASE_STD)
        results += cell("dcasgd-a", base, [0.8 + s + diff + j for s, j in zip(spread, jitter)], BASE_STD)
    return results


def test_dcasgd_every_verdict_paired():
    assert claim_dcasgd(dcasgd_results(0.005, 0.005)).verdict == REPRODUCED
    assert claim_dcasgd(dcasgd_results(0.005, 0.0)).verdict == PARTLY
    assert claim_dcasgd(dcasgd_results(-0.005, 0.0)).verdict == NOT_REPRODUCED
    assert claim_dcasgd(dcasgd_results(0.005, 0.005, jitter=(0.02, -0.03, 0.01))).verdict == NOT_RESOLVED
    assert claim_dcasgd(cell("asgd", "sgd", BASE_ACC, BASE_STD)).verdict == NOT_TESTABLE


# ---------------------------------------------------------------------- shared runs
def test_shared_runs_are_detected_from_keys_configs_and_traces():
    a = cell("asgd", "sgd", BASE_ACC, BASE_STD)
    b = [run(r.algorithm, r.base, r.seed, r.final_accuracy, r.accuracy_std, key=r.key) for r in a]
    for r in b:
        r.config = dict(r.config, speed_assignment="index")
    s = shared("fmnist", a, "scale at workers = 10", b)
    assert (s.common, s.same_key, s.config_differences, s.same_trace) == (3, 3, ("speed_assignment",), 3)
    assert s.same_configuration
    b[0].trace = {"mean_staleness": 2.0}
    assert not shared("fmnist", a, "scale", b).same_configuration


# ---------------------------------------------------------------------- rendering
def test_rendered_text_matches_the_record():
    c = claim_stability(stability_results(0.3, 0.01), STABILITY_TUNING)
    text = "\n".join(render_claim(c))
    assert f"## {c.title}" in text and f"The paper: *{c.words}*" in text
    assert f"Verdict: **{c.verdict}**. {c.outcome}" in text
    assert f"Rule: {c.rule}" in text
    for x in c.comparisons + c.findings:
        row = next(line for line in text.splitlines() if line.startswith(f"| {x.subject} | {x.measure} |"))
        assert x.value_text() in row and row.endswith(f"| {x.reading()} |")
    assert f"*{c.parts[0].words}*: **{c.parts[0].verdict}**" in text
    report = Report("here", (c, claim_dcasgd(dcasgd_results(0.005, 0.0))), seeds=3, planned_seeds=10)
    table = readme.claims_body(render(report))
    assert table.splitlines()[1] == "| --- | --- |"  # the README's copy is a Markdown table
    assert table.splitlines()[2:] == [f"| {t} | **{v}** |" for t, v in report.verdicts()]


def test_committed_claims_md_and_readme_show_the_records_verdicts():
    rows = readme.claims_body((ROOT / "docs" / "claims.md").read_text()).splitlines()[2:]
    assert rows == [f"| {t} | **{v}** |" for t, v in verdicts(ROOT / "docs" / "claims-data")]


# ---------------------------------------------------------------------- studies
def test_ablation_study_pairs_each_variant_with_full_gsgm_and_computes_the_share():
    """Full GSGM's detrended std is a quarter of the baseline's; without the white list it is half:
    on the log scale the white list accounts for 1 - ln 2 / ln 4 = 50% of the gain."""
    fmnist = cell("asgd-server", "adam", BASE_ACC, BASE_STD) + cell("gsgm", "sgd", BASE_ACC, scaled(BASE_STD, 0.25))
    studies = {"gsgm-fifo": cell("gsgm", "sgd", shifted(BASE_ACC, -0.01), scaled(BASE_STD, 0.5))}
    parts, = all_studies(fmnist, studies, STABILITY_TUNING)
    assert [row[0] for row in parts.table.rows] == [
        "GSGM on sgd (fmnist: all three parts)", "GSGM on sgd without the white list (`gsgm-fifo`)",
        "ASGD (server) on adam (strongest baseline, fmnist)"]
    gain_, accuracy = parts.findings
    assert gain_.estimate.mean == pytest.approx(-1.0)  # 1 - 0.5 / 0.25: twice full GSGM's std
    assert accuracy.estimate.mean == pytest.approx(-0.01)
    assert parts.sentences == ("The share of full GSGM's stability gain over ASGD (server) on adam that each part "
                               "accounts for (what is lost without it, on the log scale; 95% interval from a paired "
                               "bootstrap over 3 seeds; 100% = the whole gain, below 0 = steadier without it): the "
                               "white list: +50% [+50%, +50%].",)
    assert all_studies(fmnist, {}, STABILITY_TUNING) == ()  # no study folders: no section


def test_stability_region_is_the_rates_where_every_seed_converges_at_every_worker_count():
    def sweep_run(algorithm, workers, lr, seed, outcome):
        return run(algorithm, "sgd", seed, 0.8, 0.01, outcome=outcome, workers=workers, lr=lr,
                   key=f"{algorithm}-{workers}-{lr}-{seed}")
    results = []
    for workers in (10, 30):
        for lr in (0.01, 0.1):
            for seed in (0, 1):
                # GSGM converges everywhere; ASGD fails at lr 0.1 with 30 workers in one seed
                results.append(sweep_run("gsgm", workers, lr, seed, "converged"))
                failing = workers == 30 and lr == 0.1 and seed == 1
                results.append(sweep_run("asgd", workers, lr, seed, "failed" if failing else "converged"))
    rows = {(r[0], r[1]): r for r in stability_region(results).rows}
    assert rows[("ASGD on sgd", 30)][2:4] == ("0.01", "one rate, 0.01") and rows[("GSGM on sgd", 30)][2:4] == ("0.01, 0.1", "10x")
    notes = region_notes(results)
    assert notes[0].endswith("ASGD on sgd: 0.01; GSGM on sgd: 0.01, 0.1.")
    assert "Sweep at 30 workers: GSGM's converging range (10x) is wider than the widest baseline's" in notes[-1]


def test_equal_time_study_averages_both_over_the_same_window_ending_at_the_budget():

    def timed(algorithm, base, seed, times, accs, budget=None):
        r = run(algorithm, base, seed, accs[-1], 0.01, history=[
            {"update": 200 * i, "sim_time": t, "loss": 1.0, "accuracy": a + NOISE[seed]}
            for i, (t, a) in enumerate(zip(times, accs))])
        r.config.update({"final_evals": 2, **({"time_budget": budget} if budget else {})})
        return r
    fmnist = [timed("gsgm", "sgd", s, (0, 1000, 2000, 3000), (0.1, 0.8, 0.84, 0.85)) for s in SEEDS]
    budget = [timed("asgd-server", "adam", s, (0, 1000, 2500, 3000), (0.1, 0.8, 0.82, 0.84), 3000) for s in SEEDS]
    study, = all_studies(fmnist, {"time-budget": budget}, STABILITY_TUNING)
    # GSGM's last 2 evaluations span 2000-3000 s: GSGM 0.85 there, the baseline (0.82 + 0.84) / 2
    finding, = study.findings
    assert "2000-3000 s" in finding.measure and finding.estimate.mean == pytest.approx(0.02)


def test_stability_accuracy_part_uses_the_baseline_run_to_gsgms_time_when_there_is_one():
    def timed(algorithm, base, seed, times, accs, std, budget=None):
        r = run(algorithm, base, seed, accs[-1] + NOISE[seed], std, history=[
            {"update": 200 * i, "sim_time": t, "loss": 1.0, "accuracy": a + NOISE[seed]}
            for i, (t, a) in enumerate(zip(times, accs))])
        r.config.update({"final_evals": 2, **({"time_budget": budget} if budget else {})})
        return r
    # at equal updates GSGM is 2 points ahead; run to GSGM's time the baseline is 1 point ahead
    fmnist = [timed("asgd-server", "adam", s, (0, 500, 1000), (0.1, 0.80, 0.83), BASE_STD[s]) for s in SEEDS]
    fmnist += [timed("gsgm", "sgd", s, (0, 1000, 2000, 3000), (0.1, 0.8, 0.84, 0.85), 0.3 * BASE_STD[s])
               for s in SEEDS]
    to_time = [timed("asgd-server", "adam", s, (0, 1000, 2500, 3000), (0.1, 0.8, 0.85, 0.87), BASE_STD[s], 3000)
               for s in SEEDS]
    c = claim_stability(fmnist, STABILITY_TUNING, to_time)
    assert c.parts[0].verdict == NOT_REPRODUCED
    budget, = [f for f in c.findings if "run to the same time" in f.measure]
    assert "2000-3000 s" in budget.measure and budget.estimate.mean == pytest.approx(0.85 - 0.86)


def test_like_with_like_sets_gsgm_without_momentum_against_sgd_and_with_it_against_momentum():
    """GSGM without global momentum (std a quarter of ASGD on sgd's) meets ASGD on sgd; GSGM with
    it (std half of ASGD on momentum's, one point more accurate) meets ASGD on momentum."""
    fmnist = (cell("asgd", "sgd", BASE_ACC, BASE_STD) + cell("asgd", "momentum", BASE_ACC, BASE_STD)
              + cell("gsgm", "sgd", shifted(BASE_ACC, 0.01), scaled(BASE_STD, 0.5)))
    studies = {"gsgm-no-momentum": cell("gsgm", "sgd", shifted(BASE_ACC, 0.02), scaled(BASE_STD, 0.25))}
    study = like_with_like(fmnist, studies)
    assert [row[0] for row in study.table.rows] == [
        "GSGM on sgd without global momentum (`gsgm-no-momentum`)", "ASGD on sgd", "GSGM on sgd, global momentum 0.9",
        "ASGD on momentum"]
    plain_gain, plain_acc, momentum_gain, momentum_acc = study.findings
    assert plain_gain.subject == "GSGM on sgd without global momentum vs ASGD on sgd"
    assert plain_gain.estimate.mean == pytest.approx(0.75) and plain_acc.estimate.mean == pytest.approx(0.02)
    assert momentum_gain.subject == "GSGM on sgd, global momentum 0.9 vs ASGD on momentum"
    assert momentum_gain.estimate.mean == pytest.approx(0.5) and momentum_acc.estimate.mean == pytest.approx(0.01)
    assert like_with_like(cell("asgd", "sgd", BASE_ACC, BASE_STD), {}) is None  # no GSGM: no section
