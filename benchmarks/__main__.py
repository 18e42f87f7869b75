"""stalesim's overhead, as ratios taken in one process against a reference.

    python -m benchmarks [--quick] [--out benchmarks/results.json] [--only NAME ...]

Benchmarks (see benchmarks/README.md for the figures measured and what bounds them):

1. replay: applied updates/s of ASGD, DC-ASGD and GSGM replays (10 and 100 workers)
   over the machine's limit: the faster of two plain ``optax.sgd`` trainings on the
   same model, batch size and data, a ``lax.fori_loop`` over every step in one jitted
   call (the scan limit) and one jitted call per step (the loop); both are reported
   (MLP and small CNN, Fashion-MNIST-shaped inputs 28x28x1, batch 64);
2. trace: applied updates/s of ``sim.simulate`` (10, 100, 1,000 workers, network on);
3. seeds: aggregate updates/s of 8 seeds (or 8 configurations: the same batched
   program) replayed in one vmapped call over 8 separate runs;
4. scaling: replay throughput at 1,000 workers over throughput at 10 (MLP);
5. memory: peak resident memory of a 1,000-worker GSGM replay (MLP) over what its
   parameters, snapshots, caches and data need;
6. peer: the CNN's ASGD replay over a plain per-event PyTorch simulation of the same
   run (``benchmarks/torch_peer.py``); optional, skipped (and said so) without PyTorch;
7. resnet: the ResNet-8 replay's updates/s (CIFAR-shaped random images) over its plain loop;
8. cores: the scan limit in one process per core at once, summed, over one process;
9. end_to_end: ``stalesim reproduce fmnist`` in a fresh process from a fresh output
   folder: (applied updates x the limit's seconds per step) / its wall time, and where
   the rest of the time goes (process start, compilation, evaluation, trace
   simulation, report).

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

TARGETS = {"replay_asgd": 0.95, "replay_dcasgd": 0.9, "replay_gsgm": 0.9, "trace_100": 100_000,
           "seeds_mlp": 1.5, "scaling": 0.9, "memory": 1.5, "end_to_end": 0.8, "peer_cnn": 1.2}
CNN_TARGETS = {"replay_asgd": 0.9, "replay_dcasgd": 0.8, "replay_gsgm": 0.8}  # the conv net's, from the first issue
BATCH = 64


def _setup(model_name: str, workers: int):
    """Model, loss, batch function and data: Fashion-MNIST if installed, else random images of its shape."""
    from scenarios.models import make_model

    from .problem import problem, shards

    x, y, parts, source = shards(workers)
    model = make_model(model_name, (28, 28, 1), 10)
    loss_fn, batch_fn, data = problem(model, x, y, parts, BATCH)
    return model, loss_fn, batch_fn, data, source


def _no_eval(params):
    return {"loss": 0.0, "accuracy": 0.0}


def _reference_steps(model, loss_fn, batch_fn, data):
    """The two plain trainings, jitted: one call per step, and one call for any number of
    steps (a ``lax.fori_loop``); ``optax.sgd``, the same batches as worker 0."""
    import jax
    import optax

    opt = optax.sgd(0.01)

    def train_step(params, state, step, data):
        grad = jax.grad(loss_fn)(params, batch_fn(data, 0, 0, step))
        updates, state = opt.update(grad, state, params)
        return optax.apply_updates(params, updates), state

    def train_steps(params, state, start, stop, data):
        return jax.lax.fori_loop(start, stop, lambda i, c: train_step(*c, i, data), (params, state))

    return opt, jax.jit(train_step, donate_argnums=(0, 1)), jax.jit(train_steps, donate_argnums=(0, 1))


def reference_rates(model, loss_fn, batch_fn, data, steps: int, repeats: int = 1, refs=None) -> dict:
    """Steps/s of the plain trainings (medians of ``repeats``): ``{"scan": .., "loop": ..}``;
    the limit is the faster. ``refs``: the jitted functions of ``_reference_steps``, reused."""
    import jax

    opt, step_fn, steps_fn = refs or _reference_steps(model, loss_fn, batch_fn, data)
    rates = {"scan": [], "loop": []}
    for _ in range(repeats):
        for kind in ("loop", "scan"):
            params = model.init(jax.random.PRNGKey(0))
            state = opt.init(params)
            params, state = step_fn(params, state, 0, data)  # compiled on the first call
            params, state = steps_fn(params, state, 0, 1, data)
            jax.block_until_ready(params)
            t = time.perf_counter()
            if kind == "loop":
                for step in range(steps):
                    params, state = step_fn(params, state, step, data)
            else:
                params, state = steps_fn(params, state, 0, steps, data)
            jax.block_until_ready(params)
            rates[kind].append(steps / (time.perf_counter() - t))
    return {k: statistics.median(v) for k, v in rates.items()}


def reference_steps_per_second(model, loss_fn, batch_fn, data, steps: int, repeats: int) -> float:
    """The machine's limit: the faster of the two plain trainings (``reference_rates``)."""
    return max(reference_rates(model, loss_fn, batch_fn, data, steps, repeats).values())


