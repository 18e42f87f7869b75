"""The stalesim command: JSON output, one-line errors for bad input, end-to-end runs, resume."""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from scenarios.cli import main
from scenarios.experiments.cluster import cluster_spec
from scenarios.experiments.config import from_dict
from sim import Trace, make_policy, simulate

TINY = ["--seeds", "1", "--updates", "40", "--set", "eval_every=20", "--base", "sgd"]


def test_simulate_json(capsys):
    assert main(["simulate", "--workers", "3", "--updates", "30", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["updates"] == 30 and out["max_staleness"] == 2 and out["mean_staleness"] > 0
    assert out["updates_per_worker"] == [10, 10, 10] and out["sim_time"] == 10.0


def test_simulate_readable_and_saved_trace(tmp_path, capsys):
    path = tmp_path / "t.npz"
    assert main(["simulate", "--workers", "4", "--compute", "exponential", "--spread", "3", "--latency", "0.1",
                 "--bandwidth", "1e6", "--model-bytes", "4e5", "--policy", "whitelist-queue", "--updates", "200",
                 "--out", str(path)]) == 0
    out = capsys.readouterr().out
    assert "staleness: mean" in out and "|" in out and path.is_file()


def test_simulate_builds_the_cluster_run_builds_from_the_same_configuration(tmp_path, capsys):
    """One route to a ClusterSpec: simulate's options are configuration fields, and the trace
    equals the one simulated from that configuration's cluster (spread 1 unless given)."""
    path = tmp_path / "t.npz"
    assert main(["simulate", "--workers", "4", "--compute", "exponential", "--spread", "3", "--latency", "0.1",
                 "--mttf", "20", "--updates", "150", "--seed", "4", "--out", str(path)]) == 0
    config = from_dict({"workers": 4, "compute": "exponential", "spread": 3.0, "latency": 0.1, "mttf": 20.0,
                        "updates": 150})
    expected = simulate(cluster_spec(config, seed=4), policy=make_policy("fifo"), num_updates=150, seed=4)
    saved = Trace.load(path)
    for name in ("kind", "worker", "slot", "time", "version"):
        assert np.array_equal(getattr(saved, name), getattr(expected, name)), name


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as e:
        main(["simulate", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for option in ("--workers", "--compute", "--speeds", "--latency", "--bandwidth", "--model-bytes", "--policy",
                   "--updates", "--seed", "--out", "--json"):
        assert option in text


BAD = [
    # (argv, text the one-line error must contain)
    (["simulate", "--workers", "0"], "--workers"),
    (["simulate", "--workers", "-3"], "--workers"),
    (["simulate", "--workers", "three"], "--workers"),
    (["simulate", "--workers", "2", "--policy", "lifo"], "--policy"),
    (["simulate", "--workers", "2", "--policy", "buffered:0"], "buffered"),
    (["simulate", "--workers", "2", "--policy", "buffered:x"], "buffered"),
    (["simulate", "--workers", "2", "--latency", "-1"], "--latency"),
    (["simulate", "--workers", "2", "--latency", "nan"], "--latency"),
    (["simulate", "--workers", "2", "--bandwidth", "inf"], "--bandwidth"),
    (["simulate", "--workers", "2", "--compute", "gamma"], "--compute"),
    (["simulate", "--workers", "2", "--compute-mean", "0"], "--compute-mean"),
    (["simulate", "--workers", "2", "--speeds", "1,2,3"], "speeds"),
    (["simulate", "--workers", "2", "--speeds", "1,-2"], "--speeds"),
    (["simulate", "--workers", "2", "--spread", "0.5"], "--spread"),
    (["simulate", "--workers", "2", "--updates", "0"], "--updates"),
    (["simulate", "--workers", "2", "--seed", "-1"], "--seed"),
    (["simulate", "--workers", "2", "--service-time", "-0.1"], "--service-time"),
    (["simulate", "--workers", "2", "--policy", "barrier", "--mttf", "3"], "failures"),
    (["run", "nosuch"], "experiment"),
    (["run", "synthetic", "--algorithms", "hogwild"], "--algorithms"),
    (["run", "synthetic", "--base", "rmsprop"], "--base"),
    (["run", "synthetic", "--workers", "0"], "--workers"),
    (["run", "synthetic", "--seeds", "zero"], "--seeds"),
    (["run", "synthetic", "--updates", "-5"], "--updates"),
    (["run", "synthetic", "--set", "lr_sgd=-0.1"], "lr_sgd"),
    (["run", "synthetic", "--set", "lr_adam=0"], "lr_adam"),
    (["run", "synthetic", "--set", "lr_sgd=nan"], "lr_sgd"),
    (["run", "synthetic", "--set", "momentum=1.5"], "momentum"),
    (["run", "synthetic", "--set", "gsgm_k=9"], "gsgm_k"),
    (["run", "synthetic", "--set", "classes_per_worker=20"], "classes_per_worker"),
    (["run", "synthetic", "--set", "unknown_key=1"], "unknown_key"),
    (["run", "synthetic", "--set", "lr_sgd"], "key=value"),
    (["run", "synthetic", "--set", "partition=pathological"], "partition"),
    (["run", "synthetic", "--set", "alpha=-1", "--set", "partition=dirichlet"], "alpha"),
    (["run", "synthetic", "--set", "spread=inf"], "spread"),
    (["run", "synthetic", "--set", "model=resnet"], "model"),
    (["reproduce", "fmnist", "--data-dir", "/nonexistent", "--set", "dataset=cifar10"], "cifar10"),
    (["run", "noniid", "--set", "classes_per_worker=2"], "classes_per_worker"),
    (["report", "/nonexistent/dir"], "dir"),
]


@pytest.mark.parametrize("argv, needle", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_gives_one_line_and_writes_nothing(argv, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("STALESIM_DATA", raising=False)
    out_dir = tmp_path / "out"
    if argv[0] in ("run", "reproduce"):
        argv = argv + ["--out", str(out_dir)]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("stalesim: error:") and needle in lines[0], lines[0]
    assert "Traceback" not in err
    assert not out_dir.exists()


def test_bad_trace_file(tmp_path):
    from sim import Trace, TraceError

    bad = tmp_path / "t.npz"
    bad.write_text("nope")
    with pytest.raises(TraceError, match="not a readable"):
        Trace.load(bad)


def test_end_to_end_run_synthetic(tmp_path, capsys):
    out = tmp_path / "syn"
    assert main(["run", "synthetic", "--algorithms", "asgd,gsgm", *TINY, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    results = sorted(out.glob("runs/*/result.json"))
    assert len(results) == 2
    r = json.loads(results[0].read_text())
    for key in ("final_accuracy", "accuracy_std", "diverged", "history", "config", "trace"):
        assert key in r
    assert {"update", "sim_time", "loss", "accuracy"} <= set(r["history"][0])
    assert r["history"][-1]["update"] == 40
    lines = (results[0].parent / "history.csv").read_text().splitlines()
    assert lines[0] == "update,sim_time,loss,accuracy" and len(lines) == len(r["history"]) + 1
    assert float(lines[-1].split(",")[3]) == r["history"][-1]["accuracy"]
    assert "gsgm" in text and "final acc." in text
    # a second call keeps both runs
    assert main(["run", "synthetic", "--algorithms", "asgd,gsgm", *TINY, "--out", str(out)]) == 0
    assert capsys.readouterr().out.count("done before, kept") == 2
    # report redraws without recomputing
    assert main(["report", str(out)]) == 0
    assert (out / "table.md").is_file() and (out / "plots" / "accuracy_vs_time.png").is_file()


def _stalesim(args, **kw):
    return subprocess.Popen([sys.executable, "-m", "scenarios", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def test_killed_reproduction_resumes_and_matches_an_uninterrupted_one(tmp_path):
    args = ["reproduce", "synthetic", "--algorithms", "asgd,dcasgd-a,gsgm", "--seeds", "2", "--updates", "40",
            "--set", "eval_every=20", "--base", "sgd"]
    interrupted, clean = tmp_path / "interrupted", tmp_path / "clean"
    proc = _stalesim(args + ["--out", str(interrupted)])
    deadline = time.time() + 240
    while time.time() < deadline and len(list(interrupted.glob("runs/*/result.json"))) < 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    finished = len(list(interrupted.glob("runs/*/result.json")))
    assert 2 <= finished < 6, "the kill should land mid-way"
    for run in (interrupted / "runs").iterdir():
        visible = {p.name for p in run.iterdir() if not p.name.startswith(".")}
        # a kill leaves at most a hidden temporary file; a result.json exists only beside its history
        assert visible in (set(), {"history.csv"}, {"history.csv", "result.json"}), (run.name, visible)
        if "result.json" in visible:
            json.loads((run / "result.json").read_text())  # never half-written

    resumed = _stalesim(args + ["--out", str(interrupted)])
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out
    assert out.count("done before, kept") == finished
    assert len(list(interrupted.glob("runs/*/result.json"))) == 6

    reference = _stalesim(args + ["--out", str(clean)])
    ref_out, _ = reference.communicate(timeout=600)
    assert reference.returncode == 0, ref_out
    assert (interrupted / "table.md").read_text() == (clean / "table.md").read_text()

    def without_wall_time(path):  # the CSV also records wall seconds, which no two runs share
        rows = list(csv.reader(io.StringIO(path.read_text())))
        column = rows[0].index("wall_time")
        return [row[:column] + row[column + 1:] for row in rows]
    assert without_wall_time(interrupted / "table.csv") == without_wall_time(clean / "table.csv")
