"""The replay engine: exact equivalences, determinism, multi-seed, faults."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import json
import os
import subprocess
import sys
from pathlib import Path

import sim
from algorithms import ReplayError, asgd, compile_schedule, dcasgd, gsgm, replay, replay_seeds, ssgd
from algorithms.schedule import choose_storage, ring_size
from sim import ClusterSpec, ComputeModel, FailureModel, simulate

from tests.algorithms import toy

DATA = toy.make_data()
EVAL = toy.make_eval(DATA)
PROBLEM = toy.problem(DATA, EVAL)


def run(trace, rule, seed=0, **kw):
    kw.setdefault("eval_every", 10)
    return replay(trace, rule, PROBLEM, seed=seed, keep_params=True, **kw)


def assert_trees_equal(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(x, y)


def assert_trees_close(a, b, rtol=1e-5, atol=1e-6):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def sequential_sgd(lr, steps, seed=0, worker=0):
    opt = optax.sgd(lr)
    params = toy.init_params()
    state = opt.init(params)

    @jax.jit
    def train_step(params, state, step):
        grad = jax.grad(toy.loss_fn)(params, toy.batch_fn(DATA, seed, worker, step))
        updates, state = opt.update(grad, state, params)
        return optax.apply_updates(params, updates), state

    for step in range(steps):
        params, state = train_step(params, state, jnp.int32(step))
    return params


def _modules_after(statement):
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    return set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())


def test_sim_does_not_import_jax():
    assert "jax" not in _modules_after("import sim")


def test_algorithms_imports_sims_trace_contract():
    modules = _modules_after("import algorithms; from algorithms import *; "
                             "import algorithms.engine, algorithms.history, algorithms.replaying, algorithms.schedule")
    assert "jax" in modules and {"sim.events", "sim.checks"} <= modules  # what else of sim: tests/test_layout.py


@pytest.mark.parametrize("mode", ["loop", "scan"])
def test_one_worker_asgd_is_sequential_sgd(mode):
    trace = simulate(ClusterSpec(num_workers=1, compute=ComputeModel("exponential")), "fifo", 50, seed=0)
    h = run(trace, asgd(0.3), mode=mode, chunk=8)
    assert np.all(h.staleness == 0)
    assert_trees_close(h.params, sequential_sgd(0.3, 50), rtol=1e-6, atol=1e-7)


def test_ssgd_on_barrier_is_sgd_on_the_mean_gradient():
    n, steps, lr = 3, 5, 0.5
    trace = simulate(ClusterSpec(num_workers=n, compute=ComputeModel("exponential")), "barrier", n * steps, seed=1)
    h = run(trace, ssgd(lr))
    params = toy.init_params()
    for t in range(steps):
        grads = [jax.grad(toy.loss_fn)(params, toy.batch_fn(DATA, 0, w, t)) for w in range(n)]
        mean = jax.tree_util.tree_map(lambda *g: sum(g) / n, *grads)
        params = jax.tree_util.tree_map(lambda p, g: p - lr * g, params, mean)
    assert_trees_close(h.params, params)


def test_fifo_replay_matches_a_hand_written_event_loop():
    """An independent oracle: walk the trace event by event in plain Python."""
    trace = simulate(ClusterSpec(num_workers=3, compute=ComputeModel("exponential")), "whitelist-queue", 40, seed=2)
    rule = dcasgd(0.2, adaptive=True)
    h = run(trace, rule, mode="loop")
    params = toy.init_params()
    state = rule.init(params, 3)
    snapshots, pending, steps = {}, {}, [0, 0, 0]
    for k, w, s, v in zip(trace.kind, trace.worker, trace.slot, trace.version):
        if k == sim.PULL:
            snapshots[w] = params
        elif k == sim.PUSH:
            g = jax.grad(toy.loss_fn)(snapshots[w], toy.batch_fn(DATA, 0, w, steps[w]))
            pending[s] = (g, snapshots[w], w)
            steps[w] += 1
        else:
            g, backup, worker = pending.pop(s)
            params, state = rule.update(state, params, g, worker=worker, staleness=0, backup=backup)
    assert_trees_close(h.params, params)


def test_queue_policy_needs_slots_fifo_does_not():
    spec = ClusterSpec(num_workers=4, compute=ComputeModel("exponential"), speeds=(1, 1, 1, 4))
    assert not compile_schedule(simulate(spec, "fifo", 100, seed=0)).needs_slots
    assert not compile_schedule(simulate(spec, "whitelist-wait", 100, seed=0)).needs_slots
    assert compile_schedule(simulate(spec, "whitelist-queue", 100, seed=0)).needs_slots


def staleness_oracle(trace):
    """Written apart from ``sim.events.walk``: each worker's read version, carried to its slot."""
    read_now, slot_read, out = {}, {}, []
    for k, w, s, v in zip(trace.kind.tolist(), trace.worker.tolist(), trace.slot.tolist(), trace.version.tolist()):
        if k == sim.PULL:
            read_now[w] = v
        elif k == sim.PUSH:
            slot_read[s] = read_now[w]
        else:
            out.append(v - slot_read[s])
    return out


