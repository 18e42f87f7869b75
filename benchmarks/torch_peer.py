"""A plain per-event PyTorch simulation of asynchronous SGD: the peer stalesim is compared with.

    python -m benchmarks.torch_peer [--updates 400] [--workers 10] [--batch 64] [--repeats 3]
                                    [--no-stalesim]

Written the way a researcher would write it by hand, with no tricks: a heap of worker
completion events (exponential compute times, worker speeds log-spaced over 4x), each
worker's gradient computed on its own stale copy of the model (``copy.deepcopy`` at
pull time) and applied at the server with ``torch.optim.SGD``; the worker then pulls
the new model. The model is the same small CNN as ``scenarios.workloads.models.cnn`` (two 3x3
convs of 8 and 16 channels with ReLU and 2x2 max-pool, dense 64, classifier), in
PyTorch's NCHW layout; inputs are Fashion-MNIST (random images of its shape, 28x28x1,
where the files are absent), batches of 64 drawn from label shards as in stalesim's
benchmarks. ``torch.set_num_threads`` is set to the machine's cores (those this process
may use).

``measure(...)`` returns the peer's applied updates per second; ``compare(...)`` also
measures stalesim's ASGD replay of a FIFO trace (and a plain jitted ``optax.sgd`` loop)
on the same model and data in the same process, interleaved, and returns all three and
the ratios (medians of ``repeats``).
PyTorch is optional: without it this module says so and exits 0.
"""

from __future__ import annotations

import argparse
import copy
import heapq
import random
import statistics
import sys
import time

import numpy as np

from .problem import shards

SPREAD = 4.0
NO_TORCH = "PyTorch is not installed (it is optional); skipping the PyTorch peer benchmark"


