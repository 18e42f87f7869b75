"""Successive halving over the tuning grid: its parsing, its rule on hand-made scores, the rung as an exact prefix, and --tune --halving end to end."""

import csv
import io
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest

from scenarios.cli import main
from scenarios.experiments import execute as execute_module
from scenarios.errors import ConfigError
from scenarios.experiments.halving import Halving, parse_halving
from scenarios.experiments.results import load_result
from scenarios.experiments.tuning import choose

SMALL = ["--seeds", "1", "--updates", "120", "--set", "eval_every=20", "--base", "sgd", "--algorithms", "asgd"]
GRID = "lr=x0.1,x0.3,x1,x3,x10"


def test_parse_halving():
    assert parse_halving("3@1/6") == Halving(3, Fraction(1, 6))
    assert parse_halving(" 2@0.5 ") == Halving(2, Fraction(1, 2))
    assert str(parse_halving("3@1/6")) == "3@1/6"
    assert parse_halving(None) is None and parse_halving("off") is None
    for bad in ("3", "0@1/6", "3@0", "3@1", "3@7/6", "x@1/6", "3@1/0", "3@"):
        with pytest.raises(ConfigError, match="--halving: expected KEEP@FRACTION"):
            parse_halving(bad)


def _r(accuracy, diverged=False):
    return SimpleNamespace(final_accuracy=None if diverged else accuracy, diverged=diverged)


def test_survivors_by_hand():
    a, b, c, d, e = ((("lr_sgd", v),) for v in (0.1, 0.2, 0.3, 0.4, 0.5))
    entries = [(a, _r(0.50)), (a, _r(0.60)),   # mean 0.55
               (b, _r(0.70)), (b, _r(0.80)),   # mean 0.75: best
               (c, _r(0.90)), (c, _r(0.0, diverged=True)),  # a non-finite rung run: dropped, whatever its other seed
               (d, _r(0.55)), (d, _r(0.55)),   # mean 0.55: ties with a, which comes first in grid order
               (e, _r(0.10)), (e, _r(0.20))]
    assert Halving(2, Fraction(1, 6)).survivors(entries) == [a, b]
    assert Halving(3, Fraction(1, 6)).survivors(entries) == [a, b, d]  # grid order, not rank order
    assert Halving(9, Fraction(1, 6)).survivors(entries) == [a, b, d, e]  # never a diverged one


def test_a_rung_run_is_the_full_run_cut_at_the_rung(tmp_path):
    full, short = tmp_path / "full", tmp_path / "short"
    assert main(["run", "synthetic", *SMALL, "--out", str(full)]) == 0
    assert main(["run", "synthetic", *SMALL, "--updates", "40", "--out", str(short)]) == 0
    long_run = load_result(next(full.glob("runs/*/result.json")))
    cut = load_result(next(short.glob("runs/*/result.json")))
    assert cut.history == [e for e in long_run.history if e["update"] <= 40] and len(cut.history) >= 2


def _rows(out):
    text = (out / "tuning.csv").read_text()
    return text, list(csv.DictReader(io.StringIO("".join(l + "\n" for l in text.splitlines() if not l.startswith("#")))))


def test_tune_with_halving_keeps_what_the_rung_ranks_best_and_chooses_among_them(tmp_path, capsys, monkeypatch):
    grid_out, halved_out = tmp_path / "grid", tmp_path / "halved"
    with monkeypatch.context() as m:  # the oracle's tuning runs evaluated at every point, to be cut at the rung
        m.setattr(execute_module, "evaluate_last", lambda run: None)
        assert main(["run", "synthetic", *SMALL, "--tune", GRID, "--out", str(grid_out)]) == 0
    assert main(["run", "synthetic", *SMALL, "--tune", GRID, "--halving", "2@1/3", "--out", str(halved_out)]) == 0
    # the oracle, from the full grid's runs: each candidate's score at update 40, as the rung scores it
    full = {}
    for path in grid_out.glob("runs/tune-*/result.json"):
        r = load_result(path)
        seen = [e for e in r.history if e["update"] <= 40][-int(r.config["final_evals"]):]
        full.setdefault(tuple(sorted(r.tuned.items())), []).append(
            (_r(float(np.mean([e["accuracy"] for e in seen]))), r))
    order = sorted(full)  # lr ascending is the grid's order here
    expected = Halving(2, Fraction(1, 3)).survivors([(cand, rung) for cand in order for rung, _ in full[cand]])
    text, rows = _rows(halved_out)
    assert {float(row["value"]) for row in rows} == {dict(cand)["lr_sgd"] for cand in expected}
    assert sum(line.startswith("# halving 2@1/3 asgd on sgd, rung at 40 updates") for line in text.splitlines()) == 1
    winner = choose([(cand, r) for cand in expected for _, r in full[cand]])
    chosen = {float(row["value"]) for row in rows if row["chosen"] == "True"}
    assert chosen == {dict(winner)["lr_sgd"]}
    # the reported run is the same run the full grid reports when both choose the same rate
    _, grid_rows = _rows(grid_out)
    if chosen == {float(row["value"]) for row in grid_rows if row["chosen"] == "True"}:
        same = [load_result(next((o / "runs").glob("asgd-*/result.json"))) for o in (grid_out, halved_out)]
        assert same[0].history == same[1].history
    # halving needs a grid to cut
    capsys.readouterr()
    assert main(["run", "synthetic", *SMALL, "--halving", "2@1/3", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--halving: only with --tune" in err[0]