@pytest.mark.parametrize("storage", ["snapshots", "ring"])
def test_schedule_staleness_matches_trace(storage):
    trace = simulate(ClusterSpec(num_workers=5, compute=ComputeModel("lognormal")), "whitelist-queue", 300, seed=4)
    schedule = compile_schedule(trace, storage)
    assert schedule.staleness.tolist() == trace.staleness.tolist() == staleness_oracle(trace)
    np.testing.assert_array_equal(schedule.applied_worker, trace.applied_worker)


@pytest.mark.parametrize("policy, rule", [("fifo", asgd(0.2, momentum=0.9)), ("whitelist-wait", gsgm(0.2)),
                                          ("whitelist-queue", dcasgd(0.2))])
def test_jit_equals_no_jit(policy, rule):
    trace = simulate(ClusterSpec(num_workers=3, compute=ComputeModel("exponential")), policy, 12, seed=0)
    a = run(trace, rule, eval_every=4)
    with jax.disable_jit():
        b = run(trace, rule, eval_every=4)
    assert_trees_close(a.params, b.params)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-5)


def test_scan_equals_loop():
    trace = simulate(ClusterSpec(num_workers=4, compute=ComputeModel("exponential")), "fifo", 100, seed=0)
    a = run(trace, gsgm(0.2), mode="loop")
    b = run(trace, gsgm(0.2), mode="scan", chunk=16)
    assert_trees_close(a.params, b.params)
    np.testing.assert_array_equal(a.update, b.update)


def test_same_trace_and_seed_give_identical_histories():
    trace = simulate(ClusterSpec(num_workers=4, compute=ComputeModel("exponential")), "whitelist-wait", 80, seed=0)
    a, b = run(trace, gsgm(0.2), seed=5), run(trace, gsgm(0.2), seed=5)
    np.testing.assert_array_equal(a.loss, b.loss)
    np.testing.assert_array_equal(a.accuracy, b.accuracy)
    assert_trees_equal(a.params, b.params)
    c = run(trace, gsgm(0.2), seed=6)
    assert not np.array_equal(a.loss, c.loss)


@pytest.mark.parametrize("vmap", [True, False])
def test_multi_seed_call_equals_single_seed_calls(vmap):
    trace = simulate(ClusterSpec(num_workers=3, compute=ComputeModel("exponential")), "fifo", 60, seed=0)
    rule = asgd(0.2)
    seeds = [0, 1, 2]
    params0 = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *[toy.init_params(s) for s in seeds])
    many = replay_seeds(trace, rule, toy.problem(DATA, EVAL, params0), eval_every=20, seeds=seeds, vmap=vmap,
                        keep_params=True)
    for s, h in zip(seeds, many):
        one = replay(trace, rule, toy.problem(DATA, EVAL, toy.init_params(s)), eval_every=20, seed=s,
                     keep_params=True)
        if vmap:
            assert_trees_close(h.params, one.params)
            np.testing.assert_allclose(h.loss, one.loss, rtol=1e-5)
        else:
            assert_trees_equal(h.params, one.params)
            np.testing.assert_array_equal(h.loss, one.loss)


def test_history_records_evaluations():
    trace = simulate(ClusterSpec(num_workers=2), "fifo", 25, seed=0)
    h = run(trace, asgd(0.2), eval_every=10)
    assert h.update.tolist() == [0, 10, 20, 25]
    assert h.sim_time[0] == 0 and h.sim_time[-1] == trace.apply_time[-1]
    assert len(h.staleness) == 25 and not h.diverged
    records = h.to_records()
    assert set(records[0]) == {"update", "sim_time", "loss", "accuracy"}