def replay_rate(trace, rule, model, loss_fn, batch_fn, data, mode) -> float:
    """Applied updates/s of one replay (compiling, the first time for this rule and shape)."""
    import jax

    from algorithms import Problem, replay

    problem = Problem(loss_fn, batch_fn, _no_eval, data, model.init(jax.random.PRNGKey(0)))
    h = replay(trace, rule, problem, eval_every=10**9, seed=0, mode=mode)
    return h.updates_replayed / h.wall_time


def replay_updates_per_second(trace, rule, model, loss_fn, batch_fn, data, mode, repeats) -> float:
    """The median of ``repeats`` replays after one that compiles."""
    rates = [replay_rate(trace, rule, model, loss_fn, batch_fn, data, mode) for _ in range(repeats + 1)]
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
    """Per round: both references and each algorithm's replay once, interleaved; each
    figure is the median over rounds of (replay rate / the round's limit)."""
    updates = {"mlp": 200 if quick else 3000, "cnn": 10 if quick else 400}
    rounds = 1 if quick else 3
    for model_name in ("mlp", "cnn"):
        mode = "scan"  # what mode="auto" runs for both (scenarios.runner.resolve_mode)
        targets = TARGETS if model_name == "mlp" else CNN_TARGETS
        for workers in (10,) if quick else (10, 100):
            model, loss_fn, batch_fn, data, source = _setup(model_name, workers)
            refs = _reference_steps(model, loss_fn, batch_fn, data)
            algorithms = ("asgd", "dcasgd", "gsgm")
            traces = {a: _trace(workers, "whitelist-wait" if a == "gsgm" else "fifo", updates[model_name])
                      for a in algorithms}
            rules = {a: _rule(a) for a in algorithms}
            for a in algorithms:  # compile
                replay_rate(traces[a], rules[a], model, loss_fn, batch_fn, data, mode)
            limits, loops, scans, rates = [], [], [], {a: [] for a in algorithms}
            for _ in range(rounds):
                ref = reference_rates(model, loss_fn, batch_fn, data, updates[model_name], 1, refs)
                limits.append(max(ref.values())), loops.append(ref["loop"]), scans.append(ref["scan"])
                for a in algorithms:
                    rates[a].append(replay_rate(traces[a], rules[a], model, loss_fn, batch_fn, data, mode))
            scan, loop = statistics.median(scans), statistics.median(loops)
            report("reference", f"{model_name}, {workers} workers: scan limit / loop", scan / loop, None,
                   f"scan {scan:.0f} steps/s, loop {loop:.0f} steps/s ({source}); the limit is the faster")
            for a in algorithms:
                policy = "whitelist-wait" if a == "gsgm" else "fifo"
                ratio = statistics.median(r / lim for r, lim in zip(rates[a], limits))
                vs_loop = statistics.median(r / lp for r, lp in zip(rates[a], loops))
                report(f"replay_{a}", f"{model_name}, {workers} workers, {policy}, {mode}", ratio,
                       targets[f"replay_{a}"], f"{statistics.median(rates[a]):.0f} upd/s; "
                       f"{vs_loop:.2f} of the loop reference")


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
        mode = "scan"  # what mode="auto" runs for both
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
               f"vmap {v:.0f} upd/s, loop {lp:.0f} upd/s (runs use separate replays)")


