"""The timing model reached from experiments: speeds, stragglers, crashes, recorded compute times."""

import csv
import hashlib
import io
import json
from dataclasses import replace

import numpy as np
import pytest

from sim.checks import Spec
from scenarios.cli import main
from scenarios.experiments.config import ExperimentConfig, run_key
from scenarios.errors import ConfigError
from scenarios.experiments.cluster import cluster_spec, node_speeds, trace_for
from scenarios.experiments.timing import EXAMPLES
from sim import APPLY, ClusterSpec, SpecError, as_durations, simulate, straggler_speeds
from sim.cluster import read_durations, replay_model

TINY = ["--seeds", "1", "--updates", "40", "--set", "eval_every=20", "--base", "sgd", "--algorithms", "asgd"]
EXAMPLE = EXAMPLES / "compute_times.csv"


def cfg(**overrides):
    return ExperimentConfig().with_overrides(overrides)


# ------------------------------------------------------------------ a list-valued field
def test_tuple_spec_parses_checks_and_stays_hashable():
    spec = Spec(tuple, low=0, low_open=True)
    assert spec.parse("speeds", "1,1,2,4") == (1.0, 1.0, 2.0, 4.0) == spec.parse("speeds", "[1 1 2 4]")
    assert spec.parse("speeds", "") == () and spec.check("speeds", [1, 2]) == (1.0, 2.0)
    for bad in ("1,-2", "1,x", "1,nan"):
        with pytest.raises(ValueError, match="speeds: must be a list of numbers > 0"):
            spec.parse("speeds", bad)
    for bad in ("1,2", 3, [1, True], {"a": 1}):
        with pytest.raises(ValueError, match="speeds"):
            spec.check("speeds", bad)
    a = cfg(workers="4", spread="1", speeds="1,1,2,4")
    b = replace(ExperimentConfig(), workers=4, spread=1.0, speeds=[1, 1, 2, 4]).validate()  # a TOML list
    assert a == b and hash(a) == hash(b) and a.speeds == (1.0, 1.0, 2.0, 4.0)
    assert json.loads(json.dumps(a.to_dict()))["speeds"] == [1.0, 1.0, 2.0, 4.0]
    assert run_key(a, "asgd", "sgd", 0) == run_key(b, "asgd", "sgd", 0) != run_key(cfg(workers="4", spread="1"),
                                                                                 "asgd", "sgd", 0)


# ------------------------------------------------------------------ speeds and stragglers
def test_default_speeds_unchanged_and_stragglers_are_the_first_nodes():
    base = ExperimentConfig()
    assert node_speeds(base, 10, 0) == straggler_speeds(10, 4.0)
    slow = cfg(stragglers="2", straggler_slowdown="10")
    assert np.allclose(node_speeds(slow, 10, 0), [s / 10 if w < 2 else s for w, s in enumerate(node_speeds(base, 10, 0))])
    # on top of the assignment: with random assignment nodes 0 and 1 keep their drawn speed, divided
    rnd = cfg(speed_assignment="random")
    rnd_slow = replace(rnd, stragglers=1).validate()
    assert node_speeds(rnd_slow, 10, 3)[0] == node_speeds(rnd, 10, 3)[0] / 10
    assert node_speeds(rnd_slow, 10, 3)[1:] == node_speeds(rnd, 10, 3)[1:]
    given = cfg(workers="4", spread="1", speeds="1,1,2,4", stragglers="1", straggler_slowdown="4")
    assert node_speeds(given, 10, 0) == (0.25, 1.0, 2.0, 4.0)


def test_crashes_reach_the_cluster_and_defaults_keep_the_trace_key():
    spec = cluster_spec(cfg(mttf="50", downtime="3", service_time="0.1"))
    assert spec.failures.mean_time_to_failure == 50 and spec.failures.downtime == 3 and spec.service_time == 0.1
    plain = cluster_spec(ExperimentConfig())
    assert "worker_durations" not in plain.to_dict()["compute"]  # keys of existing traces unchanged
    assert not plain.failures.enabled and plain == ClusterSpec.from_dict(plain.to_dict())


