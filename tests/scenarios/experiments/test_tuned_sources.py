"""Where each tuned field's value comes from: the user's choice wins, shipped values apply only
at the configuration they were tuned at, and every table and result says which it was."""

import json
from dataclasses import replace

import pytest

from scenarios.experiments import catalogue
from scenarios.experiments.catalogue import EXPERIMENTS, expand
from scenarios.cli import main
from scenarios.errors import ConfigError
from scenarios.workloads.data import available
from scenarios.experiments.origins import LEARNING_RATES, read_shipped, resolve, tuned_at_key
from scenarios.experiments.tuning import TUNING_COLUMNS, choose

FMNIST = EXPERIMENTS["fmnist"]
needs_fmnist = pytest.mark.skipif(not available("fmnist"), reason="Fashion-MNIST is not installed")
quiet = dict(log=lambda *_: None)


def _shipped_rows(config, rows) -> str:
    """A tuning file tuned at ``config``: rows (algorithm, base, field, value, chosen)."""
    key = tuned_at_key(config)
    lines = [f"# tuned_at {key}: {json.dumps(config.to_dict(), sort_keys=True)}", ",".join(TUNING_COLUMNS)]
    lines += [f"{a},{b},,,{key},{field},{value},1000,0.8,converged,{chosen}" for a, b, field, value, chosen in rows]
    return "\n".join(lines) + "\n"


def test_shipped_values_apply_at_the_configuration_they_were_tuned_at():
    runs = expand(FMNIST, FMNIST.config, ["asgd", "gsgm"], ["sgd", "momentum"], 1)
    out = resolve(runs, shipped=FMNIST.shipped_tuning, **quiet)
    table = read_shipped(FMNIST.shipped_tuning)
    for run in out:
        (origin,) = run.origins
        assert origin.field == f"lr_{run.base}" and origin.source == "shipped"
        assert origin.tuned_at == FMNIST.config  # the experiment's own configuration, learning rates aside
        assert getattr(run.config, origin.field) == table.value(run, origin.field)
        assert dict(run.tuned) == {origin.field: getattr(run.config, origin.field)}
    assert {r.config.lr_sgd for r in out if r.base == "sgd"} == {0.015}  # what the README table says


@pytest.mark.parametrize("change", [{"workers": 30}, {"updates": 1500}, {"spread": 2.0}, {"gsgm_k": 2},
                                    {"partition": "iid"}])
def test_no_shipped_value_for_another_configuration(change):
    """fmnist's shipped rates were tuned at 10 workers and 6,000 updates: none applies elsewhere."""
    config = FMNIST.config.with_overrides(change)
    lines = []
    out = resolve(expand(FMNIST, config, ["asgd", "gsgm"], ["sgd"], 1), shipped=FMNIST.shipped_tuning,
                  explicit=frozenset(change), log=lines.append)
    assert all(r.config.lr_sgd == FMNIST.config.lr_sgd and r.tuned == () for r in out)
    assert all(o.source == "configured" for r in out for o in r.origins)
    (note,) = lines
    field = next(iter(change))
    assert "lr_sgd=0.05" in note and "not tuned for this configuration" in note and "--tune" in note
    assert f"{field} " in note  # names the field that differs from where the values were tuned


def test_the_users_value_is_never_replaced():
    config = FMNIST.config.with_overrides({"lr_sgd": "0.5"})
    lines = []
    out = resolve(expand(FMNIST, config, ["asgd"], ["sgd", "momentum"], 1), shipped=FMNIST.shipped_tuning,
                  explicit=frozenset({"lr_sgd"}), log=lines.append)
    sgd, momentum = out
    assert sgd.config.lr_sgd == 0.5 and sgd.origins[0].source == "user" and sgd.tuned == ()
    # lr_sgd is no field of a momentum cell: its shipped rate, tuned at this configuration, applies
    assert momentum.origins[0].source == "shipped" and momentum.config.lr_momentum == 0.0005
    assert any(line.startswith("lr_sgd: yours (0.5), kept") for line in lines)


def test_no_shipped_file_says_which_rates_run():
    lines = []
    synthetic = EXPERIMENTS["synthetic"]
    out = resolve(expand(synthetic, synthetic.config, ["asgd"], ["sgd"], 1), log=lines.append)
    assert out[0].origins[0].source == "configured"
    assert lines == ["note: running at the configured lr_sgd=0.1, not tuned for this configuration: no tuned "
                     "values are shipped for this experiment; --tune default (or --tune lr=x0.1,x1,x10) tunes them "
                     "here"]