def _cores() -> int:
    from scenarios.experiments.workers import cores  # imported here: the peer alone needs no JAX

    return cores()


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def torch_cnn(channels=(8, 16), hidden=64, num_classes=10):
    """The same network as ``scenarios.workloads.models.cnn`` for 28x28x1 inputs, NCHW."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, channels[0], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(channels[0], channels[1], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(7 * 7 * channels[1], hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


def run_peer(updates: int = 400, workers: int = 10, batch: int = 64, lr: float = 0.01, seed: int = 0,
             data=None) -> dict:
    """One asynchronous run of ``updates`` applied gradients; returns the wall time and a few counts."""
    import torch
    import torch.nn.functional as F

    x, y, parts, source = data if data is not None else shards(workers)
    images = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())  # NCHW uint8
    labels = torch.from_numpy(y)
    torch.manual_seed(seed)
    rnd = random.Random(seed)
    rng = np.random.default_rng(seed)
    speeds = np.geomspace(1.0 / SPREAD, 1.0, workers)

    model = torch_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    snapshots = [copy.deepcopy(model) for _ in range(workers)]
    pulled_at = [0] * workers  # server version each worker's snapshot holds
    events = [(rnd.expovariate(1.0) / speeds[w], w) for w in range(workers)]
    heapq.heapify(events)
    staleness = []

    start = time.perf_counter()
    for version in range(updates):
        now, w = heapq.heappop(events)
        idx = torch.from_numpy(parts[w][rng.integers(0, len(parts[w]), batch)])
        xb = images[idx].float() / 255.0
        worker_model = snapshots[w]
        worker_model.zero_grad()
        loss = F.cross_entropy(worker_model(xb), labels[idx])
        loss.backward()
        for p, q in zip(model.parameters(), worker_model.parameters()):
            p.grad = q.grad
        opt.step()
        opt.zero_grad()
        staleness.append(version - pulled_at[w])
        snapshots[w] = copy.deepcopy(model)  # pull
        pulled_at[w] = version + 1
        heapq.heappush(events, (now + rnd.expovariate(1.0) / speeds[w], w))
    wall = time.perf_counter() - start
    return {"updates": updates, "wall_time": wall, "updates_per_second": updates / wall,
            "mean_staleness": float(np.mean(staleness)), "final_loss": loss.item(), "source": source}


def measure(updates: int = 400, workers: int = 10, batch: int = 64, repeats: int = 3, threads: int | None = None,
            data=None) -> dict:
    """The peer's applied updates/s: median of ``repeats`` runs after a warm-up run.
    Without PyTorch: ``{"updates_per_second": None, "skipped": <why>}``."""
    if not torch_available():
        return {"updates_per_second": None, "skipped": NO_TORCH}
    import torch

    threads = threads or _cores()
    torch.set_num_threads(threads)
    data = data if data is not None else shards(workers)
    run_peer(min(updates, 20), workers, batch, data=data)  # warm-up
    rates = [run_peer(updates, workers, batch, seed=r, data=data)["updates_per_second"] for r in range(repeats)]
    return {"updates_per_second": statistics.median(rates), "rates": rates, "threads": threads,
            "torch": torch.__version__, "updates": updates, "workers": workers, "batch": batch,
            "source": data[3]}


def stalesim_setup(workers: int = 10, updates: int = 400, batch: int = 64, data=None, model=None):
    """stalesim's side, as ``benchmarks/replays.py`` sets up its replay figure: the CNN
    from ``scenarios.workloads.models``, minibatches drawn from the same label shards, an ASGD rule
    and a FIFO trace from ``sim.simulate`` (exponential compute times, speeds over 4x).
    ``model``: another ``scenarios.workloads.models.Model`` to time instead (e.g. an older definition)."""
    from algorithms import asgd
    from scenarios.workloads.models import make_model
    from sim import ClusterSpec, ComputeModel, simulate, straggler_speeds

    from .problem import problem

    x, y, parts, source = data if data is not None else shards(workers)
    model = model or make_model("cnn", tuple(x.shape[1:]), 10)
    loss_fn, batch_fn, arrays = problem(model, x, y, parts, batch)
    spec = ClusterSpec(num_workers=workers, compute=ComputeModel("exponential"),
                       speeds=straggler_speeds(workers, SPREAD))
    return {"model": model, "loss_fn": loss_fn, "batch_fn": batch_fn, "data": arrays,
            "trace": simulate(spec, "fifo", updates, 0), "rule": asgd(0.01), "updates": updates}


def _no_eval(params):
    return {"loss": 0.0, "accuracy": 0.0}


def stalesim_rate(setup) -> float:
    """Applied updates/s of one ASGD replay (``mode="scan"``, what ``mode="auto"`` runs for the
    CNN; evaluation beyond the run)."""
    import inspect

    import jax

    import algorithms

    params = setup["model"].init(jax.random.PRNGKey(0))
    if "loss_fn" in inspect.signature(algorithms.replay).parameters:
        h = algorithms.replay(setup["trace"], setup["rule"], setup["loss_fn"], params, setup["batch_fn"], _no_eval,
                              10**9, 0, data=setup["data"], mode="scan")
    else:  # replay(trace, rule, Problem(...), eval_every=..., seed=...)
        problem = algorithms.Problem(loss_fn=setup["loss_fn"], batch_fn=setup["batch_fn"], eval_fn=_no_eval,
                                     data=setup["data"], params0=params)
        h = algorithms.replay(setup["trace"], setup["rule"], problem, eval_every=10**9, seed=0, mode="scan")
    return h.updates_replayed / h.wall_time


def reference_rate(setup, steps: int | None = None) -> float:
    """Steps/s of a plain jitted ``optax.sgd`` loop on the same model and batches (worker 0's)."""
    import jax
    import optax

    steps = steps or setup["updates"]
    opt = optax.sgd(0.01)
    loss_fn, batch_fn, data = setup["loss_fn"], setup["batch_fn"], setup["data"]

    @jax.jit
    def train_step(params, state, step):
        grad = jax.grad(loss_fn)(params, batch_fn(data, 0, 0, step))
        updates, state = opt.update(grad, state, params)
        return optax.apply_updates(params, updates), state

    params = setup["model"].init(jax.random.PRNGKey(0))
    state = opt.init(params)
    params, state = train_step(params, state, 0)
    jax.block_until_ready(params)
    start = time.perf_counter()
    for step in range(steps):
        params, state = train_step(params, state, step)
    jax.block_until_ready(params)
    return steps / (time.perf_counter() - start)


def compare(updates: int = 400, workers: int = 10, batch: int = 64, repeats: int = 3,
            threads: int | None = None) -> dict:
    """The PyTorch peer, stalesim's ASGD replay and the plain jitted reference in one
    process, interleaved (peer, replay, reference, peer, ...), each a median of ``repeats``
    after a warm-up (compiling) run. Without PyTorch: ``{"ratio": None, "skipped": <why>}``."""
    if not torch_available():
        return {"peer_updates_per_second": None, "ratio": None, "skipped": NO_TORCH}
    import torch

    threads = threads or _cores()
    torch.set_num_threads(threads)
    data = shards(workers)
    setup = stalesim_setup(workers, updates, batch, data)
    run_peer(20, workers, batch, data=data)
    stalesim_rate(setup)
    reference_rate(setup, 20)
    peer, ours, ref = [], [], []
    for r in range(repeats):
        peer.append(run_peer(updates, workers, batch, seed=r, data=data)["updates_per_second"])
        ours.append(stalesim_rate(setup))
        ref.append(reference_rate(setup))
    p, s, f = statistics.median(peer), statistics.median(ours), statistics.median(ref)
    return {"peer_updates_per_second": p, "stalesim_updates_per_second": s, "reference_steps_per_second": f,
            "ratio": s / p, "replay_over_reference": s / f, "peer_rates": peer, "stalesim_rates": ours,
            "reference_rates": ref, "torch": torch.__version__, "threads": threads, "updates": updates,
            "workers": workers, "batch": batch, "repeats": repeats, "source": data[3]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.torch_peer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=400)
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the machine's cores)")
    parser.add_argument("--no-stalesim", action="store_true", help="time the PyTorch peer only")
    args = parser.parse_args(argv)
    if not torch_available():
        print(f"torch_peer: {NO_TORCH}")
        return 0
    if args.no_stalesim:
        m = measure(args.updates, args.workers, args.batch, args.repeats, args.threads)
        print(f"PyTorch peer: {m['updates_per_second']:.0f} updates/s (median of {args.repeats}, "
              f"{m['threads']} threads, torch {m['torch']}, {m['source']} data)")
        return 0
    c = compare(args.updates, args.workers, args.batch, args.repeats, args.threads)
    print(f"PyTorch peer:             {c['peer_updates_per_second']:7.0f} updates/s  "
          f"{[round(r) for r in c['peer_rates']]}")
    print(f"stalesim ASGD replay:     {c['stalesim_updates_per_second']:7.0f} updates/s  "
          f"{[round(r) for r in c['stalesim_rates']]}")
    print(f"plain jitted optax loop:  {c['reference_steps_per_second']:7.0f} steps/s    "
          f"{[round(r) for r in c['reference_rates']]}")
    print(f"stalesim / peer:          {c['ratio']:7.2f}  (replay / plain loop {c['replay_over_reference']:.2f}; "
          f"medians of {args.repeats}, interleaved in one process; {args.workers} workers, batch {args.batch}, "
          f"{c['threads']} torch threads, torch {c['torch']}, {c['source']} data)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
