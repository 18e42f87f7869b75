"""Outcome labels from the task (issue 21): converged = reached the target and held it; failed; diverged."""

import math

import numpy as np
import pytest

from scenarios.experiments.config import ExperimentConfig, run_key
from scenarios.experiments.outcomes import detrended_std, label
from scenarios.experiments.results import RunResult
from scenarios.reports.claims.data import Cell, equal_time, final_window
from scenarios.reports.claims.studies import share_of_gain
from scenarios.reports.stats import accuracy_over

RULE = dict(final_evals=3, target_accuracy=0.7, diverged_loss_ratio=10.0)
LOSS = [2.3, 1.0, 0.8, 0.7, 0.6]


@pytest.mark.parametrize("accuracy, loss, outcome", [
    ([0.1, 0.5, 0.72, 0.75, 0.80], LOSS, "converged"),          # the last 3 all >= 0.70
    ([0.1, 0.5, 0.72, 0.69, 0.80], LOSS, "failed"),             # dipped below the target once: did not hold it
    ([0.1, 0.3, 0.35, 0.34, 0.36], LOSS, "failed"),             # smooth but at 35%: not converged
    ([0.1, 0.5, 0.70, 0.70, 0.70], LOSS, "converged"),          # exactly at the target counts
    ([0.1, 0.1, 0.1, 0.1, 0.1], [2.3, 9, 23, 23, 23.1], "diverged"),  # mean final loss 23.03 >= 10 x 2.3
    ([0.1, 0.1, 0.1, 0.1, 0.1], [2.3, 9, 22.9, 22.9, 22.9], "failed"),  # 22.9 < 23: a rise, not a blow-up
])
def test_label_by_hand(accuracy, loss, outcome):
    assert label(accuracy, loss, non_finite=False, **RULE) == outcome


def test_non_finite_is_diverged_whatever_the_accuracy():
    assert label([0.9] * 5, LOSS, non_finite=True, **RULE) == "diverged"


def test_detrended_std_removes_a_straight_rise_and_keeps_the_fluctuation():
    update = np.arange(0, 1100, 100)
    rise = 0.5 + update / 10_000  # a straight line: raw std > 0, detrended 0
    assert detrended_std(update, rise) == pytest.approx(0.0, abs=1e-12)
    wobble = rise + np.where(np.arange(len(update)) % 2, 0.01, -0.01)
    half = update >= 500  # 500..1000: six evaluations, +-0.01 alternating around the line
    assert detrended_std(update, wobble) < np.std(wobble[half])
    assert detrended_std(update, 0.8 + np.where(np.arange(11) % 2, 0.01, -0.01)) == pytest.approx(
        np.std(np.where(np.arange(11) % 2, 0.01, -0.01)[half]), rel=0.05)


def _saved(accuracies, target):
    history = [{"update": 100 * i, "sim_time": float(i), "loss": 2.0 - 0.1 * i, "accuracy": a}
               for i, a in enumerate(accuracies)]
    config = {**ExperimentConfig().to_dict(), "final_evals": 2, "target_accuracy": target}
    return RunResult.from_json({"run": "r", "key": "k", "algorithm": "asgd", "base": "sgd", "seed": 0,
                                "policy": "fifo", "config": config, "history": history, "trace": {},
                                "outcome": "converged", "final_accuracy": accuracies[-1]})


def test_a_saved_result_is_relabelled_by_the_target_it_is_read_with():
    assert _saved([0.1, 0.6, 0.75, 0.76], 0.7).outcome == "converged"
    assert _saved([0.1, 0.6, 0.75, 0.76], 0.8).outcome == "failed"  # the file said "converged"
    assert _saved([0.1, 0.3, 0.34, 0.36], 0.7).outcome == "failed"


def test_outcome_fields_do_not_change_a_runs_key():
    a = ExperimentConfig()
    assert run_key(a, "asgd", "sgd", 0) == run_key(a.with_overrides({"target_accuracy": "0.8",
                                                                     "diverged_loss_ratio": "5"}), "asgd", "sgd", 0)
    assert run_key(a, "asgd", "sgd", 0) != run_key(a.with_overrides({"final_evals": "3"}), "asgd", "sgd", 0)


def test_retired_fields_are_a_notice_not_an_error(capsys):
    cfg = ExperimentConfig().with_overrides({"failed_margin": "0.1"})
    assert cfg == ExperimentConfig()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "failed_margin" in err[0] and "target_accuracy" in err[0]