def test_a_shipped_file_without_its_configuration_is_refused(tmp_path):
    path = tmp_path / "old.csv"
    path.write_text(",".join(c for c in TUNING_COLUMNS if c != "tuned_at") + "\n"
                    "asgd,sgd,,,lr_sgd,0.01,1000,0.8,converged,True\n")
    with pytest.raises(ConfigError, match="no '# tuned_at KEY: CONFIG' lines"):
        read_shipped(path)
    edited = tmp_path / "edited.csv"
    edited.write_text(_shipped_rows(FMNIST.config, [("asgd", "sgd", "lr_sgd", 0.01, True)])
                      .replace('"workers": 10', '"workers": 11'))
    with pytest.raises(ConfigError, match="does not match its configuration's hash"):
        read_shipped(edited)


def test_the_key_ignores_only_learning_rates():
    config = FMNIST.config
    assert tuned_at_key(replace(config, lr_sgd=1.0, lr_adam=2.0)) == tuned_at_key(config)
    assert tuned_at_key(replace(config, momentum=0.5)) != tuned_at_key(config)
    assert set(LEARNING_RATES) == {"lr_sgd", "lr_momentum", "lr_adam"}


TINY = ["--seeds", "1", "--updates", "40", "--set", "eval_every=20", "--algorithms", "asgd,gsgm", "--base", "sgd",
        "--jobs", "1"]


@needs_fmnist
def test_set_on_a_tuned_field_runs_at_it(tmp_path, capsys):
    """The issue's command: --set lr_sgd=0.5 at 30 workers runs at 0.5 and says so."""
    assert main(["run", "fmnist", "--workers", "30", "--set", "lr_sgd=0.5", "--out", str(tmp_path), *TINY]) == 0
    out = capsys.readouterr().out
    assert "sgd lr 0.5 (yours)" in out and "0.015" not in out
    for path in (tmp_path / "runs").glob("*/result.json"):
        result = json.loads(path.read_text())
        assert result["config"]["lr_sgd"] == 0.5 and result["provenance"]["invocation"]["overrides"]["lr_sgd"] == "0.5"
        assert result["hyperparameters"] == {"lr_sgd": {"value": 0.5, "source": "user"}}


