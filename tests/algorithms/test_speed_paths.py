"""The speed paths give the same numbers as the plain ones, bit for bit: compiled loops reused
across traces, the padded op table and ring, the rule cache, batched evaluation, ``--jobs``."""

import json
import os
from dataclasses import replace
from pathlib import Path

import jax
import numpy as np
import pytest

from algorithms import asgd, compile_schedule, dcasgd, gsgm, replay
from algorithms import engine as engine_module
from algorithms.engine import Program, engine_for, padded_length
from algorithms.schedule import Column, Variant, ring_rows, ring_size, schedule_for
from sim import ClusterSpec, ComputeModel, simulate

from tests.algorithms import toy

DATA = toy.make_data()
PROBLEM = toy.problem(DATA, toy.make_eval(DATA))


def assert_same(a, b):
    np.testing.assert_array_equal(a.loss, b.loss)
    np.testing.assert_array_equal(a.accuracy, b.accuracy)
    np.testing.assert_array_equal(a.update, b.update)
    for x, y in zip(jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params)):
        np.testing.assert_array_equal(x, y)


def trace_of(policy, updates, seed=0, workers=4):
    return simulate(ClusterSpec(num_workers=workers, compute=ComputeModel("exponential")), policy, updates, seed=seed)


def test_op_table_is_padded_to_a_bucket():
    assert padded_length(1) == padded_length(4096) == 4096 and padded_length(4097) == 8192
    schedule = compile_schedule(trace_of("fifo", 50))
    program = Program.of(schedule)
    m = len(schedule.ops)
    assert program.ops.shape == (padded_length(m), schedule.ops.shape[1])
    np.testing.assert_array_equal(np.asarray(program.ops)[:m], schedule.ops)
    # the last FIFO op applies without a pull; it also pulls, into its own row, so that it
    # runs with the ops before it (nothing reads the store afterwards)
    assert schedule.variant[-1] == schedule.variant[-2] == Variant.APPLY | Variant.DEFERRED | Variant.PULL
    assert schedule.ops[-1, Column.PULL_ROW] == schedule.ops[-1, Column.APPLY_ROW] >= 0
    assert program.run_end.tolist() == [4, m]  # the 4 first pulls, then one run of "apply, pull"


@pytest.mark.parametrize("policy, rule", [("fifo", asgd(0.2, momentum=0.9)), ("whitelist-wait", gsgm(0.2)),
                                          ("whitelist-queue", dcasgd(0.2))])
def test_padded_ops_equal_unpadded(policy, rule, monkeypatch):
    trace = trace_of(policy, 60)
    padded = replay(trace, rule, PROBLEM, eval_every=10, mode="scan", keep_params=True)
    monkeypatch.setattr(engine_module, "OPS_BUCKET", 1)  # the table as long as the trace
    unpadded = replay(trace, rule, PROBLEM, eval_every=10, mode="scan", keep_params=True)
    assert_same(padded, unpadded)


def test_bucketed_ring_equals_the_smallest_ring():
    trace = trace_of("whitelist-wait", 80, workers=6)
    needed = ring_size(trace)
    bucketed = schedule_for(trace, toy.init_params(), "ring")
    assert bucketed.num_rows == ring_rows(needed, 6) >= needed
    smallest = compile_schedule(trace, "ring")
    assert smallest.num_rows == needed
    rule = gsgm(0.2)
    assert_same(replay(bucketed, rule, PROBLEM, eval_every=10, mode="scan", keep_params=True),
                replay(smallest, rule, PROBLEM, eval_every=10, mode="scan", keep_params=True))


