"""The timing simulator: golden traces, queueing oracles, determinism, persistence."""

import subprocess
import sys

import numpy as np
import pytest

from sim import (APPLY, PULL, PUSH, ClusterSpec, ComputeModel, FailureModel, SpecError, Trace, TraceError,
                 as_durations, network, simulate, straggler_speeds, summarize)


def spec3(**kw):
    return ClusterSpec(num_workers=3, compute=ComputeModel("constant", 1.0), **kw)


def test_golden_fifo_three_identical_workers():
    trace = simulate(spec3(), "fifo", num_updates=6, seed=0)
    # t=0: every worker pulls version 0; t=1: each pushes, is applied, pulls; again at t=2
    P, U, A = PULL, PUSH, APPLY
    assert trace.kind.tolist() == [P, P, P, U, A, P, U, A, P, U, A, P, U, A, P, U, A, P, U, A]
    assert trace.worker.tolist() == [0, 1, 2, 0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 0, 0, 1, 1, 1, 2, 2]
    assert trace.version.tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5]
    assert trace.time.tolist() == [0, 0, 0] + [1.0] * 9 + [2.0] * 8
    assert trace.staleness.tolist() == [0, 1, 2, 2, 2, 2]
    assert trace.applied_worker.tolist() == [0, 1, 2, 0, 1, 2]
    assert trace.num_slots == 1


def test_golden_fifo_heterogeneous_with_latency():
    # cycles: 0.1 + 1/speed + 0.1 = 1.2, 0.7, 0.45 for speeds 1, 2, 4
    spec = spec3(speeds=(1.0, 2.0, 4.0), push=network(latency=0.1), pull=network(latency=0.1))
    trace = simulate(spec, "fifo", num_updates=6, seed=0)
    assert trace.applied_worker.tolist() == [2, 1, 2, 0, 2, 1]
    np.testing.assert_allclose(trace.apply_time, [0.45, 0.7, 0.9, 1.2, 1.35, 1.4])
    assert trace.staleness.tolist() == [0, 1, 1, 3, 1, 3]


def test_golden_whitelist_wait():
    # worker 2 is 4x faster; after its first update it must wait for the others
    spec = spec3(speeds=(1.0, 1.0, 4.0))
    trace = simulate(spec, "whitelist-wait", num_updates=6, seed=0)
    assert trace.applied_worker.tolist() == [2, 0, 1, 2, 0, 1]
    # worker 2 pushed at 0.5 and waited until the list refilled at t=1
    np.testing.assert_allclose(trace.apply_time, [0.25, 1.0, 1.0, 1.0, 2.0, 2.0])
    # at t=1 worker 1's push empties the list, the refill applies worker 2's waiting
    # gradient before worker 1 pulls, so worker 1 reads version 4 and its next update
    # (at version 5) has staleness 1
    assert trace.staleness.tolist() == [0, 1, 2, 2, 2, 1]


@pytest.mark.parametrize("n", [2, 5, 8])
def test_fifo_constant_staleness_is_n_minus_1_after_warmup(n):
    trace = simulate(ClusterSpec(num_workers=n), "fifo", num_updates=20 * n, seed=3)
    s = trace.staleness
    assert s[:n].tolist() == list(range(n))
    assert np.all(s[n:] == n - 1)


def test_single_worker_has_zero_staleness():
    spec = ClusterSpec(num_workers=1, compute=ComputeModel("exponential", 1.0), push=network(0.1, jitter=0.05))
    for policy in ("fifo", "whitelist-wait", "barrier", "buffered:1"):
        assert np.all(simulate(spec, policy, 200, seed=1).staleness == 0), policy


@pytest.mark.parametrize("policy", ["whitelist-wait", "whitelist-queue"])
def test_whitelist_counts_never_differ_by_more_than_one(policy):
    spec = ClusterSpec(num_workers=6, compute=ComputeModel("lognormal", 1.0, 0.8),
                       speeds=straggler_speeds(6, 5.0), push=network(0.05, jitter=0.02))
    trace = simulate(spec, policy, 3000, seed=7)
    counts = np.zeros(6, dtype=int)
    for w in trace.applied_worker:
        counts[w] += 1
        assert counts.max() - counts.min() <= 1
    assert counts.sum() == 3000


