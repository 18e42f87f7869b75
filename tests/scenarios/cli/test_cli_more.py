"""More bad input (sweep files, output folders, --jobs), honest small samples, --dry-run, provenance."""

import json

import pytest

from scenarios.cli import main
from scenarios.experiments.results import RunResult
from scenarios.reports.stats import censored_times, estimate

TINY = ["--seeds", "1", "--updates", "40", "--set", "eval_every=20", "--base", "sgd", "--algorithms", "asgd"]


def _one_error_line(capsys, needle):
    err = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert len(err) == 1 and err[0].startswith("stalesim: error:") and needle in err[0], err
    return err[0]


SWEEPS = {
    "unknown axis field": ('experiment = "synthetic"\n[axes]\nnope = [1, 2]\n', "axes.nope"),
    "empty axis": ('experiment = "synthetic"\n[axes]\nworkers = []\n', "axes.workers"),
    "wrong type": ('experiment = "synthetic"\n[axes]\nworkers = ["many"]\n', "workers"),
    "missing base experiment": ('experiment = "nosuch"\n[axes]\nworkers = [2]\n', "experiment"),
    "bad tune": ('experiment = "synthetic"\n[tune]\nlr = ["fast"]\n', "tune"),
    "not toml": ('experiment = \n', "TOML"),
}


@pytest.mark.parametrize("name", SWEEPS)
def test_bad_sweep_files(name, tmp_path, capsys):
    text, needle = SWEEPS[name]
    path = tmp_path / "s.toml"
    path.write_text(text)
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out)]) == 2
    _one_error_line(capsys, needle)
    assert not out.exists()


def test_jobs_zero_and_bad_tune(tmp_path, capsys):
    assert main(["run", "synthetic", *TINY, "--jobs", "0", "--out", str(tmp_path / "a")]) == 2
    _one_error_line(capsys, "--jobs")
    assert main(["run", "synthetic", *TINY, "--tune", "lr=x0", "--out", str(tmp_path / "b")]) == 2
    _one_error_line(capsys, "--tune")
    assert main(["run", "synthetic", *TINY, "--tune", "nosuch=1,2", "--out", str(tmp_path / "c")]) == 2
    _one_error_line(capsys, "--tune")
    assert not any(tmp_path.iterdir())


def test_unwritable_out_and_report_on_empty_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["run", "synthetic", *TINY, "--out", str(blocker)]) == 2
    _one_error_line(capsys, "--out")
    assert blocker.read_text() == "not a folder"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty)]) == 2
    _one_error_line(capsys, "dir")


def test_one_folder_one_experiment_and_corrupt_results(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "synthetic", *TINY, "--out", str(out)]) == 0
    manifest = (out / "experiment.json").read_text()
    capsys.readouterr()
    # another experiment into the same folder is refused, and nothing is replaced
    assert main(["run", "synthetic", *TINY, "--workers", "5", "--out", str(out)]) == 2
    _one_error_line(capsys, "holds a different experiment")
    assert (out / "experiment.json").read_text() == manifest
    # the same experiment resumes
    assert main(["run", "synthetic", *TINY, "--out", str(out)]) == 0
    assert "done before, kept" in capsys.readouterr().out
    # a corrupt result.json is reported, not silently overwritten
    result = next(out.glob("runs/*/result.json"))
    result.write_text("{ not json")
    assert main(["run", "synthetic", *TINY, "--out", str(out)]) == 2
    _one_error_line(capsys, "unreadable")
    assert result.read_text() == "{ not json"
    # --force recomputes
    assert main(["run", "synthetic", *TINY, "--out", str(out), "--force"]) == 0
    json.loads(result.read_text())


def test_a_second_command_on_a_locked_folder_is_refused(tmp_path, capsys):
    from scenarios.experiments.lock import FolderLock

    out = tmp_path / "out"
    with FolderLock(out):
        assert main(["run", "synthetic", *TINY, "--out", str(out)]) == 2
        _one_error_line(capsys, "another stalesim command")


def test_result_json_records_provenance_and_outcome(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "synthetic", *TINY, "--set", "lr_sgd=0.05", "--out", str(out)]) == 0
    r = json.loads(next(out.glob("runs/*/result.json")).read_text())
    assert r["outcome"] in ("converged", "failed", "diverged")
    for key in ("python", "jax", "jaxlib", "numpy", "simpy", "optax", "stalesim", "git_commit"):
        assert key in r["versions"]
    assert r["provenance"]["data"]["dataset"] == "synthetic"
    assert {"platform", "jax_device"} <= set(r["provenance"]["machine"])
    assert r["provenance"]["invocation"]["overrides"] == {"eval_every": "20", "lr_sgd": "0.05"}


def test_chance_level_run_is_failed(tmp_path, capsys):
    """A finite run that does not learn (learning rate far too large) is 'failed', not 'converged'."""
    out = tmp_path / "out"
    assert main(["run", "synthetic", *TINY, "--set", "lr_sgd=1000", "--out", str(out)]) == 0
    r = json.loads(next(out.glob("runs/*/result.json")).read_text())
    assert r["outcome"] in ("failed", "diverged")