def test_ring_rows():
    assert ring_rows(18, 10) == ring_rows(19, 10) == 20  # 10 workers: seeds needing 18 or 19 share 20
    assert ring_rows(20, 10) == 20 and ring_rows(21, 10) == 21  # never above 2N unless needed
    assert ring_rows(150, 100) == 150 and ring_rows(151, 100) == 200
    assert ring_rows(16, 10, row_bytes=(1 << 30) // 17) == 17  # nor above the ring's memory budget


def test_chunked_calls_equal_one_call():
    trace = trace_of("fifo", 70)
    rule = asgd(0.1)
    whole = replay(trace, rule, PROBLEM, eval_every=25, mode="scan", keep_params=True)
    chunked = replay(trace, rule, PROBLEM, eval_every=25, mode="scan", chunk=8, keep_params=True)
    assert_same(whole, chunked)


def test_one_compilation_serves_traces_of_one_shape():
    rule = asgd(0.1)
    first = replay(trace_of("fifo", 60, seed=0), rule, PROBLEM, eval_every=20, mode="scan", keep_params=True)
    replay(trace_of("fifo", 75, seed=1), rule, PROBLEM, eval_every=15, mode="scan")  # other length, other evals
    engine = engine_for(rule, PROBLEM.loss_fn, PROBLEM.batch_fn, False)
    assert engine.scans and all(f._cache_size() == 1 for f in engine.scans.values())
    again = replay(trace_of("fifo", 60, seed=0), rule, PROBLEM, eval_every=20, mode="scan", keep_params=True)
    assert_same(first, again)


def test_rule_cache_gives_one_rule_per_configuration_and_identical_histories():
    from scenarios.experiments.catalogue import EXPERIMENTS
    from scenarios.experiments.execute import rule_for

    cfg = EXPERIMENTS["synthetic"].config.validate()
    rule = rule_for("gsgm", "momentum", cfg)
    assert rule_for("gsgm", "momentum", cfg) is rule
    assert rule_for("gsgm", "sgd", cfg) is not rule
    assert rule_for("gsgm", "momentum", replace(cfg, lr_momentum=0.02).validate()) is not rule
    assert rule_for("gsgm", "momentum", replace(cfg, gsgm_k=1).validate()) is not rule
    assert rule_for("gsgm", "momentum", replace(cfg, updates=123).validate()) is rule  # not the rule's business
    trace = trace_of("whitelist-wait", 60)
    cached = [replay(trace, rule, PROBLEM, eval_every=20, mode="scan", seed=s, keep_params=True) for s in (0, 1)]
    from algorithms import registry
    from algorithms.declaration import Base

    for seed, h in zip((0, 1), cached):
        fresh = registry.get("gsgm").rule(Base("momentum", cfg.learning_rate("momentum"), cfg.momentum),
                                          cfg.workers, cfg.to_dict())
        assert_same(h, replay(trace, fresh, PROBLEM, eval_every=20, mode="scan", seed=seed, keep_params=True))


def test_batched_evaluation_equals_one_chunk_at_a_time():
    import jax.numpy as jnp
    import optax

    from scenarios.experiments.catalogue import EXPERIMENTS
    from scenarios.workloads.workload import dataset, workload

    cfg = replace(EXPERIMENTS["synthetic"].config, eval_samples=0).validate()
    wl = workload(cfg)
    ds = dataset(cfg.dataset)
    params = wl.model.init(jax.random.PRNGKey(3))
    x_all, y_all = jnp.asarray(ds.x_test), jnp.asarray(ds.y_test)
    loss, correct, n = 0.0, 0, len(ds.y_test)
    for i in range(0, n, 1000):  # the loop evaluation used before: one chunk, one sync at a time
        logits = wl.model.apply(params, x_all[i:i + 1000])
        loss += float(optax.softmax_cross_entropy_with_integer_labels(logits, y_all[i:i + 1000]).sum())
        correct += int((logits.argmax(-1) == y_all[i:i + 1000]).sum())
    got = wl.eval_fn(params)
    assert got["accuracy"] == correct / n
    np.testing.assert_allclose(got["loss"], loss / n, rtol=1e-6)


def _histories(out):
    runs = {}
    for path in sorted(out.glob("runs/*/result.json")):
        r = json.loads(path.read_text())
        runs[r["run"]] = r["history"]
    return runs


def test_jobs_two_equals_jobs_one_and_the_compilation_cache_changes_nothing(tmp_path, monkeypatch):
    from jax._src import compilation_cache

    from scenarios.cli import main
    from scenarios.experiments.workers import COMPILATION_CACHE_ENV, use_compilation_cache

    monkeypatch.delenv(COMPILATION_CACHE_ENV, raising=False)
    assert use_compilation_cache() is None  # opt-in: nothing without the variable
    grid = ["--algorithms", "asgd,gsgm", "--base", "sgd,momentum", "--seeds", "2", "--updates", "60",
            "--set", "eval_every=20"]
    assert main(["run", "synthetic", *grid, "--jobs", "1", "--out", str(tmp_path / "one")]) == 0
    cache = tmp_path / "cache"
    monkeypatch.setenv(COMPILATION_CACHE_ENV, str(cache))
    try:  # two processes, each given whole groups of runs (one per algorithm and base), sharing a cache
        assert main(["run", "synthetic", *grid, "--jobs", "2", "--out", str(tmp_path / "two")]) == 0
    finally:  # this process used the cache too: back to none
        jax.config.update("jax_compilation_cache_dir", None)
        compilation_cache.reset_cache()
    one, two = _histories(tmp_path / "one"), _histories(tmp_path / "two")
    assert len(one) == 8 and one == two
    assert any(cache.iterdir())


def test_runs_are_grouped_by_what_they_compile():
    """A learning rate is a value of the optimizer's state, not of the program: a cell's
    rates share a group; any other field (here the workers) makes another program."""
    from scenarios.experiments.catalogue import EXPERIMENTS, grid
    from scenarios.experiments.pool import compile_groups, program

    cfg = EXPERIMENTS["synthetic"].config.validate()
    rates = [cfg, replace(cfg, lr_sgd=0.2).validate()]
    runs = grid(rates, ["asgd", "gsgm"], ["sgd"], 3) + grid([replace(cfg, workers=6).validate()], ["asgd"], ["sgd"], 2)
    groups = compile_groups(runs)
    assert [len(g) for g in groups] == [6, 6, 2]
    assert all(len({program(r) for r in g}) == 1 for g in groups)
    assert [{r.config.lr_sgd for r in g} for g in groups[:2]] == [{cfg.lr_sgd, 0.2}] * 2
    assert [r for g in groups for r in g] == sorted(runs, key=lambda r: [program(g[0]) for g in groups].index(
        program(r)))  # each group in the grid's order


def test_tasks_cut_each_group_into_small_chunks_and_keep_workload_shapes_together():
    from scenarios.experiments.catalogue import EXPERIMENTS, grid
    from scenarios.experiments.pool import TASK_RUNS, compile_groups, tasks
    from scenarios.workloads.workload import shape

    cfg = EXPERIMENTS["synthetic"].config.validate()
    ten, twenty = cfg, replace(cfg, workers=20).validate()
    runs = [r for pair in zip(grid([ten], ["asgd"], ["sgd"], 5), grid([twenty], ["asgd"], ["sgd"], 5)) for r in pair]
    runs += grid([ten], ["gsgm"], ["sgd"], 1)  # shapes alternate in the input: 10, 20, 10, 20, ..., then 10
    chunks = tasks(runs)
    assert sorted((r.key for c in chunks for r in c)) == sorted(r.key for r in runs)  # every run, once
    assert [len(c) for c in chunks] == [2, 2, 1, 1, 2, 2, 1]  # 5 seeds: 2 + 2 + 1; a lone run alone
    assert all(len(c) <= TASK_RUNS for c in chunks)
    assert all(len({(r.algorithm, r.base, r.config) for r in c}) == 1 for c in chunks)  # one compiled replay each
    shapes = [shape(c[0].config) for c in chunks]
    assert shapes == sorted(shapes, key=shapes.index)  # each shape's chunks next to each other
    assert [r for c in chunks for r in c if r.config == twenty] == compile_groups(runs)[1]  # seeds in order


def test_kept_workers_serve_every_batch_of_the_block_then_stop():
    from scenarios.experiments import workers

    with workers.kept_workers():
        with workers.workers(2) as first:
            pass
        with workers.workers(2) as again, workers.workers(1) as fewer:
            assert again is first and fewer is first  # started once, kept between batches
        with workers.kept_workers():  # blocks nest: the inner one neither starts nor stops them
            with workers.workers(2) as inner:
                assert inner is first
        assert workers._KEPT["pool"] is first
        with workers.workers(3) as more:  # a batch asking for more processes gets a new set
            assert more is not first
    assert "pool" not in workers._KEPT and workers._KEPT["depth"] == 0
    with workers.workers(2) as alone, workers.workers(2) as other:  # outside a block: one set per batch
        assert alone is not other


def test_jobs_auto_uses_one_process_per_core_for_enough_work(monkeypatch):
    from scenarios.experiments import pool as runner
    from scenarios.experiments.catalogue import EXPERIMENTS, grid

    cfg = EXPERIMENTS["synthetic"].config.validate()
    big = replace(cfg, updates=runner.AUTO_MIN_UPDATES).validate()
    runs = grid([big], ["asgd", "gsgm", "dcasgd-a"], ["sgd"], 2)  # 3 groups of 2 runs
    monkeypatch.setattr(runner, "cores", lambda: 2)
    assert runner.processes_for("auto", runs) == 2
    monkeypatch.setattr(runner, "cores", lambda: 16)
    assert runner.processes_for("auto", runs) == 3  # at most one per task (here one per group of runs)
    small = grid([replace(cfg, updates=100).validate()], ["asgd", "gsgm"], ["sgd"], 3)
    assert runner.processes_for("auto", small) == 1  # not worth starting processes
    assert runner.processes_for(4, small) == 4 and runner.processes_for(8, small) == 6  # a number is kept
    monkeypatch.setattr(runner, "accelerator", lambda: True)
    assert runner.processes_for("auto", runs) == 1  # one process holds the GPU
    assert runner.processes_for(2, runs) == 2  # unless asked
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert f"fewer than {runner.AUTO_MIN_UPDATES:,} applied" in readme.replace("\n  ", " ")


def test_jobs_auto_and_bad_jobs_on_the_command_line(tmp_path, capsys):
    from scenarios.cli import main

    tiny = ["--algorithms", "asgd", "--base", "sgd", "--seeds", "1", "--updates", "20", "--set", "eval_every=10"]
    assert main(["run", "synthetic", *tiny, "--jobs", "auto", "--out", str(tmp_path / "a")]) == 0
    assert "(in process)" in capsys.readouterr().out
    assert main(["run", "synthetic", *tiny, "--jobs", "many", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "stalesim: error: --jobs: must be 'auto' or an integer >= 1, got 'many'"
    assert not (tmp_path / "b").exists()


def test_a_commands_worker_processes_share_its_compilation_cache_by_default(tmp_path, monkeypatch):
    from scenarios.cli import main
    from scenarios.experiments.workers import COMPILATION_CACHE_ENV, command_cache

    monkeypatch.delenv(COMPILATION_CACHE_ENV, raising=False)
    before = jax.config.jax_compilation_cache_dir
    grid = ["--algorithms", "asgd,gsgm", "--base", "sgd", "--seeds", "1", "--updates", "40", "--set", "eval_every=20"]
    assert main(["run", "synthetic", *grid, "--jobs", "2", "--out", str(tmp_path / "two")]) == 0
    folder = Path(command_cache())
    assert folder.name.startswith("stalesim-jax-cache-") and any(folder.iterdir())  # the workers wrote to it
    assert jax.config.jax_compilation_cache_dir == before  # this process's own settings are left alone
    assert COMPILATION_CACHE_ENV not in os.environ