def test_divergence_is_recorded_not_raised():
    trace = simulate(ClusterSpec(num_workers=2), "fifo", 200, seed=0)
    def exploding_loss(params, batch):  # a quadratic whose SGD step with lr 1 multiplies w by -19
        return 10.0 * sum(jnp.sum(p ** 2) for p in jax.tree_util.tree_leaves(params))

    def exploding_eval(params):
        return {"loss": exploding_loss(params, None), "accuracy": EVAL(params)["accuracy"]}

    h = replay(trace, asgd(1.0), PROBLEM._replace(loss_fn=exploding_loss, eval_fn=exploding_eval), eval_every=10)
    assert h.diverged and h.diverged_at is not None and h.diverged_at <= 200
    assert np.all(np.isfinite(h.loss))
    assert h.update[-1] < h.diverged_at


def test_rule_and_policy_must_fit():
    trace = simulate(ClusterSpec(num_workers=3), "fifo", 9, seed=0)
    with pytest.raises(ReplayError, match="barrier with ssgd"):
        run(trace, ssgd(0.1))
    with pytest.raises(ReplayError, match="eval_every"):
        run(trace, asgd(0.1), eval_every=0)
    with pytest.raises(ReplayError, match="mode"):
        run(trace, asgd(0.1), mode="fast")
    with pytest.raises(ReplayError, match="problem"):
        replay(trace, asgd(0.1), toy.loss_fn, eval_every=10)


def test_crash_loses_in_flight_gradient_and_restart_pulls_fresh_parameters():
    """Hand-built trace: worker 1 crashes mid-computation (no push), restarts with a pull."""
    P, U, A = sim.PULL, sim.PUSH, sim.APPLY
    trace = {
        "kind":    [P, P, U, A, P, U, A, P, P, U, A],
        "worker":  [0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1],
        "slot":    [-1, -1, 0, 0, -1, 0, 0, -1, -1, 0, 0],
        "time":    [0, 0, 1, 1, 1, 2, 2, 2, 2.5, 3.5, 3.5],
        "version": [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2],
        "num_workers": 2, "num_slots": 1,
    }
    h = run(trace, asgd(0.5), eval_every=100)
    assert h.staleness.tolist() == [0, 0, 0]
    assert h.worker.tolist() == [0, 0, 1]
    # oracle: worker 1's only gradient is its step 0, computed on the parameters after two updates
    params = toy.init_params()
    grad = lambda p, w, t: jax.grad(toy.loss_fn)(p, toy.batch_fn(DATA, 0, w, t))
    for t in range(2):
        params = jax.tree_util.tree_map(lambda p, g: p - 0.5 * g, params, grad(params, 0, t))
    params = jax.tree_util.tree_map(lambda p, g: p - 0.5 * g, params, grad(params, 1, 0))
    assert_trees_close(h.params, params)


def test_simulated_failures_flow_through_replay():
    spec = ClusterSpec(num_workers=3, failures=FailureModel(mean_time_to_failure=2.0, downtime=1.0))
    trace = simulate(spec, "fifo", 60, seed=3)
    pushes = int(np.sum(trace.kind == sim.PUSH))
    assert pushes == trace.num_updates  # lost gradients were never pushed, hence never applied
    h = run(trace, asgd(0.2), eval_every=20)
    np.testing.assert_array_equal(h.staleness, trace.staleness)
    assert h.updates_replayed == 60


@pytest.mark.parametrize("policy, rule", [("fifo", dcasgd(0.2, adaptive=True)), ("whitelist-wait", gsgm(0.2)),
                                          ("whitelist-queue", dcasgd(0.2)), ("barrier", ssgd(0.3)),
                                          ("buffered:2", None)])
@pytest.mark.parametrize("mode", ["loop", "scan"])
def test_ring_storage_gives_the_same_numbers_as_snapshots(policy, rule, mode):
    from algorithms import buffered

    rule = rule or buffered(0.3, buffer_size=2)
    spec = ClusterSpec(num_workers=4, compute=ComputeModel("exponential"), speeds=(1, 1, 2, 4),
                       failures=FailureModel(mean_time_to_failure=6.0, downtime=1.0) if policy != "barrier"
                       else FailureModel())
    trace = simulate(spec, policy, 60, seed=3)
    ring = compile_schedule(trace, "ring")
    assert ring.num_rows == ring_size(trace) and not ring.needs_slots
    assert len(set(ring.variant.tolist())) == 1  # one kind of op: always scannable
    np.testing.assert_array_equal(ring.staleness, trace.staleness)
    a = run(trace, rule, storage="snapshots", mode=mode, chunk=8)
    b = run(trace, rule, storage="ring", mode=mode, chunk=8)
    assert_trees_close(a.params, b.params, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-6)