def test_dry_run_runs_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["reproduce", "synthetic", "--tune", "lr=x0.1,x1", "--dry-run", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "12 reported runs" in text and "24 tuning runs" in text and "estimated wall time" in text
    assert not out.exists()


def test_small_samples_are_honest():
    assert estimate([0.5]).format() == "50.0 ± —"
    assert estimate([]).format() == "—"
    assert estimate([0.5, 0.7]).half_width == pytest.approx(12.706 * 0.1414213562 / 2 ** 0.5, rel=1e-4)
    # censored: a median only when at least half reached the target
    assert censored_times([10.0, None, None], [50.0, 60.0, 70.0]).format() == "> 70 s (1/3)"
    assert censored_times([10.0, 20.0, None], [50.0, 60.0, 70.0]).format() == "20 s (2/3)"
    assert censored_times([10.0, None], [50.0, 60.0]).format() == "> 60 s (1/2)"


def test_old_result_json_is_migrated():
    old = {"run": "dcasgd-sgd-s0", "key": "k", "algorithm": "dcasgd", "base": "sgd", "seed": 0, "policy": "fifo",
           "config": {}, "history": [], "trace": {}, "diverged": True, "final_accuracy": None}
    r = RunResult.from_json(old)
    assert r.algorithm == "dcasgd-a" and r.outcome == "diverged"


def test_dry_run_estimate_adds_compilation_per_group_and_time_per_update():
    from dataclasses import replace

    from scenarios.experiments.catalogue import EXPERIMENTS, grid
    from scenarios.experiments.estimate import Calibration, calibrate, cost_key, evaluation_key, evaluations
    from scenarios.experiments.pool import compile_groups

    cfg = EXPERIMENTS["synthetic"].config.validate()
    runs = grid([replace(cfg, updates=100, eval_every=30).validate(),
                 replace(cfg, updates=100, eval_every=30, lr_sgd=0.2).validate()],
                ["asgd", "gsgm"], ["sgd"], 3)  # 2 compile groups of 6 runs (the rate is not compiled in), 2 kinds
    keys = {cost_key(r) for r in runs}
    assert len(keys) == 2  # the learning rate and the seed do not change the cost
    assert {evaluation_key(r) for r in runs} == {("synthetic", cfg.model, "test", cfg.eval_samples)}
    assert evaluations(runs[0]) == 5  # at 0, 30, 60, 90 and the end, 100
    tuning = replace(runs[0], split="validation", config=replace(runs[0].config, updates=300, final_evals=3))
    assert evaluations(tuning) == 4  # at 0, then at the last 3 of 30, ..., 300 (execute.evaluate_last)
    calibration = Calibration({k: 2.0 for k in keys}, {k: 0.01 for k in keys}, {evaluation_key(runs[0]): 0.5})
    assert calibration.seconds(runs, compile_groups(runs)) == pytest.approx(2 * 2.0 + 12 * (100 * 0.01 + 5 * 0.5))
    measured = calibrate(runs, log=lambda *_: None)
    assert set(measured.per_update) == set(measured.compile_seconds) == keys
    assert set(measured.per_evaluation) == {evaluation_key(runs[0])}
    assert all(s > 0 for s in measured.per_update.values()) and all(s >= 0 for s in measured.compile_seconds.values())
    assert all(s > 0 for s in measured.per_evaluation.values())


def test_calibration_compiles_each_shapes_evaluation_before_its_clock(monkeypatch):
    """A short calibration run's evaluations compile nothing: compiled inside the clock, the
    evaluation's compilation counted as compiling and as evaluating, was taken off twice,
    and the first kind of each new cluster shape looked hundreds of times faster."""
    from dataclasses import replace

    import jax.monitoring

    from scenarios.experiments import estimate
    from scenarios.experiments.catalogue import EXPERIMENTS, grid

    cfg = replace(EXPERIMENTS["synthetic"].config, updates=60, eval_every=20)
    runs = grid([cfg.validate(), replace(cfg, workers=6).validate()], ["asgd"], ["sgd"], 1)
    compiled, timing, calls = [], [], []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, duration, **kw: compiled.append(kw.get("fun_name", "")) if timing and event.startswith(
            "/jax/core/compile/backend_compile") else None)
    real = estimate.execute

    def timed_execute(run, **kw):
        calls.append(run)
        if len(calls) > 1:  # the first call is calibrate's warm-up run, not timed
            timing.append(run)
        try:
            return real(run, **kw)
        finally:
            timing.clear()
    monkeypatch.setattr(estimate, "execute", timed_execute)
    calibration = estimate.calibrate(runs, log=lambda *_: None)
    assert len(calibration.per_update) == 2
    assert compiled and not [name for name in compiled if "eval" in name]  # replays compiled; evaluations before
