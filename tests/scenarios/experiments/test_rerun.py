"""claims --rerun (issue 22): a run that several experiments share is carried out once and reused by key."""

import json

import pytest

from scenarios.cli import main
from scenarios.errors import ConfigError
from scenarios.experiments import rerun
from scenarios.experiments.experiment import carry_out
from scenarios.experiments.plan import Options, plan
from scenarios.experiments.workers import watch_parent
from scenarios.experiments.results import collect

SMALL = dict(seeds="2", updates="40", set=("eval_every=20",), base="sgd", algorithms="asgd,gsgm", jobs="1")


def test_a_shared_run_is_carried_out_once_and_relabelled_for_the_experiment_that_reuses_it(tmp_path, capsys):
    first = plan(Options("synthetic", out=str(tmp_path / "a"), **SMALL))
    carry_out(first)
    # the same request into another folder: every run is found in the first by its key
    second = plan(Options("synthetic", out=str(tmp_path / "b"), **SMALL))
    capsys.readouterr()
    results = carry_out(second, reuse=(first.out,))
    assert "4 runs, 4 already finished, 0 to do" in capsys.readouterr().out
    by_key = {r.key: r for r in collect(first.out)}
    for r in results:
        original = by_key[r.key]
        assert r.history == original.history and r.trace == original.trace  # the same numbers, not run again
        assert r.provenance["reused_from"].endswith(f"runs/{original.dirname}")
    # a run with another key is not taken
    third = plan(Options("synthetic", out=str(tmp_path / "c"), **{**SMALL, "seeds": "3"}))
    capsys.readouterr()
    carry_out(third, reuse=(first.out,))
    assert "6 runs, 4 already finished, 2 to do" in capsys.readouterr().out


def test_claims_rerun_needs_out_and_dry_run_needs_rerun(tmp_path, capsys):
    assert main(["claims", "--rerun"]) == 2
    assert "--rerun: give --out DIR" in capsys.readouterr().err
    assert main(["claims", "--dry-run", "--results", str(tmp_path)]) == 2
    assert "--dry-run: only with --rerun" in capsys.readouterr().err


def test_reused_result_file_is_this_experiments_own(tmp_path):
    first = plan(Options("synthetic", out=str(tmp_path / "a"), **SMALL))
    carry_out(first)
    second = plan(Options("synthetic", out=str(tmp_path / "b"), **SMALL))
    carry_out(second, reuse=(first.out,))
    for path in (tmp_path / "b" / "runs").glob("*/result.json"):
        obj = json.loads(path.read_text())
        assert path.parent.name.startswith(obj["run"]) and "reused_from" in obj["provenance"]


def test_parts_are_named_from_the_protocol_and_kept_in_its_order():
    assert rerun.parts_from("") == rerun.PARTS
    assert rerun.parts_from("sweep-stability, scale,noniid") == ("noniid", "scale", "sweep-stability")
    with pytest.raises(ConfigError, match=r"^--parts: bogus is not a part; allowed: fmnist, noniid, scale, "):
        rerun.parts_from("scale,bogus")


def test_parts_only_with_rerun(tmp_path, capsys):
    assert main(["claims", "--parts", "scale", "--results", str(tmp_path)]) == 2
    assert "--parts: only with --rerun" in capsys.readouterr().err


def test_a_pool_worker_exits_when_its_parent_is_gone():
    """workers.watch_parent: a worker whose command was killed (its parent pid changed) exits at once."""
    parents = iter([41, 41, 1])
    exits = []

    def exit_now(code):
        exits.append(code)
    watch_parent(41, getppid=lambda: next(parents), exit_now=exit_now, interval=0.0)
    assert exits == [1]


def test_a_part_reuses_every_other_experiment_folder_in_dir(tmp_path):
    for name in ("fmnist", "sweep-stability", "sweep-stability-2-seeds"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "experiment.json").write_text("{}")
    (tmp_path / "notes").mkdir()  # no experiment.json: not an experiment
    assert rerun.experiment_folders(tmp_path, but=tmp_path / "sweep-stability") == (
        tmp_path / "fmnist", tmp_path / "sweep-stability-2-seeds")
    assert rerun.experiment_folders(tmp_path / "absent", but=tmp_path) == ()
