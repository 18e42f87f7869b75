"""The benchmarks' measuring tools: the workload, the plain-training limit, one replay's rate, peak memory."""

from __future__ import annotations

import resource
import statistics
import time
from pathlib import Path

from scenarios.workloads.models import make_model

from .problem import problem, shards

BATCH = 64


def setup(model_name: str, workers: int):
    """Model, loss, batch function and data: Fashion-MNIST if installed, else random images of its shape."""
    x, y, parts, source = shards(workers)
    model = make_model(model_name, (28, 28, 1), 10)
    loss_fn, batch_fn, data = problem(model, x, y, parts, BATCH)
    return model, loss_fn, batch_fn, data, source


def no_eval(params):
    """The replays' ``eval_fn`` where evaluation is not timed: they run with ``eval_every``
    beyond the run, so it is called only at the start and at the end, and costs nothing."""
    return {"loss": 0.0, "accuracy": 0.0}


def reference_steps(model, loss_fn, batch_fn, data):
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
    the limit is the faster. ``refs``: the jitted functions of ``reference_steps``, reused."""
    import jax

    opt, step_fn, steps_fn = refs or reference_steps(model, loss_fn, batch_fn, data)
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


def limit_rate(model, loss_fn, batch_fn, data, steps: int, refs=None) -> float:
    """The machine's limit, once: the faster of the two plain trainings (``reference_rates``)."""
    return max(reference_rates(model, loss_fn, batch_fn, data, steps, 1, refs).values())


def replay_rate(trace, rule, model, loss_fn, batch_fn, data, mode) -> float:
    """Applied updates/s of one replay (compiling, the first time for this rule and shape);
    evaluation is left out with the replay's own ``eval_every`` (beyond the run) and ``no_eval``."""
    import jax

    from algorithms import Problem, replay

    problem = Problem(loss_fn, batch_fn, no_eval, data, model.init(jax.random.PRNGKey(0)))
    h = replay(trace, rule, problem, eval_every=10**9, seed=0, mode=mode)
    return h.updates_replayed / h.wall_time


def rule(name):
    """The benchmarks' server rules: ASGD, DC-ASGD-a and GSGM on SGD."""
    from algorithms import asgd, dcasgd, gsgm

    return {"asgd": asgd(0.01), "dcasgd": dcasgd(0.01, adaptive=True), "gsgm": gsgm(0.01, momentum=0.9, k="all")}[name]


def trace(workers, policy, updates, seed=0):
    """A simulated trace: exponential compute times, speeds log-spaced over 4x, no network."""
    from sim import ClusterSpec, ComputeModel, simulate, straggler_speeds

    spec = ClusterSpec(num_workers=workers, compute=ComputeModel("exponential"),
                       speeds=straggler_speeds(workers, 4.0))
    return simulate(spec, policy, updates, seed)


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