def test_auto_storage_prefers_the_ring_only_when_it_is_small():
    params = toy.init_params()
    n = 4
    fair = simulate(ClusterSpec(num_workers=n), "whitelist-wait", 40, seed=0)  # staleness <= n - 1
    assert choose_storage(fair, params) == "ring"
    skewed = simulate(ClusterSpec(num_workers=n, speeds=(1, 1, 1, 50)), "fifo", 400, seed=0)
    assert ring_size(skewed) > 2 * n
    assert choose_storage(skewed, params) == "snapshots"
    with pytest.raises(ReplayError, match="storage"):
        choose_storage(fair, params, "disk")


@pytest.mark.parametrize("policy", ["whitelist-queue", "buffered:3"])
@pytest.mark.parametrize("storage", ["snapshots", "ring"])
def test_versions_are_counted_when_a_trace_does_not_record_them(policy, storage):
    trace = simulate(ClusterSpec(num_workers=4, compute=ComputeModel("exponential")), policy, 90, seed=2)
    arrays = trace.arrays()
    del arrays["version"]
    np.testing.assert_array_equal(compile_schedule(arrays, storage).staleness, trace.staleness)


# ---------------------------------------------------------------- the learning rate as a value of the state
REGISTERED = [("asgd", "sgd"), ("asgd", "momentum"), ("asgd-server", "adam"), ("dcasgd-a", "adam"),
              ("gsgm", "sgd"), ("gsgm", "momentum"), ("fedbuff", "sgd")]


def _registered(algorithm, base, lr, workers=4, **values):
    from algorithms import Base, registry
    a = registry.get(algorithm)
    return a.rule(Base(base, lr), workers, {**{h.name: h.default for h in a.hyperparameters}, **values})


def _policy(algorithm):
    from algorithms import registry
    policy = registry.get(algorithm).policy_for({"gsgm_policy": "whitelist-wait", "fedbuff_buffer_size": 2})
    return policy


@pytest.mark.parametrize("algorithm, base", REGISTERED)
def test_the_replay_program_does_not_depend_on_the_learning_rate(algorithm, base):
    """A registered rule's compiled replay is one program for every learning rate: the rate
    is a value of the optimizer's state, so a cell's candidates compile once."""
    from algorithms.engine import Engine, Program
    from algorithms.schedule import schedule_for

    trace = simulate(ClusterSpec(num_workers=4, compute=ComputeModel("exponential")), _policy(algorithm), 40, seed=0)
    schedule = schedule_for(trace, PROBLEM.params0, "auto")
    program = Program.of(schedule)
    texts = []
    for lr in (0.01, 0.3):
        rule = _registered(algorithm, base, lr)
        engine = Engine(rule, toy.loss_fn, toy.batch_fn, vmapped=False)
        carry = engine.init_carry(schedule, PROBLEM.params0)
        variant = int(schedule.variant[-1])
        lowered = engine.scan(schedule.storage, variant).lower(carry, 0, 1, jnp.int32(0), program.ops, DATA)
        texts.append(lowered.as_text(debug_info=False))
    assert texts[0] == texts[1]


@pytest.mark.parametrize("lr", [0.05, 0.3])
@pytest.mark.parametrize("base, constant", [("sgd", lambda lr: optax.sgd(lr)),
                                            ("momentum", lambda lr: optax.sgd(lr, 0.9)),
                                            ("adam", lambda lr: optax.adam(lr))])
def test_a_rate_held_in_the_state_steps_exactly_as_a_constant_rate(base, constant, lr):
    """Bit for bit: ASGD (server) on ``Base(...).optimizer()`` against the same rule on optax's
    optimizer with the rate a constant, over a whole replay (and so different rates differ)."""
    from algorithms import Base
    trace = simulate(ClusterSpec(num_workers=4, compute=ComputeModel("exponential")), "fifo", 60, seed=1)
    held = run(trace, asgd(base=Base(base, lr).optimizer(), optimizer_state="server"), seed=2)
    fixed = run(trace, asgd(base=constant(lr), optimizer_state="server"), seed=2)
    np.testing.assert_array_equal(held.loss, fixed.loss)
    assert_trees_equal(held.params, fixed.params)


@pytest.mark.parametrize("beta", [0.9, 0.5, 0.0])
def test_registered_gsgm_on_sgd_is_the_library_rule_bit_for_bit(beta):
    """The registered GSGM on plain SGD (its rate in the state) is ``gsgm(lr, momentum=beta)``:
    SGD at lr (1 - beta) with heavy-ball momentum beta, the step a constant."""
    trace = simulate(ClusterSpec(num_workers=4, compute=ComputeModel("exponential")), "whitelist-wait", 60, seed=3)
    registered = run(trace, _registered("gsgm", "sgd", 0.2, gsgm_momentum=beta, gsgm_k=2), seed=4)
    library = run(trace, gsgm(0.2, momentum=beta, k=2), seed=4)
    np.testing.assert_array_equal(registered.loss, library.loss)
    assert_trees_equal(registered.params, library.params)


