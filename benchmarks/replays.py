"""The replay figures, each measured in this process: replay, seeds, scaling, resnet and peer.

Every figure is a median of repeats, references and replays interleaved; ``report`` is
``records.Record.report``.
"""

from __future__ import annotations

import statistics
import time

from scenarios.experiments.config import ExperimentConfig
from scenarios.experiments.execute import resolve_mode
from scenarios.workloads.models import make_model
from scenarios.workloads.partition import label_shards

from .measure import BATCH, no_eval, reference_rates, reference_steps, replay_rate, rule, setup, trace
from .problem import problem
from .records import CNN_TARGETS, TARGETS


def bench_replay(quick, report):
    """Per round: both references and each algorithm's replay once, interleaved; each
    figure is the median over rounds of (replay rate / the round's limit)."""
    updates = {"mlp": 200 if quick else 3000, "cnn": 10 if quick else 400}
    rounds = 1 if quick else 3
    for model_name in ("mlp", "cnn"):
        mode = "scan"  # what mode="auto" runs for both (scenarios.experiments.execute.resolve_mode)
        targets = TARGETS if model_name == "mlp" else CNN_TARGETS
        for workers in (10,) if quick else (10, 100):
            model, loss_fn, batch_fn, data, source = setup(model_name, workers)
            refs = reference_steps(model, loss_fn, batch_fn, data)
            algorithms = ("asgd", "dcasgd", "gsgm")
            traces = {a: trace(workers, "whitelist-wait" if a == "gsgm" else "fifo", updates[model_name])
                      for a in algorithms}
            rules = {a: rule(a) for a in algorithms}
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


def bench_seeds(quick, report):
    """8 seeds replayed in one vmapped call over the same 8 as separate replays, MLP and CNN."""
    import jax

    from algorithms import Problem, replay_seeds

    r = 8
    for model_name, updates in (("mlp", 50 if quick else 1500), ("cnn", 4 if quick else 60)):
        mode = "scan"  # what mode="auto" runs for both
        model, loss_fn, batch_fn, data, _ = setup(model_name, 10)
        fifo = trace(10, "fifo", updates)
        asgd = rule("asgd")
        params = [model.init(jax.random.PRNGKey(s)) for s in range(r)]
        stacked = jax.tree_util.tree_map(lambda *x: jax.numpy.stack(x), *params)
        problem = Problem(loss_fn, batch_fn, no_eval, data, stacked)
        loops, vmaps = [], []
        for _ in range(1 if quick else 3):
            for vmap, store in ((True, vmaps), (False, loops)):
                replay_seeds(fifo, asgd, problem, eval_every=10**9, seeds=range(r), vmap=vmap,
                             mode=mode)  # compile / warm
                t = time.perf_counter()
                hs = replay_seeds(fifo, asgd, problem, eval_every=10**9, seeds=range(r), vmap=vmap, mode=mode)
                store.append(sum(h.updates_replayed for h in hs) / (time.perf_counter() - t))
        v, lp = statistics.median(vmaps), statistics.median(loops)
        target = TARGETS["seeds_mlp"] if model_name == "mlp" else None
        report(f"seeds_{model_name}", f"R=8, vmap over loop, {model_name}", v / lp, target,
               f"vmap {v:.0f} upd/s, loop {lp:.0f} upd/s (runs use separate replays)")


def bench_scaling(quick, report):
    """ASGD replay throughput at 1,000 workers (100 with ``quick``) over throughput at 10, MLP."""
    updates = 200 if quick else 3000
    big = 100 if quick else 1000
    setups = {w: setup("mlp", w) for w in (10, big)}
    traces = {w: trace(w, "fifo", updates) for w in (10, big)}
    asgd = rule("asgd")
    rates = {10: [], big: []}
    for round_ in range(2 if quick else 4):  # interleaved; the first round compiles
        for w in (10, big):
            model, loss_fn, batch_fn, data, _ = setups[w]
            rate = replay_rate(traces[w], asgd, model, loss_fn, batch_fn, data, "scan")
            if round_:
                rates[w].append(rate)
    ratio = statistics.median(b / s for b, s in zip(rates[big], rates[10]))
    report("scaling", f"ASGD MLP, {big} workers over 10", ratio, TARGETS["scaling"],
           f"{statistics.median(rates[big]):.0f} vs {statistics.median(rates[10]):.0f} upd/s")


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

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (5000, 32, 32, 3), dtype=np.uint8)
    y = np.arange(5000) % 10
    model = make_model("resnet", (32, 32, 3), 10)
    loss_fn, batch_fn, data = problem(model, x, y, label_shards(y, 10, 1), BATCH)
    mode = resolve_mode(ExperimentConfig(model="resnet"))
    updates = 3 if quick else 30
    fifo, asgd = trace(10, "fifo", updates), rule("asgd")
    refs = reference_steps(model, loss_fn, batch_fn, data)
    replay_rate(fifo, asgd, model, loss_fn, batch_fn, data, mode)  # compile
    rates, loops = [], []
    for _ in range(1 if quick else 3):
        loops.append(reference_rates(model, loss_fn, batch_fn, data, updates, 1, refs)["loop"])
        rates.append(replay_rate(fifo, asgd, model, loss_fn, batch_fn, data, mode))
    report("resnet", f"resnet-8 32x32x3, 10 workers, ASGD replay ({mode}) / loop",
           statistics.median(r / lp for r, lp in zip(rates, loops)), None,
           f"{statistics.median(rates):.1f} upd/s, loop {statistics.median(loops):.1f} steps/s (random images)")

