"""Tuning margins (issue 21): each cell's winner against its runner-up and the tuning noise, by hand."""

import math
from pathlib import Path

import pytest

from scenarios.cli import main
from scenarios.experiments.margins import annotated, margins, rows_of

ROOT = Path(__file__).resolve().parents[3]
HEADER = "algorithm,base,axis,axis_value,tuned_at,field,value,tuning_seed,validation_accuracy,outcome,chosen\n"


def _csv(runs) -> str:
    """runs: (algorithm, value, seed, accuracy, outcome, chosen)."""
    return HEADER + "".join(f"{a},sgd,,,k,lr_sgd,{v},{s},{acc},{o},{c}\n" for a, v, s, acc, o, c in runs)


def test_margin_and_noise_by_hand():
    text = _csv([
        ("asgd", 0.05, 1000, 0.80, "converged", True), ("asgd", 0.05, 1001, 0.82, "converged", True),
        ("asgd", 0.015, 1000, 0.79, "converged", False), ("asgd", 0.015, 1001, 0.80, "converged", False),
        ("asgd", 0.5, 1000, 0.95, "diverged", False), ("asgd", 0.5, 1001, 0.10, "failed", False),  # cannot win
        ("gsgm", 0.05, 1000, 0.90, "converged", True), ("gsgm", 0.05, 1001, 0.90, "converged", True),
        ("gsgm", 0.015, 1000, 0.80, "converged", False), ("gsgm", 0.015, 1001, 0.80, "converged", False),
    ])
    asgd, gsgm = margins(rows_of(text))
    # winner mean 0.81, runner-up 0.795: 1.5 points; pooled SD^2 = (2 * 0.01^2 + 2 * 0.005^2) / 2 = 0.000125,
    # SE = sqrt(0.000125) * sqrt(1/2 + 1/2); noise = 2 SE = 2.236 points > 1.5: within the noise
    assert asgd.cell == "asgd on sgd" and asgd.winner == "lr_sgd=0.05" and asgd.runner_up == "lr_sgd=0.015"
    assert asgd.margin == pytest.approx(1.5) and asgd.noise == pytest.approx(200 * math.sqrt(0.000125))
    assert asgd.within_noise
    assert asgd.line().endswith("by 1.50 points; noise 2.24 points (2 SE): within the tuning noise")
    # identical tuning seeds: no noise, a 10-point margin is clear
    assert gsgm.margin == pytest.approx(10.0) and gsgm.noise == 0.0 and not gsgm.within_noise
    assert gsgm.line().endswith("noise 0.00 points (2 SE)")


def test_one_tuning_seed_leaves_the_noise_unknown_and_a_lone_candidate_has_no_runner_up():
    one_seed = margins(rows_of(_csv([("asgd", 0.05, 1000, 0.8, "converged", True),
                                     ("asgd", 0.015, 1000, 0.7, "converged", False)])))[0]
    assert one_seed.noise is None and not one_seed.within_noise and "unknown (one tuning seed)" in one_seed.line()
    alone = margins(rows_of(_csv([("asgd", 0.05, 1000, 0.8, "converged", True),
                                  ("asgd", 0.5, 1000, math.nan, "diverged", False)])))[0]
    assert alone.runner_up is None and alone.line().endswith("lr_sgd=0.05 was the only candidate that could win")


def test_annotated_replaces_its_own_lines_and_keeps_the_rest_byte_for_byte():
    text = "# tuned_at k: {}\n" + _csv([("asgd", 0.05, 1000, 0.8, "converged", True),
                                      ("asgd", 0.015, 1000, 0.7, "converged", False)]).replace("\n", "\r\n")
    once = annotated(text)
    assert once.startswith(text) and once.count("# margin ") == 1
    assert annotated(once) == once


def test_every_committed_tuning_file_ends_with_its_margins():
    files = sorted((ROOT / "docs" / "claims-data").glob("*/tuning.csv")) + sorted((ROOT / "scenarios" / "tuned").glob("*.csv"))
    assert files
    for path in files:
        text = path.read_bytes().decode()
        assert "# margin " in text and annotated(text) == text, path


def test_tuning_writes_the_margins(tmp_path):
    out = tmp_path / "t"
    assert main(["run", "synthetic", "--seeds", "1", "--updates", "40", "--set", "eval_every=20", "--base", "sgd",
                 "--algorithms", "asgd", "--tune", "lr=x0.1,x1", "--tuning-seeds", "2", "--out", str(out)]) == 0
    lines = [line for line in (out / "tuning.csv").read_text().splitlines() if line.startswith("# margin ")]
    assert len(lines) == 1 and lines[0].startswith("# margin asgd on sgd: lr_sgd=")