def test_gsgm_window_is_a_number_half_or_all_and_zero_is_read_as_half_once(capsys, monkeypatch):
    from scenarios import errors
    from scenarios.errors import ConfigError
    from scenarios.experiments import config

    monkeypatch.setattr(errors, "_SAID", set())
    default = ExperimentConfig().validate()
    assert default.gsgm_k == "half"
    assert ExperimentConfig().with_overrides({"gsgm_k": "all"}).gsgm_k == "all"
    assert ExperimentConfig().with_overrides({"gsgm_k": "3"}).gsgm_k == 3
    for bad, line in [("0.5", "--set gsgm_k: must be an integer >= 1, or half or all, got '0.5'"),
                      ("most", "--set gsgm_k: must be an integer >= 1, or half or all, got 'most'"),
                      ("11", "gsgm_k: must be at most workers (10), half or all, got 11")]:
        with pytest.raises(ConfigError) as e:
            ExperimentConfig().with_overrides({"gsgm_k": bad})
        assert str(e.value) == line
    assert capsys.readouterr().err == ""
    # the old spelling, 0 for half: from --set and from a saved config, one notice per process
    assert ExperimentConfig().with_overrides({"gsgm_k": "0"}) == default
    assert config.from_dict({**default.to_dict(), "gsgm_k": 0}) == default
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["stalesim: note: gsgm_k=0 is now written gsgm_k=half (read as half)"]
    # keys and tuned_at hashes keep the old spelling: every finished run keeps its key
    assert config.numbers_fields(default)["gsgm_k"] == 0
    assert run_key(default, "gsgm", "sgd", 0) == "4fa5f10a3a813104"  # the key before the rename
    assert run_key(default.with_overrides({"gsgm_k": "all"}), "gsgm", "sgd", 0) != run_key(
        default.with_overrides({"gsgm_k": "10"}), "gsgm", "sgd", 0)  # all is a name, not the number it means


# ---------------------------------------------------------------------- equal time over a window
def _run(seed, times, accs, final_evals=2):
    history = [{"update": i, "sim_time": t, "loss": 1.0, "accuracy": a} for i, (t, a) in enumerate(zip(times, accs))]
    return RunResult(run="r", key=f"k{seed}", algorithm="asgd", base="sgd", seed=seed, policy="fifo",
                     config={"final_evals": final_evals}, history=history, trace={}, final_accuracy=accs[-1])


def test_accuracy_over_a_window_by_hand():
    history = [{"sim_time": t, "accuracy": a} for t, a in [(0, 0.1), (10, 0.5), (20, 0.7), (30, 0.9)]]
    assert accuracy_over(history, 10, 30) == pytest.approx(0.8)  # (10, 30]: 0.7 and 0.9
    assert accuracy_over(history, 21, 25) == 0.7  # none inside: the last at or before 25


def test_equal_time_averages_both_cells_over_the_faster_ones_final_window():
    fast = Cell([("asgd", "sgd")], {(None, 0): _run(0, [0, 10, 20], [0.1, 0.6, 0.8])})
    slow = Cell([("gsgm", "sgd")], {(None, 0): _run(0, [0, 5, 15, 25, 40], [0.1, 0.5, 0.7, 0.9, 0.95])})
    assert final_window(fast.at()) == 10.0  # its last 2 evaluations span 10..20
    horizon, window, a, b = equal_time(slow, fast)
    assert (horizon, window) == (20.0, 10.0)
    assert a == {0: 0.7} and b == {0: 0.8}  # slow: evaluations in (10, 20] are 0.7 at t=15; fast: 0.8 at 20


# ---------------------------------------------------------------------- studies
def test_share_of_gain_by_hand():
    """std full 0.01, without the part 0.02, baseline 0.04 on every seed: on the log scale the full
    gain is ln 4, the gain left is ln 2, so the part accounts for 1 - ln 2 / ln 4 = 50%."""
    seeds = range(5)
    share, low, high, n = share_of_gain({s: 0.01 for s in seeds}, {s: 0.02 for s in seeds},
                                        {s: 0.04 for s in seeds})
    assert (share, low, high, n) == (pytest.approx(0.5), pytest.approx(0.5), pytest.approx(0.5), 5)
    assert math.isnan(share_of_gain({0: 0.01}, {0: 0.02}, {0: 0.04})[0])  # one seed: no interval


def test_a_run_with_a_time_budget_stops_before_it(tmp_path):
    from scenarios.experiments.experiment import carry_out
    from scenarios.experiments.plan import Options, plan

    p = plan(Options("synthetic", seeds="1", updates="400", set=("eval_every=20", "time_budget=30"), base="sgd",
                     algorithms="asgd", jobs="1", out=str(tmp_path / "x")))
    r, = carry_out(p, log=lambda *a: None)
    assert r.history[-1]["sim_time"] <= 30.0 and r.history[-1]["update"] < 400  # the clock stopped it, not updates
    assert r.updates_replayed == r.history[-1]["update"]