def test_barrier_with_crashes_is_one_error_naming_mttf():
    from scenarios.experiments.timing import check_crashes

    with pytest.raises(ConfigError, match=r"^mttf: ssgd runs under the barrier policy"):
        trace_for(cfg(mttf="10", updates="20"), "ssgd", 0, None)
    with pytest.raises(ConfigError, match=r"^mttf: ssgd"):
        check_crashes("ssgd", cfg(mttf="10"))  # before any work, for every run
    check_crashes("ssgd", ExperimentConfig())
    for name in ("asgd", "gsgm", "fedbuff"):
        check_crashes(name, cfg(mttf="10"))
    assert trace_for(cfg(mttf="10", updates="20", workers="3"), "gsgm", 0, None).num_updates == 20


@pytest.mark.parametrize("overrides, message", [
    ({"speeds": "1,2"}, "speeds: expected 10 values"),
    ({"speeds": "1,2,3,4,5,6,7,8,9,10"}, "speeds: .*set spread=1"),
    ({"speeds": "1,2,3,4,5,6,7,8,9,10", "spread": "1", "speed_assignment": "random"}, "speeds: .*speed_assignment"),
    ({"speeds": "1,0,3"}, "--set speeds: must be a list of numbers > 0"),
    ({"stragglers": "11"}, "stragglers: must be <= workers"),
    ({"stragglers": "-1"}, "--set stragglers"),
    ({"straggler_slowdown": "0.5"}, "--set straggler_slowdown: must be a finite number >= 1"),
    ({"mttf": "-1"}, "--set mttf"),
    ({"downtime": "nan"}, "--set downtime"),
    ({"compute": "replay"}, "compute: replay needs .*compute_trace"),
    ({"compute_trace": "compute_times.csv"}, "compute_trace: needs compute=replay"),
    ({"compute": "replay", "compute_trace": "/no/such.csv"}, "compute_trace: /no/such.csv: no such file"),
])
def test_bad_timing_fields_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        cfg(**overrides)