def test_barrier_every_version_has_one_gradient_per_worker():
    spec = ClusterSpec(num_workers=4, compute=ComputeModel("exponential", 1.0), speeds=(1, 2, 3, 4))
    trace = simulate(spec, "barrier", 400, seed=2)
    assert trace.gradients_per_version == 4
    workers = trace.applied_worker.reshape(-1, 4)
    assert all(sorted(row) == [0, 1, 2, 3] for row in workers.tolist())
    assert np.all(trace.staleness == 0)
    versions = trace.version[trace.kind == APPLY].reshape(-1, 4)
    assert np.all(versions == np.arange(100)[:, None])


def test_buffered_version_advances_every_k():
    trace = simulate(ClusterSpec(num_workers=5, compute=ComputeModel("exponential")), "buffered:3", 30, seed=0)
    assert trace.version[trace.kind == APPLY].tolist() == [i // 3 for i in range(30)]


def test_fifo_faster_workers_apply_proportionally_more():
    speeds = (1.0, 2.0, 4.0)
    trace = simulate(ClusterSpec(num_workers=3, compute=ComputeModel("exponential"), speeds=speeds),
                     "fifo", 14000, seed=5)
    counts = np.bincount(trace.applied_worker, minlength=3)
    np.testing.assert_allclose(counts / counts.sum(), np.array(speeds) / sum(speeds), atol=0.01)


def test_server_service_time_bounds_throughput():
    # 4 workers, compute 1 s, server needs 0.5 s per update: the server is the bottleneck
    trace = simulate(ClusterSpec(num_workers=4, service_time=0.5), "fifo", 200, seed=0)
    rate = trace.num_updates / (trace.apply_time[-1] - trace.apply_time[0])
    assert rate == pytest.approx(2.0, rel=0.02)


def test_replayed_durations_are_cycled():
    spec = ClusterSpec(num_workers=1, compute=as_durations([1.0, 2.0, 3.0]))
    trace = simulate(spec, "fifo", 6, seed=0)
    np.testing.assert_allclose(trace.apply_time, [1, 3, 6, 7, 9, 12])


def test_failures_lose_in_flight_gradients_and_restart_with_a_pull():
    spec = ClusterSpec(num_workers=3, compute=ComputeModel("constant", 1.0),
                       failures=FailureModel(mean_time_to_failure=3.0, downtime=2.0))
    trace = simulate(spec, "fifo", 300, seed=11)
    pulls = np.bincount(trace.worker[trace.kind == PULL], minlength=3)
    pushes = np.bincount(trace.worker[trace.kind == PUSH], minlength=3)
    # every crash adds a pull (the restart) that follows no push
    assert np.all(pulls > pushes)
    assert trace.num_updates == 300
    assert np.all(trace.staleness >= 0)


def test_whitelist_survives_failures():
    spec = ClusterSpec(num_workers=4, failures=FailureModel(mean_time_to_failure=5.0, downtime=3.0))
    trace = simulate(spec, "whitelist-wait", 400, seed=1)
    assert trace.num_updates == 400


def test_same_seed_same_trace_and_different_seed_differs():
    spec = ClusterSpec(num_workers=5, compute=ComputeModel("lognormal", 1.0, 0.5), push=network(0.1, jitter=0.1))
    a = simulate(spec, "whitelist-queue", 500, seed=42)
    b = simulate(spec, "whitelist-queue", 500, seed=42)
    c = simulate(spec, "whitelist-queue", 500, seed=43)
    assert a == b
    assert not np.array_equal(a.time, c.time)


def test_same_trace_across_processes(tmp_path):
    code = ("from sim import *; t = simulate(ClusterSpec(num_workers=4, compute=ComputeModel('exponential')),"
            " 'fifo', 300, seed=9); t.save(r'{}')")
    for name in ("a.npz", "b.npz"):
        subprocess.run([sys.executable, "-c", code.format(tmp_path / name)], check=True)
    a, b = Trace.load(tmp_path / "a.npz"), Trace.load(tmp_path / "b.npz")
    assert a == b
    mine = simulate(ClusterSpec(num_workers=4, compute=ComputeModel("exponential")), "fifo", 300, seed=9)
    assert a == mine


def test_save_load_roundtrip_and_bad_files(tmp_path):
    trace = simulate(spec3(), "whitelist-wait", 30, seed=0)
    path = trace.save(tmp_path / "t.npz")
    loaded = Trace.load(path)
    assert loaded == trace
    assert loaded.staleness.tolist() == trace.staleness.tolist()
    with pytest.raises(TraceError, match="no such file"):
        Trace.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(TraceError, match="not a readable"):
        Trace.load(tmp_path / "junk.npz")
    truncated = tmp_path / "cut.npz"
    truncated.write_bytes(path.read_bytes()[:100])
    with pytest.raises(TraceError):
        Trace.load(truncated)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(TraceError, match="not a stalesim trace"):
        Trace.load(tmp_path / "other.npz")


def test_spec_survives_a_saved_trace(tmp_path):
    spec = ClusterSpec(num_workers=3, compute=as_durations([1.0, 2.0]), speeds=(1.0, 2.0, 3.0),
                       push=network(0.1, 1e6, 4e5, 0.01), service_time=0.2,
                       failures=FailureModel(5.0, 1.0))
    trace = simulate(spec, "fifo", 20, seed=1)
    loaded = Trace.load(trace.save(tmp_path / "t.npz"))
    assert ClusterSpec.from_dict(loaded.spec) == spec
    assert simulate(ClusterSpec.from_dict(loaded.spec), "fifo", 20, seed=1) == trace


def test_summary_fields():
    s = summarize(simulate(spec3(), "fifo", 30, seed=0))
    assert s["updates"] == 30 and s["max_staleness"] == 2
    assert s["updates_per_worker"] == [10, 10, 10]
    assert s["staleness_histogram"] == {0: 1, 1: 1, 2: 28}
    assert s["sim_time"] == 10.0


@pytest.mark.parametrize("kwargs, field", [
    (dict(num_workers=0), "workers"),
    (dict(num_workers=2, speeds=(1.0,)), "speeds"),
    (dict(num_workers=2, speeds=(1.0, -1.0)), "speeds"),
    (dict(num_workers=2, service_time=-1), "service_time"),
    (dict(num_workers=2, compute=None), "compute"),
])
def test_bad_specs_name_the_field(kwargs, field):
    with pytest.raises(SpecError, match=field):
        ClusterSpec(**kwargs)


def test_bad_models_and_policies():
    with pytest.raises(SpecError, match="compute"):
        ComputeModel("gamma")
    with pytest.raises(SpecError, match="compute.mean"):
        ComputeModel("constant", mean=float("nan"))
    with pytest.raises(SpecError, match="network.latency"):
        network(latency=-1)
    with pytest.raises(SpecError, match="policy"):
        simulate(spec3(), "lifo", 10)
    with pytest.raises(SpecError, match="buffered"):
        simulate(spec3(), "buffered:0", 10)
    with pytest.raises(SpecError, match="updates"):
        simulate(spec3(), "fifo", 0)
    with pytest.raises(SpecError, match="failures"):
        simulate(ClusterSpec(num_workers=2, failures=FailureModel(1.0)), "barrier", 10)


@pytest.mark.parametrize("policy", ["fifo", "whitelist-wait", "barrier", "buffered:3"])
def test_a_time_budget_stops_the_clock_and_keeps_the_prefix(policy):
    """With time_budget the trace is the prefix, up to the last gradient applied before the
    budget, of the trace without it: the budget stops the clock and changes nothing before."""
    spec = ClusterSpec(num_workers=5, compute=ComputeModel("exponential", 1.0, 0.5), speeds=straggler_speeds(5, 4.0))
    full = simulate(spec, policy, 600, seed=3)
    cut = simulate(spec, policy, 600, seed=3, time_budget=40.0)
    n = len(cut.kind)
    assert 0 < n < len(full.kind)
    for f in ("kind", "worker", "slot", "time", "version"):
        np.testing.assert_array_equal(getattr(cut, f), getattr(full, f)[:n])
    applied = full.time[full.kind == APPLY]
    assert cut.time[-1] == applied[applied <= 40.0][-1]  # ends at the last apply before the budget
    assert len(simulate(spec, policy, 10, seed=3, time_budget=1e9).kind) == len(simulate(spec, policy, 10, seed=3).kind)
