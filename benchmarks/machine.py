"""The figures of the simulator and of the whole machine: trace, cores, memory and end_to_end.

``trace`` is measured in this process; the others start child processes
(``python -m benchmarks.cores``, ``.memory``, ``.end_to_end``) from the repository's
root. ``report`` is ``records.Record.report``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scenarios.experiments.workers import cores
from sim import ClusterSpec, ComputeModel, network, simulate, straggler_speeds

from .measure import limit_rate, reference_steps, setup
from .records import TARGETS

ROOT = Path(__file__).resolve().parent.parent


def bench_trace(quick, report):
    """Applied updates/s of ``sim.simulate``, 10, 100 and 1,000 workers, network on."""
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


def bench_cores(quick, report):
    """What the whole machine gives: the scan limit run in one process per core at once,
    their summed steps/s over the same limit in one process alone (the ceiling of
    ``--jobs auto`` against the one-process limit the other figures use)."""
    steps = 300 if quick else 4000

    def together(k: int) -> list[float]:
        procs = [subprocess.Popen([sys.executable, "-m", "benchmarks.cores", str(steps)], cwd=ROOT, text=True,
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


def bench_memory(quick, report):
    """Peak RSS growth of a GSGM replay (MLP, 1,000 workers; 100 with ``quick``) in a fresh
    process over what its parameters, snapshots, caches and data need."""
    workers = 100 if quick else 1000
    out = subprocess.run([sys.executable, "-m", "benchmarks.memory", str(workers), "100" if quick else "2000"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
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


def _end_to_end(args: list[str], label: str, s_per_step: float, report, target, env=None) -> dict:
    """Run ``stalesim ARGS --out TMP`` in a fresh process; its efficiency and time split
    (the split only for work done in that process: with ``--jobs 1``)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        t = time.time()
        proc = subprocess.run([sys.executable, "-m", "benchmarks.end_to_end", *args, "--out", str(out)],
                              capture_output=True, text=True, cwd=ROOT, env=env, check=False)
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
    MLP, 10 workers, the experiment's model and batch) is measured before and after each."""
    model, loss_fn, batch_fn, data, _ = setup("mlp", 10)
    refs = reference_steps(model, loss_fn, batch_fn, data)
    steps = 300 if quick else 2000
    limits = [limit_rate(model, loss_fn, batch_fn, data, steps, refs) for _ in range(1 if quick else 2)]
    with tempfile.TemporaryDirectory() as cache:
        cached = {**os.environ, "STALESIM_COMPILATION_CACHE": cache}
        reduced = (["--seeds", "1", "--algorithms", "asgd,gsgm", "--base", "sgd", "--updates", "600", "--jobs", "1"]
                   if quick else ["--seeds", "1", "--jobs", "1"])
        what = "asgd+gsgm on sgd, 1 seed, 600 updates" if quick else "1 seed (13 runs)"
        grids = [(reduced, f"fmnist, {what}, --jobs 1", None),
                 (reduced, "... the same, compilation cache (opt-in) written", cached),
                 (reduced, "... the same, compilation cache read (warm)", cached)]
        if not quick:
            auto = f"fmnist, the whole grid (39 runs), --jobs auto (the default: {cores()} processes here)"
            grids += [(["--jobs", "1"], "fmnist, the whole grid (39 runs), --jobs 1", None),
                      (["--jobs", "auto"], auto, None)]
        for args, label, env in grids:
            before = limits[-1]
            limits.append(limit_rate(model, loss_fn, batch_fn, data, steps, refs))
            s_per_step = 1.0 / statistics.median([before, limits[-1]])
            _end_to_end(["reproduce", "fmnist", *args], label, s_per_step, report, TARGETS["end_to_end"], env)