def bench_peer(quick, report):
    """The CNN: stalesim's ASGD replay over the PyTorch per-event peer (``torch_peer``),
    interleaved in this process; optional: says so and skips without PyTorch."""
    from .torch_peer import NO_TORCH, compare, torch_available

    if not torch_available():
        print(f"{'peer_cnn':<14} {NO_TORCH}", flush=True)
        return
    c = compare(updates=20 if quick else 400, repeats=1 if quick else 3)
    report("peer_cnn", "cnn, 10 workers: stalesim ASGD / PyTorch peer", c["ratio"], TARGETS["peer_cnn"],
           f"{c['stalesim_updates_per_second']:.0f} vs {c['peer_updates_per_second']:.0f} upd/s "
           f"(peer on {c['threads']} torch threads, torch {c['torch']}); replay / plain loop "
           f"{c['replay_over_reference']:.2f}")


def bench_resnet(quick, report):
    """ResNet-8 on CIFAR-shaped inputs (random 32x32x3 images: CIFAR is not needed): ASGD
    replay updates/s as ``mode="auto"`` runs it (one call per op) over the plain loop."""
    import numpy as np

    from scenarios.config import ExperimentConfig
    from scenarios.models import make_model
    from scenarios.partition import label_shards
    from scenarios.runner import resolve_mode

    from .problem import problem

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (5000, 32, 32, 3), dtype=np.uint8)
    y = np.arange(5000) % 10
    model = make_model("resnet", (32, 32, 3), 10)
    loss_fn, batch_fn, data = problem(model, x, y, label_shards(y, 10, 1), BATCH)
    mode = resolve_mode(ExperimentConfig(model="resnet"))
    updates = 3 if quick else 30
    trace, rule = _trace(10, "fifo", updates), _rule("asgd")
    refs = _reference_steps(model, loss_fn, batch_fn, data)
    replay_rate(trace, rule, model, loss_fn, batch_fn, data, mode)  # compile
    rates, loops = [], []
    for _ in range(1 if quick else 3):
        loops.append(reference_rates(model, loss_fn, batch_fn, data, updates, 1, refs)["loop"])
        rates.append(replay_rate(trace, rule, model, loss_fn, batch_fn, data, mode))
    report("resnet", f"resnet-8 32x32x3, 10 workers, ASGD replay ({mode}) / loop",
           statistics.median(r / lp for r, lp in zip(rates, loops)), None,
           f"{statistics.median(rates):.1f} upd/s, loop {statistics.median(loops):.1f} steps/s (random images)")


_CORES_CHILD = r"""
import json, sys
from benchmarks.__main__ import _setup, _reference_steps, reference_rates
steps = int(sys.argv[1])
model, loss_fn, batch_fn, data, _ = _setup("mlp", 10)
refs = _reference_steps(model, loss_fn, batch_fn, data)
reference_rates(model, loss_fn, batch_fn, data, 100, 1, refs)  # compile
print("ready", flush=True)
sys.stdin.readline()  # every process starts timing together
print(json.dumps(reference_rates(model, loss_fn, batch_fn, data, steps, 3, refs)["scan"]), flush=True)
"""