# ------------------------------------------------------------------ recorded compute times
def test_csv_format(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("# measured on a laptop\n\n0.5\n1.5\n")
    assert read_durations(path) == ((0.5, 1.5),)
    path.write_text("worker0,worker1\n1,2\n 3 , 4\n")  # header optional, spaces allowed
    assert read_durations(path) == ((1.0, 3.0), (2.0, 4.0))
    assert read_durations(EXAMPLE)[0][:3] == (0.91, 0.88, 0.93)
    for text, message in [("1,2\n3\n", "line 2: expected 2 values"), ("s\n1\nx\n", "line 3, column 1: 'x' is not"),
                          ("1\n0\n", "line 2, column 1: a duration must be a finite number > 0"),
                          ("1,\n", "line 1, column 2: empty value"), ("1.5,abc\n", "line 1, column 2: 'abc'"),
                          ("# only a comment\nseconds\n", "no durations"), ("1\ninf\n", "line 2")]:
        path.write_text(text)
        with pytest.raises(SpecError, match=f"^{path}.*{message}"):
            read_durations(path)
    path.write_bytes(b"\xff\xfe1\n")
    with pytest.raises(SpecError, match="not a UTF-8"):
        read_durations(path)


def test_replay_per_worker_and_shared_columns():
    shared = replay_model([(1.0, 2.0)])
    assert shared == as_durations([1.0, 2.0])
    per = ClusterSpec(2, compute=replay_model([(1.0,), (3.0,)]))
    trace = simulate(per, "fifo", 8, seed=0)
    assert np.bincount(trace.worker[trace.kind == APPLY], minlength=2).tolist() == [6, 2]  # 3x faster node 0
    assert ClusterSpec.from_dict(trace.spec) == per
    with pytest.raises(SpecError, match="worker_durations: expected 3"):
        ClusterSpec(3, compute=replay_model([(1.0,), (3.0,)]))


def test_compute_trace_config_records_sha_and_a_changed_file_is_a_new_run(tmp_path):
    path = tmp_path / "times.csv"
    path.write_text("seconds\n1\n2\n")
    a = cfg(compute="replay", compute_trace=str(path), updates="20")
    assert len(a.compute_trace_sha256) == 64
    assert cluster_spec(a).compute.durations == (1.0, 2.0)
    first = trace_for(a, "asgd", 0, tmp_path / "cache")
    path.write_text("seconds\n1\n4\n")
    with pytest.raises(ConfigError, match="compute_trace: .* changed since the run was planned"):
        cluster_spec(a)
    b = replace(a).validate()  # validated again: the new contents
    assert b.compute_trace_sha256 != a.compute_trace_sha256 and run_key(a, "asgd", "sgd", 0) != run_key(
        b, "asgd", "sgd", 0)
    second = trace_for(b, "asgd", 0, tmp_path / "cache")  # durations are in the trace key: simulated again
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2 and second.time[-1] != first.time[-1]
    # one column per node needs as many columns as nodes, and spread=1
    path.write_text("1,2,3\n")
    with pytest.raises(ConfigError, match="has 3 columns .* workers=10"):
        cfg(compute="replay", compute_trace=str(path))
    with pytest.raises(ConfigError, match="set spread=1"):
        cfg(compute="replay", compute_trace=str(path), workers="3")
    per = cfg(compute="replay", compute_trace=str(path), workers="3", spread="1", stragglers="1")
    assert cluster_spec(per).compute.worker_durations == ((1.0,), (2.0,), (3.0,))
    assert cluster_spec(per).speeds == (0.1, 1.0, 1.0)
    assert cfg(compute="replay", compute_trace="compute_times.csv").compute_trace_sha256  # the shipped example


# ------------------------------------------------------------------ the command line
BAD = [
    (["run", "synthetic", "--set", "speeds=1,2"], "speeds"),
    (["run", "synthetic", "--set", "speeds=1,x,2,2"], "speeds"),
    (["run", "synthetic", "--set", "stragglers=5"], "stragglers"),
    (["run", "synthetic", "--set", "straggler_slowdown=0"], "straggler_slowdown"),
    (["run", "synthetic", "--set", "mttf=-3"], "mttf"),
    (["run", "synthetic", "--set", "compute=replay"], "compute"),
    (["run", "synthetic", "--set", "compute=replay", "--set", "compute_trace=/no/such.csv"], "compute_trace"),
    (["simulate", "--workers", "2", "--compute", "replay"], "--compute-trace"),
    (["simulate", "--workers", "2", "--compute-trace", str(EXAMPLE)], "--compute-trace"),
    (["simulate", "--workers", "2", "--compute", "replay", "--compute-trace", "/no/such.csv"], "--compute-trace"),
    (["simulate", "--workers", "2", "--compute", "replay", "--compute-mean", "2", "--compute-trace", str(EXAMPLE)],
     "--compute-mean"),
]


@pytest.mark.parametrize("argv, needle", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_gives_one_line(argv, needle, tmp_path, capsys):
    out_dir = tmp_path / "out"
    if argv[0] == "run":
        argv = argv + ["--out", str(out_dir)]
    assert main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("stalesim: error:") and needle in lines[0], lines
    assert not out_dir.exists()


def test_simulate_replays_a_csv(tmp_path, capsys):
    assert main(["simulate", "--workers", "3", "--compute", "replay", "--compute-trace", str(EXAMPLE), "--updates", "60",
                 "--json"]) == 0
    shared = json.loads(capsys.readouterr().out)
    expected = simulate(ClusterSpec(3, compute=replay_model(read_durations(EXAMPLE))), "fifo", 60, seed=0)
    assert shared["sim_time"] == pytest.approx(float(expected.time[-1]))
    per = tmp_path / "per.csv"
    per.write_text("a,b,c\n1,1,3\n")
    assert main(["simulate", "--workers", "3", "--compute", "replay", "--compute-trace", str(per), "--updates", "70",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["updates_per_worker"] == [30, 30, 10]
    assert main(["simulate", "--workers", "2", "--compute", "replay", "--compute-trace", str(per)]) == 2
    assert "3 columns" in capsys.readouterr().err


def test_run_with_stragglers_crashes_and_recorded_times(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "synthetic", *TINY, "--set", "stragglers=1", "--set", "straggler_slowdown=10",
                 "--set", "mttf=30", "--set", "downtime=2", "--out", str(out)]) == 0
    (result,) = [json.loads(p.read_text()) for p in out.glob("runs/*/result.json")]
    assert result["config"]["stragglers"] == 1 and result["config"]["mttf"] == 30.0
    per_worker = result["trace"]["updates_per_worker"]
    assert per_worker[0] < min(per_worker[1:])
    out = tmp_path / "replay"
    assert main(["run", "synthetic", *TINY, "--set", "compute=replay", "--set", "compute_trace=compute_times.csv",
                 "--out", str(out)]) == 0
    (result,) = [json.loads(p.read_text()) for p in out.glob("runs/*/result.json")]
    assert result["config"]["compute_trace_sha256"] == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()


SWEEP = """
name = "timing"
experiment = "synthetic"
algorithms = ["asgd"]
bases = ["sgd"]
seeds = 1
[set]
updates = 40
eval_every = 20
spread = 1.0
compute = "replay"
compute_trace = "{csv}"
[axes]
stragglers = [0, 1]
speeds = [[], [1, 1, 2, 4]]
"""


def test_sweep_over_stragglers_and_speeds_with_recorded_times(tmp_path, capsys):
    from scenarios.experiments.sweep import load_sweep

    times = tmp_path / "times.csv"
    times.write_text("0.5\n1.5\n1.0\n")
    path = tmp_path / "timing.toml"
    path.write_text(SWEEP.format(csv=times))
    runs = load_sweep(str(path)).runs()
    assert len(runs) == 4 and len({r.key for r in runs}) == 4
    assert {r.config.speeds for r in runs} == {(), (1.0, 1.0, 2.0, 4.0)}
    # an axis over crashes and over recorded-time files is validated like any other
    path.write_text(SWEEP.format(csv=times).replace("speeds = [[], [1, 1, 2, 4]]",
                                                    f'mttf = [0.0, 20.0]\ncompute_trace = ["{times}", "{EXAMPLE}"]'))
    assert len(load_sweep(str(path)).runs()) == 8
    path.write_text(SWEEP.format(csv=times).replace("[1, 1, 2, 4]", "[1, 2]"))
    with pytest.raises(ConfigError, match="speeds: expected 4 values"):
        load_sweep(str(path))
    # run: speeds as a TOML list in [set], recorded times, an axis over stragglers
    path.write_text(SWEEP.format(csv=times).replace("speeds = [[], [1, 1, 2, 4]]", "").replace(
        "[set]", "[set]\nspeeds = [1, 1, 2, 4]"))
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--jobs", "1"]) == 0
    rows = list(csv.DictReader(io.StringIO((out / "runs.csv").read_text())))
    assert len(rows) == 2 and {r["stragglers"] for r in rows} == {"0", "1"}
    assert len(list((out / "traces").glob("*.npz"))) == 2
    results = [json.loads(p.read_text()) for p in sorted(out.glob("runs/*/result.json"))]
    assert {tuple(r["config"]["speeds"]) for r in results} == {(1.0, 1.0, 2.0, 4.0)}
    assert {r["config"]["compute_trace_sha256"] for r in results} == {hashlib.sha256(
        times.read_bytes()).hexdigest()}


def test_configuration_doc_is_fresh():
    from pathlib import Path

    from scenarios.experiments.config import markdown

    doc = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"
    assert doc.read_text() == markdown(), "regenerate: python -m scenarios.experiments.config > docs/configuration.md"


def test_the_old_option_name_durations_still_works_with_a_notice(capsys):
    assert main(["simulate", "--workers", "3", "--compute", "replay", "--durations", str(EXAMPLE), "--updates", "60",
                 "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == ("stalesim: note: --durations is renamed --compute-trace (the configuration field's "
                                    "name); the old name still works for now")
    assert main(["simulate", "--workers", "3", "--compute", "replay", "--compute-trace", str(EXAMPLE), "--updates",
                 "60", "--json"]) == 0
    assert capsys.readouterr().out == captured.out
