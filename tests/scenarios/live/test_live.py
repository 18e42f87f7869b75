"""Live runs: the server under every policy, crashes and hangs, the files a live run writes, replay equals live, validate, the CLI's one-line errors, Ray."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from algorithms import replay
from sim import Trace, make_policy, summarize
from sim.cluster import read_durations

from scenarios.cli import main
from scenarios.errors import ConfigError
from scenarios.experiments.catalogue import EXPERIMENTS, expand
from scenarios.experiments.cluster import cluster_spec, policy_for
from scenarios.experiments.execute import rule_for
from scenarios.live import session
from scenarios.live.backends import check_address
from scenarios.live.command import add_subcommands
from scenarios.live.server import LiveServer
from scenarios.live.validate import ks_distance, validate_run
from scenarios.live.validation_report import markdown
from scenarios.live.worker import PUSH, Setup, Worker
from scenarios.workloads.workload import workload

cli = sys.modules[main.__module__]  # the module of the stalesim command (its parser)
ROOT = Path(__file__).resolve().parents[3]
UPDATES = 60


def _run(algorithm: str, base: str = "sgd", **overrides):
    experiment = EXPERIMENTS["synthetic"]
    config = experiment.config.with_overrides({"updates": UPDATES, "eval_every": 20, **overrides})
    return expand(experiment, config, [algorithm], [base], 1)[0]


class InProcess:
    """A backend whose workers are ``Worker`` objects in this process: a pull is answered at
    once, so tests of the server's logic need no processes. ``kill`` and ``hang`` act as a
    dead or silent worker would."""

    name = "in-process"

    def __init__(self, setups):
        self.workers = [Worker(s) for s in setups]
        self.queue, self.dead, self.hung = [], set(), set()

    def pull(self, worker, version, params):
        if worker in self.hung or worker in self.dead:
            return
        self.queue.append((PUSH, worker, self.workers[worker].compute(version, params, time.time())))

    def receive(self, timeout):
        if not self.queue:
            time.sleep(timeout)
        events, self.queue = self.queue[:1], self.queue[1:]
        return events

    def kill(self, worker):
        self.dead.add(worker)
        self.queue = [e for e in self.queue if e[1] != worker] + [("crash", worker, "killed")]


def _serve(run, *, kill=None, hang=None, timeout=30.0):
    cfg = run.config
    wl = workload(cfg)
    spec = cluster_spec(cfg, wl.num_classes, run.seed)
    backend = InProcess([Setup(w, cfg, None, run.seed, spec, 1e-4) for w in range(cfg.workers)])
    if hang is not None:
        backend.hung.add(hang)
    params0 = wl.model.init(jax.random.PRNGKey(run.seed))
    server = LiveServer(backend, make_policy(policy_for(run.algorithm, cfg)), rule_for(run.algorithm, run.base, cfg),
                        params0, num_workers=cfg.workers, num_updates=cfg.updates, eval_every=cfg.eval_every,
                        eval_fn=wl.eval_fn, time_scale=1e-4, worker_timeout=timeout, seed=run.seed,
                        spec=spec.to_dict(), kill=kill)
    return server.run(), wl, params0


def _replayed(run, trace, wl, params0, mode):
    return replay(trace, rule_for(run.algorithm, run.base, run.config), wl.problem(params0),
                  eval_every=run.config.eval_every, seed=run.seed, mode=mode, keep_params=True)


def _max_abs_diff(a, b) -> float:
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
               for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


@pytest.mark.parametrize("algorithm,base,overrides", [
    ("asgd", "momentum", {}),  # fifo, per-node momentum
    ("dcasgd-a", "sgd", {}),  # fifo, reads the backup
    ("gsgm", "momentum", {}),  # whitelist-wait
    ("gsgm", "sgd", {"gsgm_policy": "whitelist-queue"}),
    ("ssgd", "sgd", {}),  # barrier
    ("fedbuff", "sgd", {}),  # buffered:4
])
def test_replay_of_the_live_trace_gives_the_live_parameters_bit_for_bit(algorithm, base, overrides):
    run = _run(algorithm, base, **overrides)
    outcome, wl, params0 = _serve(run)
    assert outcome.trace.num_updates == UPDATES
    assert outcome.trace.policy == policy_for(algorithm, run.config)
    for mode in ("loop", "scan"):
        history = _replayed(run, outcome.trace, wl, params0, mode)
        assert _max_abs_diff(history.params, outcome.params) == 0.0, mode
        assert history.loss.tolist() == outcome.history.loss.tolist()
        assert history.accuracy.tolist() == outcome.history.accuracy.tolist()
    assert history.update.tolist() == outcome.history.update.tolist() == [0, 20, 40, 60]


def test_a_crashed_worker_is_recorded_and_the_server_goes_on():
    run = _run("gsgm")
    outcome, wl, params0 = _serve(run, kill=(1, 20))
    assert [c.worker for c in outcome.crashes] == [1]
    assert outcome.crashes[0].applied >= 20
    trace = outcome.trace
    assert trace.num_updates == UPDATES
    applied_after = trace.applied_worker[outcome.crashes[0].applied + 1:]
    assert 1 not in applied_after.tolist()  # nothing of worker 1's is applied after its crash
    assert _max_abs_diff(_replayed(run, trace, wl, params0, "scan").params, outcome.params) == 0.0


def test_a_barrier_cannot_go_on_without_a_crashed_worker():
    with pytest.raises(ConfigError, match="barrier policy cannot go on after .* no worker is computing"):
        _serve(_run("ssgd"), kill=(0, 10))


def test_a_hung_worker_stops_the_run_with_one_line():
    with pytest.raises(ConfigError, match=r"^--worker-timeout: worker 2 sent nothing for \d+ s after its pull") as e:
        _serve(_run("gsgm"), hang=2, timeout=0.3)  # the white list waits for worker 2: only it is computing
    assert "\n" not in str(e.value)


def test_compute_times_csv_reads_back_as_one_column_per_worker_cycled_as_replay_cycles(tmp_path):
    rows = [type("G", (), {"worker": w, "compute": c})() for w, c in [(0, 0.2), (1, 0.1), (1, 0.3), (1, 0.5)]]
    path = tmp_path / "compute_times.csv"
    path.write_text(session.compute_times_csv(rows, 3, time_scale=0.1))
    columns = read_durations(path)
    assert columns[0] == (2.0, 2.0, 2.0)  # one time, repeated
    assert columns[1] == (1.0, 3.0, 5.0)
    assert len(columns[2]) == 3 and len(set(columns[2])) == 1  # pushed nothing: the median of all


def test_ks_distance():
    assert ks_distance([0, 1, 2], [0, 1, 2]) == 0.0
    assert ks_distance([0, 0], [1, 1]) == 1.0
    assert ks_distance([0, 1], [1, 1]) == 0.5


# ------------------------------------------------------------------ real processes
@pytest.fixture(scope="module")
def live_run(tmp_path_factory):
    """One live run on spawned processes: synthetic, 4 workers, 100 updates, worker 3 killed (SIGKILL) after 50."""
    out = tmp_path_factory.mktemp("live")
    run = _run("asgd", updates=100)
    result = session.run_live(run, out, time_scale=0.01, kill=(3, 50))
    return run, out, session.run_dir(out, run, 0.01), result


def test_a_live_run_writes_a_trace_compute_times_and_timings(live_run):
    run, out, folder, result = live_run
    assert sorted(p.name for p in folder.iterdir()) == ["compute_times.csv", "history.csv", "params.npz",
                                                        "result.json", "timings.csv", "trace.npz"]
    assert not [p for p in (out / "runs").iterdir() if p.name.startswith(".")]  # no temporary folder left
    saved = json.loads((folder / "result.json").read_text())
    assert saved["mode"] == "live" and saved["live"]["time_scale"] == 0.01
    assert [c["worker"] for c in saved["live"]["crashes"]] == [3]
    trace = Trace.load(folder / "trace.npz")
    summary = summarize(trace)
    assert summary["updates"] == 100 and summary["workers"] == 4
    assert saved["trace"]["mean_staleness"] == summary["mean_staleness"]
    assert len(read_durations(folder / "compute_times.csv")) == 4
    header = (folder / "timings.csv").read_text().splitlines()[0]
    assert header == "worker,step,read_version,pulled,compute,real,overrun,pull_latency,push_latency,applied,service"


def test_the_replay_of_a_live_run_on_processes_is_bit_for_bit(live_run):
    run, out, folder, result = live_run
    wl = workload(run.config)
    params0 = wl.model.init(jax.random.PRNGKey(run.seed))
    trace = Trace.load(folder / "trace.npz")
    with np.load(folder / "params.npz") as z:
        live = [z[f"leaf{i}"] for i in range(len(z.files))]
    for mode in ("loop", "scan"):
        assert _max_abs_diff(_replayed(run, trace, wl, params0, mode).params, live) == 0.0, mode


def test_validate_compares_replay_simulator_and_calibration(live_run):
    run, out, folder, result = live_run
    report = validate_run(folder)
    assert report["replay_max_abs_diff"] == 0.0 and report["replay_history_max_abs_diff"] == 0.0
    for kind in ("live", "simulated", "calibrated"):
        assert set(report["staleness"][kind]) == {"mean", "p95", "max"}
        assert len(report["shares"][kind]) == 4 and abs(sum(report["shares"][kind]) - 100) < 1e-9
    assert set(report["ks"]) == {"simulated", "calibrated"}
    assert report["staleness"]["live"]["mean"] == result.trace["mean_staleness"]


def _cli(argv, capsys, monkeypatch):
    """``stalesim`` with the live subcommands registered (as scenarios/cli/command.py will register them)."""
    build = cli.build_parser

    def with_live():
        parser = build()
        sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        if "live" not in sub.choices:
            add_subcommands(sub)
        return parser
    monkeypatch.setattr(cli, "build_parser", with_live)
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_validate_json(live_run, capsys, monkeypatch):
    run, out, folder, result = live_run
    code, stdout, _ = _cli(["validate", str(out), "--json"], capsys, monkeypatch)
    assert code == 0
    runs = json.loads(stdout)["runs"]
    assert [r["run"] for r in runs] == [folder.name]
    assert set(runs[0]) == {"run", "replay_max_abs_diff", "staleness", "ks", "shares"}
    assert (out / "validation.png").is_file() and (out / "validation.json").is_file()


@pytest.mark.parametrize("argv,message", [
    (["--time-scale", "0"], "--time-scale: must be a number > 0, got 0"),
    (["--time-scale", "-1"], "--time-scale: must be a number > 0, got -1"),
    (["--backend", "mpi"], "--backend: must be one of local, ray, got 'mpi'"),
    (["--address", "127.0.0.1:1"], "--address: only with --backend ray"),
    (["--set", "mttf=5"], "--set mttf: a live run does not emulate crashes"),
])
def test_bad_inputs_get_one_line(argv, message, capsys, monkeypatch, tmp_path):
    code, _, err = _cli(["live", "synthetic", "--out", str(tmp_path / "o"), *argv], capsys, monkeypatch)
    assert code == 2
    assert err.startswith(f"stalesim: error: {message}") and err.count("\n") == 1


def test_more_workers_than_memory_holds_is_refused(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(session, "available_bytes", lambda: 1 << 30)
    code, _, err = _cli(["live", "synthetic", "--workers", "40", "--out", str(tmp_path / "o")], capsys, monkeypatch)
    assert code == 2
    assert err.startswith("stalesim: error: --workers: 40 worker processes need about ") and "at most" in err


def test_a_ray_address_that_does_not_answer_is_one_line():
    with pytest.raises(ConfigError, match=r"^--address 127.0.0.1:1: no Ray cluster answers there"):
        check_address("127.0.0.1:1")


_STALESIM = ("import sys; from scenarios.cli import main; cli = sys.modules[main.__module__];"
             "from scenarios.live.command import add_subcommands; build = cli.build_parser\n"
             "def b():\n p = build(); s = next(a for a in p._actions if a.__class__.__name__ == '_SubParsersAction')\n"
             " 'live' in s.choices or add_subcommands(s); return p\n"
             "cli.build_parser = b; sys.exit(cli.main(sys.argv[1:]))")


def _stalesim(*argv, env=None, **kw):
    """``stalesim ARGV`` in a fresh process, with the live subcommands registered."""
    return subprocess.Popen([sys.executable, "-c", _STALESIM, *argv], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}, **kw)


def test_ctrl_c_stops_cleanly_with_nothing_half_written(tmp_path):
    out = tmp_path / "o"
    # a Ctrl-C reaches a process whose SIGINT is not ignored; a shell ignores it for the commands it starts in
    # the background (`cmd &`), and Python keeps that, so the child starts with the default action
    proc = _stalesim("live", "synthetic", "--algorithms", "asgd", "--base", "sgd", "--seeds", "1", "--updates",
                     "100000", "--time-scale", "0.05", "--out", str(out),
                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out / ".lock").exists():
        time.sleep(0.2)
    time.sleep(8)  # the workers start, and the clock runs
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # never leave it running (it would run for 100,000 updates)
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("stalesim: interrupted")
    assert not (out / "runs").exists() or not any((out / "runs").iterdir())


# ------------------------------------------------------------------ Ray, with token authentication
@pytest.fixture(scope="module")
def ray_head():
    """A Ray head this test starts on 127.0.0.1 with token authentication (stopped by its process id)."""
    pytest.importorskip("ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(16)
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "RAY_USAGE_STATS_ENABLED": "0"}
    head = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
                             "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "4",
                             "--include-dashboard", "false", "--temp-dir", temp, "--disable-usage-stats"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            check_address(address)
            break
        except ConfigError:
            if time.monotonic() > deadline or head.poll() is not None:
                head.kill()
                pytest.skip("could not start a local Ray head")
            time.sleep(0.5)
    time.sleep(3)
    yield address, token
    os.killpg(head.pid, signal.SIGTERM)  # its own session: the head and what it started
    try:
        head.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
    shutil.rmtree(temp, ignore_errors=True)


def test_ray_backend_with_a_token(ray_head, tmp_path):
    address, token = ray_head
    out = tmp_path / "o"
    proc = _stalesim("live", "synthetic", "--algorithms", "asgd", "--base", "sgd", "--seeds", "1", "--updates", "40",
                     "--time-scale", "0.01", "--backend", "ray", "--address", address, "--out", str(out),
                     env={"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token})
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    (folder,) = (out / "runs").iterdir()
    saved = json.loads((folder / "result.json").read_text())
    assert saved["live"]["backend"] == "ray" and saved["trace"]["updates"] == 40
    assert validate_run(folder)["replay_max_abs_diff"] == 0.0


def test_ray_refusing_the_token_is_one_line(ray_head, tmp_path):
    address, _ = ray_head
    proc = _stalesim("live", "synthetic", "--algorithms", "asgd", "--base", "sgd", "--seeds", "1", "--updates", "40",
                     "--backend", "ray", "--address", address, "--out", str(tmp_path / "o"),
                     env={"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "not-the-token"})
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"stalesim: error: --address {address}: the Ray cluster"), err
    assert "refused this client" in line and "set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN" in line, err


# ------------------------------------------------------------------ docs/validation.md
def test_validation_doc_is_what_the_generator_writes_from_the_committed_data(monkeypatch):
    monkeypatch.chdir(ROOT)
    folder, doc = Path("docs/validation-data"), Path("docs/validation.md")
    report = json.loads((folder / "validation.json").read_text())
    assert doc.read_text() == markdown(report, folder, doc)