def bench_cores(quick, report):
    """What the whole machine gives: the scan limit run in one process per core at once,
    their summed steps/s over the same limit in one process alone (the ceiling of
    ``--jobs auto`` against the one-process limit the other figures use)."""
    from scenarios.runner import cores

    steps = 300 if quick else 4000
    root = Path(__file__).resolve().parent.parent

    def together(k: int) -> list[float]:
        procs = [subprocess.Popen([sys.executable, "-c", _CORES_CHILD, str(steps)], cwd=root, text=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE) for _ in range(k)]
        for p in procs:  # each has compiled
            assert p.stdout.readline().strip() == "ready"
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        return [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]

    k = cores()
    alone = together(1)[0]
    rates = together(k)
    report("cores", f"scan limit in {k} processes at once (summed) / in one", sum(rates) / alone, None,
           f"{sum(rates):.0f} vs {alone:.0f} steps/s (each {', '.join(f'{r:.0f}' for r in rates)})")


def bench_scaling(quick, report):
    updates = 200 if quick else 3000
    big = 100 if quick else 1000
    setups = {w: _setup("mlp", w) for w in (10, big)}
    traces = {w: _trace(w, "fifo", updates) for w in (10, big)}
    rule = _rule("asgd")
    rates = {10: [], big: []}
    for round_ in range(2 if quick else 4):  # interleaved; the first round compiles
        for w in (10, big):
            model, loss_fn, batch_fn, data, _ = setups[w]
            rate = replay_rate(traces[w], rule, model, loss_fn, batch_fn, data, "scan")
            if round_:
                rates[w].append(rate)
    ratio = statistics.median(b / s for b, s in zip(rates[big], rates[10]))
    report("scaling", f"ASGD MLP, {big} workers over 10", ratio, TARGETS["scaling"],
           f"{statistics.median(rates[big]):.0f} vs {statistics.median(rates[10]):.0f} upd/s")


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
from algorithms.schedule import schedule_for
schedule = schedule_for(trace, params, "auto")
before = peak_rss()
replay(schedule, _rule("gsgm"), Problem(loss_fn, batch_fn, _no_eval, data, params), eval_every=10**9, mode="scan")
peak = peak_rss()
print(json.dumps({"base": base, "before": before, "peak": peak, "param_bytes": param_bytes,
                  "data_bytes": data_bytes, "rows": schedule.num_rows, "storage": schedule.storage}))
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
    # params, gsgm's momentum and window sum, the gradient in flight: 4 copies; GSGM's cache of
    # gradients: N; the store: one snapshot per worker (N rows) or a ring of recent versions (<= 2N)
    copies = 4 + workers + m["rows"]
    need = m["param_bytes"] * copies + m["data_bytes"]
    used = m["peak"] - m["base"]
    report("memory", f"GSGM MLP, {workers} workers: peak RSS growth over need", used / need, TARGETS["memory"],
           f"{used / 2**20:.0f} MiB used vs {need / 2**20:.0f} MiB needed ({copies} parameter copies of "
           f"{m['param_bytes'] / 2**20:.2f} MiB, {m['rows']} of them the {m['storage']} store, + data "
           f"{m['data_bytes'] / 2**20:.0f} MiB)")


_E2E_CHILD = r"""
import json, sys, time
started = time.time()
import collections
parts = collections.defaultdict(float)
import jax
from scenarios.estimate import compile_seconds
compile_seconds()  # counting starts
parts["compile"] = 0.0  # filled in at the end; listed second, as the split reads

def timed(owner, name, part):
    inner = getattr(owner, name)
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return inner(*a, **k)
        finally:
            parts[part] += time.perf_counter() - t
    setattr(owner, name, wrapper)

import algorithms.history, scenarios.report, scenarios.runner, scenarios.workload
from scenarios.cli import main
evaluate = algorithms.history.Recorder.evaluate
def evaluate_apart(self, params_of, update, sim_time):  # what was dispatched before runs first: training
    t = time.perf_counter()
    jax.block_until_ready(params_of(0))
    parts["training"] += time.perf_counter() - t
    t = time.perf_counter()
    evaluate(self, params_of, update, sim_time)
    parts["evaluation"] += time.perf_counter() - t
algorithms.history.Recorder.evaluate = evaluate_apart
timed(scenarios.runner, "trace_for", "trace simulation")
timed(scenarios.workload, "build", "data and workload")
timed(scenarios.report, "write_report", "report and plots")
main_at = time.time()
code = main(sys.argv[1:])
parts["compile"] = compile_seconds()
print(json.dumps({"started": started, "main": main_at, "ended": time.time(), "parts": parts, "code": code}))
"""