_TWO_RATES = """
import json, sys
import jax.monitoring
sys.path.insert(0, {root!r})
from scenarios.experiments.workers import use_compilation_cache
from sim import ClusterSpec, ComputeModel, simulate
from tests.algorithms import test_replay as t

use_compilation_cache()  # the folder in $STALESIM_COMPILATION_CACHE
misses = []
jax.monitoring.register_event_listener(lambda e, **kw: misses.append(e) if e.endswith("/cache_misses") else None)
trace = simulate(ClusterSpec(num_workers=4, compute=ComputeModel("exponential")), "fifo", 60, seed=1)
losses, new_programs = [], []
for lr in {rates}:
    before = len(misses)
    losses.append(t.run(trace, t._registered("asgd", "momentum", lr)).loss.tolist())
    new_programs.append(len(misses) - before)
print(json.dumps([losses, new_programs]))
"""


def test_one_compiled_replay_serves_two_rates_and_each_run_keeps_its_own(tmp_path):
    """Two rates in one process with the compilation cache on: the second compiles nothing
    new (its replay loads the first's programs), and each run's numbers equal those of its
    rate replayed alone in a fresh process."""
    root = str(Path(__file__).resolve().parents[2])

    def replays(rates, cache):
        env = {**os.environ, "STALESIM_COMPILATION_CACHE": str(tmp_path / cache)}
        out = subprocess.run([sys.executable, "-c", _TWO_RATES.format(root=root, rates=rates)], env=env,
                             capture_output=True, text=True, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    (first, second), (compiled_first, compiled_second) = replays([0.05, 0.2], "shared")
    assert compiled_first > 0 and compiled_second == 0
    assert first == replays([0.05], "alone-1")[0][0] and second == replays([0.2], "alone-2")[0][0]
    assert first != second


# ---------------------------------------------------------------- evaluating only the last points (tuning runs)
def test_evaluate_last_records_the_start_and_the_last_evaluations_exactly():
    trace = simulate(ClusterSpec(num_workers=4, compute=ComputeModel("exponential")), "fifo", 200, seed=0)
    full = run(trace, gsgm(0.2), seed=3)
    last = run(trace, gsgm(0.2), seed=3, evaluate_last=3)
    assert len(full.update) == 21 and last.update.tolist() == [0] + full.update[-3:].tolist()
    np.testing.assert_array_equal(last.loss, np.r_[full.loss[:1], full.loss[-3:]])
    np.testing.assert_array_equal(last.accuracy, np.r_[full.accuracy[:1], full.accuracy[-3:]])
    assert_trees_equal(last.params, full.params)  # evaluating changes nothing in the training
    assert run(trace, gsgm(0.2), seed=3, evaluate_last=50).update.tolist() == full.update.tolist()


def test_evaluate_last_stops_a_run_where_its_parameters_stop_being_finite():
    """The oracle: a full replay whose "evaluation" is whether the parameters are finite."""
    trace = simulate(ClusterSpec(num_workers=2), "fifo", 400, seed=0)

    def exploding_loss(params, batch):  # SGD at lr 1 multiplies w by -19 per step: inf, then nan
        return 10.0 * sum(jnp.sum(p ** 2) for p in jax.tree_util.tree_leaves(params))

    def finite(params):
        ok = all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree_util.tree_leaves(params))
        return {"loss": 0.0 if ok else float("nan"), "accuracy": 0.0}

    oracle = replay(trace, asgd(1.0), PROBLEM._replace(loss_fn=exploding_loss, eval_fn=finite), eval_every=10)
    last = replay(trace, asgd(1.0), PROBLEM._replace(loss_fn=exploding_loss), eval_every=10, evaluate_last=2)
    assert oracle.diverged and last.diverged and last.diverged_at == oracle.diverged_at < 400
    assert last.update.tolist() == [0]  # stopped before its last two points


def test_evaluate_last_must_be_a_positive_integer():
    trace = simulate(ClusterSpec(num_workers=2), "fifo", 20, seed=0)
    with pytest.raises(ReplayError, match="evaluate_last: must be None or an integer >= 1, got 0"):
        run(trace, asgd(0.1), evaluate_last=0)
