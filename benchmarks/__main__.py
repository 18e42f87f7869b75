"""stalesim's overhead, as ratios taken in one process against a reference.

    python -m benchmarks [--quick] [--out benchmarks/results.json] [--only NAME ...]

Benchmarks (see benchmarks/README.md for the figures measured and what bounds them):

1. replay: applied updates/s of ASGD, DC-ASGD and GSGM replays (10 and 100 workers)
   over steps/s of a plain jitted ``optax.sgd`` loop on the same model, batch size and
   data (MLP and small CNN, Fashion-MNIST-shaped inputs 28x28x1, batch 64);
2. trace: applied updates/s of ``sim.simulate`` (10, 100, 1,000 workers, network on);
3. seeds: aggregate updates/s of 8 seeds replayed in one vmapped call over 8 separate runs;
4. scaling: replay throughput at 1,000 workers over throughput at 10 (MLP);
5. memory: peak resident memory of a 1,000-worker GSGM replay (MLP) over what its
   parameters, snapshots, caches and data need.

Every figure is a median of repeats. Nothing here asserts a time; tests only check
that ``--quick`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TARGETS = {"replay_asgd": 0.9, "replay_dcasgd": 0.8, "replay_gsgm": 0.8, "trace_100": 50_000,
           "seeds_mlp": 1.5, "scaling": 0.8, "memory": 1.5}
BATCH = 64


def _setup(model_name: str, workers: int):
    """Model, loss, batch function and data: Fashion-MNIST if installed, else random images of its shape."""
    import jax
    import jax.numpy as jnp
    import optax

    from scenarios.data import DataError, load_fmnist
    from scenarios.models import make_model
    from scenarios.partition import label_shards

    try:
        ds = load_fmnist()
        x, y, source = ds.x_train, ds.y_train, "fashion-mnist"
    except DataError:
        rng = np.random.default_rng(0)
        x, y, source = rng.integers(0, 256, (60000, 28, 28, 1), dtype=np.uint8), np.arange(60000) % 10, "random"
    parts = label_shards(y, workers, max(1, -(-10 // workers)))
    lengths = np.array([len(p) for p in parts], np.int32)
    shards = np.zeros((workers, lengths.max()), np.int32)
    for w, p in enumerate(parts):
        shards[w, :len(p)] = p
    model = make_model(model_name, (28, 28, 1), 10)

    def loss_fn(params, batch):
        xb, yb = batch
        return optax.softmax_cross_entropy_with_integer_labels(model.apply(params, xb), yb).mean()

    def batch_fn(data, seed, worker, step):
        xs, ys, shard_index, shard_len = data
        key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), worker), step)
        idx = shard_index[worker, jax.random.randint(key, (BATCH,), 0, shard_len[worker])]
        return xs[idx].astype(jnp.float32) / 255.0, ys[idx]

    data = (jnp.asarray(x), jnp.asarray(y, jnp.int32), jnp.asarray(shards), jnp.asarray(lengths))
    return model, loss_fn, batch_fn, data, source


def _no_eval(params):
    return {"loss": 0.0, "accuracy": 0.0}


def reference_steps_per_second(model, loss_fn, batch_fn, data, steps: int, repeats: int) -> float:
    """A plain jitted optax.sgd loop: one jitted call per step, same batches as worker 0."""
    import jax
    import optax

    opt = optax.sgd(0.01)

    @jax.jit
    def train_step(params, state, step, data):
        grad = jax.grad(loss_fn)(params, batch_fn(data, 0, 0, step))
        updates, state = opt.update(grad, state, params)
        return optax.apply_updates(params, updates), state

    rates = []
    for _ in range(repeats + 1):
        params = model.init(jax.random.PRNGKey(0))
        state = opt.init(params)
        params, state = train_step(params, state, 0, data)
        jax.block_until_ready(params)
        t = time.perf_counter()
        for step in range(steps):
            params, state = train_step(params, state, step, data)
        jax.block_until_ready(params)
        rates.append(steps / (time.perf_counter() - t))
    return statistics.median(rates[1:])


def replay_updates_per_second(trace, rule, model, loss_fn, batch_fn, data, mode, repeats) -> float:
    import jax

    from algorithms import Problem, replay

    rates = []
    for _ in range(repeats + 1):  # the first call compiles
        problem = Problem(loss_fn, batch_fn, _no_eval, data, model.init(jax.random.PRNGKey(0)))
        h = replay(trace, rule, problem, eval_every=10**9, seed=0, mode=mode)
        rates.append(h.updates_replayed / h.wall_time)
    return statistics.median(rates[1:])


def _rule(name):
    from algorithms import asgd, dcasgd, gsgm

    return {"asgd": asgd(0.01), "dcasgd": dcasgd(0.01, adaptive=True), "gsgm": gsgm(0.01, momentum=0.9, k="all")}[name]


def _trace(workers, policy, updates, seed=0):
    from sim import ClusterSpec, ComputeModel, simulate, straggler_speeds

    spec = ClusterSpec(num_workers=workers, compute=ComputeModel("exponential"),
                       speeds=straggler_speeds(workers, 4.0))
    return simulate(spec, policy, updates, seed)


def bench_replay(quick, report):
    updates = {"mlp": 200 if quick else 3000, "cnn": 10 if quick else 400}
    repeats = 1 if quick else 3
    for model_name in ("mlp", "cnn"):
        mode = "scan" if model_name == "mlp" else "loop"
        for workers in (10,) if quick else (10, 100):
            model, loss_fn, batch_fn, data, source = _setup(model_name, workers)
            ref = reference_steps_per_second(model, loss_fn, batch_fn, data, updates[model_name], repeats)
            for algorithm in ("asgd", "dcasgd", "gsgm"):
                policy = "whitelist-wait" if algorithm == "gsgm" else "fifo"
                trace = _trace(workers, policy, updates[model_name])
                rate = replay_updates_per_second(trace, _rule(algorithm), model, loss_fn, batch_fn, data, mode,
                                                 repeats)
                report(f"replay_{algorithm}", f"{model_name}, {workers} workers, {policy}, {mode}", rate / ref,
                       TARGETS[f"replay_{algorithm}"], f"{rate:.0f} upd/s vs reference {ref:.0f} steps/s ({source})")


def bench_trace(quick, report):
    from sim import ClusterSpec, ComputeModel, network, simulate, straggler_speeds

    updates = 5_000 if quick else 100_000
    for workers in (10, 100, 1000):
        net = network(latency=0.01, bandwidth=1e8, model_bytes=4e5, jitter=0.005)
        spec = ClusterSpec(num_workers=workers, compute=ComputeModel("exponential"),
                           speeds=straggler_speeds(workers, 4.0), push=net, pull=net)
        for policy in ("fifo", "whitelist-wait"):
            rates = []
            for seed in range(1 if quick else 3):
                t = time.perf_counter()
                trace = simulate(spec, policy, updates, seed)
                rates.append(trace.num_updates / (time.perf_counter() - t))
            rate = statistics.median(rates)
            target = TARGETS["trace_100"] if workers == 100 else None
            report(f"trace_{workers}", f"{policy}, {workers} workers, network on", rate, target,
                   f"{rate * trace.num_events / trace.num_updates:.0f} events/s")


def bench_seeds(quick, report):
    import jax

    from algorithms import Problem, replay_seeds

    r = 8
    for model_name, updates in (("mlp", 50 if quick else 1500), ("cnn", 4 if quick else 60)):
        mode = "scan" if model_name == "mlp" else "loop"
        model, loss_fn, batch_fn, data, _ = _setup(model_name, 10)
        trace = _trace(10, "fifo", updates)
        rule = _rule("asgd")
        params = [model.init(jax.random.PRNGKey(s)) for s in range(r)]
        stacked = jax.tree_util.tree_map(lambda *x: jax.numpy.stack(x), *params)
        problem = Problem(loss_fn, batch_fn, _no_eval, data, stacked)
        loops, vmaps = [], []
        for _ in range(1 if quick else 3):
            for vmap, store in ((True, vmaps), (False, loops)):
                replay_seeds(trace, rule, problem, eval_every=10**9, seeds=range(r), vmap=vmap,
                             mode=mode)  # compile / warm
                t = time.perf_counter()
                hs = replay_seeds(trace, rule, problem, eval_every=10**9, seeds=range(r), vmap=vmap, mode=mode)
                store.append(sum(h.updates_replayed for h in hs) / (time.perf_counter() - t))
        v, lp = statistics.median(vmaps), statistics.median(loops)
        target = TARGETS["seeds_mlp"] if model_name == "mlp" else None
        report(f"seeds_{model_name}", f"R=8, vmap over loop, {model_name}", v / lp, target,
               f"vmap {v:.0f} upd/s, loop {lp:.0f} upd/s: use {'vmap' if v > lp else 'the loop'}")


def bench_scaling(quick, report):
    updates = 200 if quick else 3000
    big = 100 if quick else 1000
    rates = {}
    for workers in (10, big):
        model, loss_fn, batch_fn, data, _ = _setup("mlp", workers)
        trace = _trace(workers, "fifo", updates)
        rates[workers] = replay_updates_per_second(trace, _rule("asgd"), model, loss_fn, batch_fn, data, "scan",
                                                   1 if quick else 3)
    report("scaling", f"ASGD MLP, {big} workers over 10", rates[big] / rates[10], TARGETS["scaling"],
           f"{rates[big]:.0f} vs {rates[10]:.0f} upd/s")


_MEMORY_CHILD = r"""
import json, sys
import jax, numpy as np
from benchmarks.__main__ import _setup, _trace, _rule, _no_eval, peak_rss
from algorithms import Problem, replay
workers, updates = int(sys.argv[1]), int(sys.argv[2])
base = peak_rss()
model, loss_fn, batch_fn, data, _ = _setup("mlp", workers)
trace = _trace(workers, "whitelist-wait", updates)
params = model.init(jax.random.PRNGKey(0))
param_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(params))
data_bytes = sum(x.size * x.dtype.itemsize for x in data)
before = peak_rss()
replay(trace, _rule("gsgm"), Problem(loss_fn, batch_fn, _no_eval, data, params), eval_every=10**9, mode="scan")
peak = peak_rss()
print(json.dumps({"base": base, "before": before, "peak": peak, "param_bytes": param_bytes,
                  "data_bytes": data_bytes}))