def _end_to_end(args: list[str], label: str, s_per_step: float, report, target, env=None) -> dict:
    """Run ``stalesim ARGS --out TMP`` in a fresh process; its efficiency and time split
    (the split only for work done in that process: with ``--jobs 1``)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        t = time.time()
        proc = subprocess.run([sys.executable, "-c", _E2E_CHILD, *args, "--out", str(out)], capture_output=True,
                              text=True, cwd=Path(__file__).resolve().parent.parent, env=env)
        wall = time.time() - t
        if proc.returncode != 0:
            raise RuntimeError(f"stalesim {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        child = json.loads(proc.stdout.strip().splitlines()[-1])
        results = [json.loads(p.read_text()) for p in out.glob("runs/*/result.json")]
    updates = sum(r["updates_replayed"] for r in results)
    split = {"process start and imports": child["main"] - t, **child["parts"]}
    split["other (replay set-up, results, Python)"] = wall - sum(split.values())
    note = f"{len(results)} runs, {updates} updates in {wall:.0f} s; limit {updates * s_per_step:.0f} s"
    if args[args.index("--jobs") + 1] == "1":
        note += "; " + ", ".join(f"{k} {v:.1f} s" for k, v in split.items())
    report("end_to_end", label, updates * s_per_step / wall, target, note)
    return {"wall": wall, "updates": updates, "split": split}


def bench_end_to_end(quick, report):
    """``stalesim reproduce fmnist`` (a reduced grid, and the whole one unless ``quick``) in
    a fresh process from a fresh folder; the limit (the faster reference's s/step on the
    MLP, 10 workers, the scenario's model and batch) is measured before and after each."""
    import tempfile

    from scenarios import runner

    model, loss_fn, batch_fn, data, _ = _setup("mlp", 10)
    refs = _reference_steps(model, loss_fn, batch_fn, data)
    steps = 300 if quick else 2000
    limits = [max(reference_rates(model, loss_fn, batch_fn, data, steps, 1, refs).values())
              for _ in range(1 if quick else 2)]
    with tempfile.TemporaryDirectory() as cache:
        cached = {**os.environ, "STALESIM_COMPILATION_CACHE": cache}
        reduced = ["--seeds", "1", "--algorithms", "asgd,gsgm", "--base", "sgd", "--updates", "600", "--jobs", "1"] \
            if quick else ["--seeds", "1", "--jobs", "1"]
        what = "asgd+gsgm on sgd, 1 seed, 600 updates" if quick else "1 seed (13 runs)"
        grids = [(reduced, f"fmnist, {what}, --jobs 1", None),
                 (reduced, "... the same, compilation cache (opt-in) written", cached),
                 (reduced, "... the same, compilation cache read (warm)", cached)]
        if not quick:
            grids += [(["--jobs", "1"], "fmnist, the whole grid (39 runs), --jobs 1", None),
                      (["--jobs", "auto"], f"fmnist, the whole grid (39 runs), --jobs auto (the default: "
                                           f"{runner.cores()} processes here)", None)]
        for args, label, env in grids:
            before = limits[-1]
            limits.append(max(reference_rates(model, loss_fn, batch_fn, data, steps, 1, refs).values()))
            s_per_step = 1.0 / statistics.median([before, limits[-1]])
            _end_to_end(["reproduce", "fmnist", *args], label, s_per_step, report, TARGETS["end_to_end"], env)


BENCHMARKS = {"trace": bench_trace, "replay": bench_replay, "peer": bench_peer, "resnet": bench_resnet,
              "seeds": bench_seeds, "scaling": bench_scaling, "memory": bench_memory, "cores": bench_cores,
              "end_to_end": bench_end_to_end}


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