@needs_fmnist
def test_report_redraws_a_folder_run_at_shipped_values(tmp_path, monkeypatch, capsys):
    """reproduce with shipped tuned values, then report: the same table, bit for bit."""
    config = FMNIST.config.with_overrides({"updates": 40, "eval_every": 20})
    shipped = tmp_path / "tuned"
    shipped.mkdir()
    (shipped / "fmnist.csv").write_text(_shipped_rows(config, [
        ("asgd", "sgd", "lr_sgd", 0.01, True), ("asgd", "sgd", "lr_sgd", 0.1, False),
        ("gsgm", "sgd", "lr_sgd", 0.02, True)]))
    monkeypatch.setattr(catalogue, "TUNED", shipped)
    out = tmp_path / "fmnist"
    assert main(["reproduce", "fmnist", "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "using the tuned values shipped in" in printed
    table = (out / "table.md").read_text()
    # ASGD won at the lower end of its two candidates: the table says so; GSGM had one candidate
    assert "| ASGD | sgd | sgd lr 0.01 (grid edge) |" in table and "| GSGM | sgd | sgd lr 0.02 |" in table
    manifest = json.loads((out / "experiment.json").read_text())
    assert sorted(manifest["runs"]) == sorted(p.name for p in (out / "runs").iterdir())
    result = json.loads(next((out / "runs").glob("asgd-*/result.json")).read_text())
    assert result["hyperparameters"]["lr_sgd"]["source"] == "shipped"
    assert result["hyperparameters"]["lr_sgd"]["tuned_at"]["config"] == json.loads(json.dumps(config.to_dict()))
    (out / "table.md").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "table.md").read_text() == table


@needs_fmnist
def test_dry_run_skips_finished_runs_and_names_each_shape(tmp_path, capsys):
    argv = ["run", "fmnist", "--out", str(tmp_path), *TINY]
    assert main(argv) == 0
    capsys.readouterr()
    assert main([*argv, "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "already finished" in printed and "nothing to do" in printed and "calibration" not in printed
    assert main([*argv, "--workers", "20", "--out", str(tmp_path / "other"), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "calibration asgd-sgd (fmnist mlp, 20 workers, batch 64): " in printed and " s per evaluation (test)" in printed
    assert "learning rates: asgd on sgd: lr_sgd=0.05 (configured)" in printed


@pytest.mark.parametrize("argv, line", [
    (["--tune", "lr=x0.1,abc"], "--tune lr: must be a finite number > 0, got 'abc'"),
    (["--tune", "lr=x0"], "--tune lr: a factor must be a finite number > 0, got 'x0'"),
    (["--tune", "momentum=0.5,2"], "--tune momentum: must be a finite number in [0, 1), got 2.0"),
    (["--algorithms", ","], "--algorithms: give at least one of asgd, asgd-server"),
    (["--base", ""], "--base: give at least one of sgd, momentum, adam"),
])
def test_bad_tune_and_empty_lists_name_their_field(argv, line, capsys):
    assert main(["run", "synthetic", "--dry-run", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and line in err[0]


class _Tuned:
    """A tuning run's result, as choose reads it."""

    def __init__(self, final_accuracy, outcome="converged"):
        self.final_accuracy, self.outcome = final_accuracy, outcome


def test_choose_takes_the_best_mean_over_tuning_seeds():
    a, b, c = (("lr_sgd", 0.01),), (("lr_sgd", 0.1),), (("lr_sgd", 1.0),)
    entries = [(a, _Tuned(0.80)), (a, _Tuned(0.84)),  # mean 0.82
               (b, _Tuned(0.90)), (b, _Tuned(0.70)),  # mean 0.80: the best single seed does not win
               (c, _Tuned(0.81)), (c, _Tuned(0.81))]
    assert choose(entries) == a


def test_choose_never_picks_a_candidate_that_diverged_on_any_seed():
    a, b = (("lr_sgd", 0.01),), (("lr_sgd", 0.1),)
    entries = [(a, _Tuned(0.70)), (a, _Tuned(0.70)), (b, _Tuned(0.95)), (b, _Tuned(None, "diverged"))]
    assert choose(entries) == a
    assert choose([(b, _Tuned(0.95)), (b, _Tuned(None, "diverged"))]) is None  # every candidate diverged: None


def test_choose_lets_a_failed_run_compete_on_its_accuracy():
    """A run that learned but missed the target still scores its accuracy: the best rate the
    grid has is what the protocol reports (a blow-up is "diverged" and is excluded)."""
    a, b = (("lr_sgd", 0.01),), (("lr_sgd", 0.1),)
    assert choose([(a, _Tuned(0.60, "failed")), (a, _Tuned(0.64, "failed")), (b, _Tuned(0.5)), (b, _Tuned(0.5))]) == a


def test_choose_breaks_ties_by_grid_order():
    a, b = (("lr_sgd", 0.01),), (("lr_sgd", 0.1),)
    assert choose([(a, _Tuned(0.8)), (b, _Tuned(0.8))]) == a
    assert choose([(b, _Tuned(0.8)), (a, _Tuned(0.8))]) == b


def test_tuning_runs_evaluate_where_selection_reads_and_record_the_same_numbers(tmp_path, monkeypatch):
    """A tuning run is evaluated at the start and at its last final_evals points (a reported
    run at every point); those are the numbers a run evaluated everywhere records, so its
    score, label and the choice are the same."""
    from scenarios.experiments import execute as execute_module
    from scenarios.experiments.results import load_result

    out = tmp_path / "t"
    assert main(["run", "synthetic", "--seeds", "1", "--updates", "100", "--set", "eval_every=10", "--base", "sgd",
                 "--algorithms", "asgd", "--tune", "lr=x0.1,x1", "--tuning-seeds", "1", "--out", str(out)]) == 0
    results = [load_result(p) for p in sorted(out.glob("runs/*/result.json"))]
    tuning = [r for r in results if r.split == "validation"]
    reported = [r for r in results if r.split == "test"]
    assert len(tuning) == 2 and len(reported) == 1
    assert [len(r.history) for r in reported] == [11]
    assert all(r.config["final_evals"] == 3 for r in results)  # synthetic's
    assert all([e["update"] for e in r.history] == [0, 80, 90, 100] for r in tuning)

    monkeypatch.setattr(execute_module, "evaluate_last", lambda run: None)  # evaluated at every point
    assert main(["run", "synthetic", "--seeds", "1", "--updates", "100", "--set", "eval_every=10", "--base", "sgd",
                 "--algorithms", "asgd", "--tune", "lr=x0.1,x1", "--tuning-seeds", "1", "--out", str(tmp_path / "f")]) == 0
    full = {r.key: r for r in (load_result(p) for p in sorted((tmp_path / "f").glob("runs/*/result.json")))}
    for r in tuning:
        everywhere = full[r.key]
        assert len(everywhere.history) == 11
        assert r.history == everywhere.history[:1] + everywhere.history[-3:]
        assert (r.final_accuracy, r.outcome) == (everywhere.final_accuracy, everywhere.outcome)
        assert r.accuracy_std is None and r.detrended_std is None  # its stability is not measured
    assert all(r.accuracy_std is not None and r.detrended_std is not None for r in reported)
    assert (out / "tuning.csv").read_text() == (tmp_path / "f" / "tuning.csv").read_text()
