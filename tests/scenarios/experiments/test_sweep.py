"""Sweeps: expansion, validation, trace reuse, resumption, and local == Ray."""

import csv
import io

import pytest

from scenarios.cli import main
from scenarios.errors import ConfigError
from scenarios.experiments.sweep import load_sweep, run_sweep
from scenarios.reports.sweeps import tidy_csv, tidy_rows, write_sweep_report

MINI = """
name = "mini"
experiment = "synthetic"
algorithms = ["asgd", "gsgm"]
bases = ["sgd"]
seeds = 1
target_accuracy = 0.5
[set]
updates = 40
eval_every = 20
[axes]
workers = [4, 6]
"""


@pytest.fixture
def mini(tmp_path):
    path = tmp_path / "mini.toml"
    path.write_text(MINI)
    return path


def test_expansion_and_shipped_sweep(mini):
    sweep = load_sweep(str(mini))
    runs = sweep.runs()
    assert len(runs) == 4 and sorted({r.config.workers for r in runs}) == [4, 6]
    shipped = load_sweep("staleness")
    assert len(shipped.runs()) == 3 * 2 * 3 * 2


@pytest.mark.parametrize("text, field", [
    ("experiment = 'nope'", "experiment"),
    ("[axes]\nworkrs = [1, 2]", "workrs"),
    ("[axes]\nworkers = []", "axes.workers"),
    ("[axes]\nworkers = [0, 2]", "workers"),
    ("algorithms = ['hogwild']", "algorithms"),
    ("seeds = 0", "seeds"),
    ("colour = 'blue'", "colour"),
    ("this is not toml", "TOML"),
    ("methods = [['gsgm', 'nesterov']]", "methods"),
    ("methods = [['hogwild', 'sgd']]", "methods"),
    ("methods = ['gsgm']", "methods"),
    ("methods = []", "methods"),
    ("methods = [['gsgm', 'sgd'], ['gsgm', 'sgd']]", "methods"),
    ("methods = [['gsgm', 'sgd']]\nbases = ['sgd']", "methods"),
])
def test_bad_sweep_files(tmp_path, text, field):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=field):
        load_sweep(str(path))


def test_methods_and_a_learning_rate_axis_per_base(tmp_path):
    path = tmp_path / "pairs.toml"
    path.write_text(MINI.replace('algorithms = ["asgd", "gsgm"]\nbases = ["sgd"]\n',
                                 'methods = [["gsgm", "sgd"], ["asgd-server", "momentum"]]\n')
                    + "lr_sgd = [0.1, 0.3]\nlr_momentum = [0.01, 0.03]\n")
    sweep = load_sweep(str(path))
    assert sweep.algorithms == ("gsgm", "asgd-server") and sweep.bases == ("sgd", "momentum")
    runs = sweep.runs()
    configured = sweep.config
    # each method goes along its own base's rate only: 2 workers x 2 rates x 1 seed per method
    assert sorted((r.algorithm, r.base, r.config.workers, r.config.lr_sgd, r.config.lr_momentum) for r in runs) == sorted(
        [("gsgm", "sgd", w, lr, configured.lr_momentum) for w in (4, 6) for lr in (0.1, 0.3)]
        + [("asgd-server", "momentum", w, configured.lr_sgd, lr) for w in (4, 6) for lr in (0.01, 0.03)])
    assert len({r.key for r in runs}) == len(runs) == 8
    assert sweep.identity["methods"] == [["gsgm", "sgd"], ["asgd-server", "momentum"]]
    # without methods, the identity is what it was (folders made before methods existed still match)
    plain = tmp_path / "plain.toml"
    plain.write_text(MINI)
    assert "methods" not in load_sweep(str(plain)).identity and load_sweep(str(plain)).methods == ()


def test_local_sweep_reuses_traces_resumes_and_reports(mini, tmp_path):
    out = tmp_path / "out"
    sweep = load_sweep(str(mini))
    results = run_sweep(sweep, out, backend="local", jobs=1, log=lambda *_: None)
    assert len(results) == 4
    # asgd and gsgm use different policies; each (workers, policy, seed) trace is simulated once
    assert len(list((out / "traces").glob("*.npz"))) == 4
    lines = []
    again = run_sweep(sweep, out, backend="local", jobs=1, log=lines.append)
    assert any("4 already finished, 0 to do" in line for line in lines)
    assert [r.key for r in again] == [r.key for r in results]
    rows = list(csv.DictReader(io.StringIO(tidy_csv(tidy_rows(results, sweep)))))
    assert len(rows) == 4 and {"workers", "algorithm", "mean_staleness", "accuracy_std", "time_to_target"} <= set(
        rows[0])
    assert {(r["learning_rate"], r["learning_rate_source"]) for r in rows} == {("0.1", "configured")}
    summary = write_sweep_report(results, sweep, out)
    assert "What the data shows" in summary and (out / "plots" / "stability_vs_staleness.png").is_file()
    assert "Learning rates: sgd 0.1 (configured); not tuned for these cluster shapes" in summary


def test_a_sweep_keeps_the_rates_it_sets(mini, tmp_path):
    """A rate the sweep file sets (or varies) is the user's: recorded as such, never replaced."""
    mini.write_text(MINI.replace("eval_every = 20", "eval_every = 20\nlr_sgd = 0.3").replace("[4, 6]", "[4]"))
    sweep = load_sweep(str(mini))
    results = run_sweep(sweep, tmp_path / "out", backend="local", jobs=1, log=lambda *_: None)
    assert {(r.config["lr_sgd"], r.hyperparameters["lr_sgd"]["source"]) for r in results} == {(0.3, "user")}
    summary = write_sweep_report(results, sweep, tmp_path / "out")
    assert "Learning rates: sgd 0.3 (user); not tuned" in summary


def test_sweep_command_and_backends_give_identical_tables(mini, tmp_path, capsys):
    pytest.importorskip("ray")
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert main(["sweep", str(mini), "--out", str(local), "--jobs", "2"]) == 0
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert main(["sweep", str(mini), "--out", str(remote), "--backend", "ray"]) == 0
    finally:
        ray.shutdown()
    assert (local / "runs.csv").read_text() == (remote / "runs.csv").read_text()
    assert "What the data shows" in capsys.readouterr().out


def test_sweep_bad_backend(mini, capsys):
    assert main(["sweep", str(mini), "--backend", "slurm"]) == 2
    assert "--backend" in capsys.readouterr().err


def test_a_sweep_folder_is_claimed_by_what_the_file_asks_not_where_it_lies(mini, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["sweep", str(mini), "--out", str(out)]) == 0
    moved = tmp_path / "elsewhere" / "mini.toml"
    moved.parent.mkdir()
    moved.write_text(MINI)
    assert load_sweep(str(moved)).identity == load_sweep(str(mini)).identity
    capsys.readouterr()
    assert main(["sweep", str(moved), "--out", str(out)]) == 0  # the same sweep from another copy resumes
    assert "done before, kept" in capsys.readouterr().out
    more = tmp_path / "more.toml"
    more.write_text(MINI.replace("seeds = 1", "seeds = 2"))
    manifest = (out / "experiment.json").read_text()
    for dry in ([], ["--dry-run"]):  # refused before any work, with or without --dry-run
        assert main(["sweep", str(more), "--out", str(out), *dry]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "holds a different experiment" in err[0]
    assert (out / "experiment.json").read_text() == manifest