"""


def peak_rss() -> int:
    """Peak resident bytes of this process. VmHWM starts afresh at exec; ru_maxrss does
    not (a child inherits its parent's), so it is used only where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def bench_memory(quick, report):
    workers = 100 if quick else 1000
    out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(workers), "100" if quick else "2000"],
                         capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent)
    m = json.loads(out.stdout.strip().splitlines()[-1])
    # params, gsgm's momentum and window sum, the gradient in flight: 4 copies; snapshots and cache: N each
    copies = 4 + 2 * workers
    need = m["param_bytes"] * copies + m["data_bytes"]
    used = m["peak"] - m["base"]
    report("memory", f"GSGM MLP, {workers} workers: peak RSS growth over need", used / need, TARGETS["memory"],
           f"{used / 2**20:.0f} MiB used vs {need / 2**20:.0f} MiB needed "
           f"({copies} parameter copies of {m['param_bytes'] / 2**20:.2f} MiB + data {m['data_bytes'] / 2**20:.0f} MiB)")


BENCHMARKS = {"trace": bench_trace, "replay": bench_replay, "seeds": bench_seeds, "scaling": bench_scaling,
              "memory": bench_memory}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat: a smoke run under a minute")
    parser.add_argument("--out", default="benchmarks/results.json", help="JSON file for the results")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), help="run only these benchmarks")
    args = parser.parse_args(argv)

    import jax

    rows = []

    def report(figure, what, value, target, note=""):
        status = "" if target is None else ("pass" if value >= target or (figure == "memory" and value <= target)
                                            else "short")
        if figure == "memory":
            status = "pass" if value <= target else "short"
        row = {"figure": figure, "what": what, "value": value, "target": target, "status": status, "note": note}
        rows.append(row)
        target_text = "" if target is None else (f"<= {target:g}" if figure == "memory" else f">= {target:g}")
        print(f"{figure:<14} {what:<48} {value:>10.3f}  {target_text:<10} {status:<5}  {note}", flush=True)

    print(f"{'figure':<14} {'what':<48} {'value':>10}  {'target':<10} {'':<5}  note")
    started = time.perf_counter()
    for name, bench in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        bench(args.quick, report)
    result = {"date": time.strftime("%Y-%m-%d"), "quick": args.quick, "seconds": time.perf_counter() - started,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                          "jax": jax.__version__, "device": str(jax.devices()[0])},
              "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"\n{len(rows)} figures in {result['seconds']:.0f} s -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
