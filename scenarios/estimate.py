"""Estimating a command's wall time before running it: one short calibration run per kind of run, on this machine."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

_COMPILE_SECONDS: list = []  # [seconds] once counting has started in this process


def compile_seconds() -> float:
    """Seconds this process has spent compiling with XLA (JAX's monitoring events), counted
    from the first call on."""
    if not _COMPILE_SECONDS:
        import jax.monitoring

        _COMPILE_SECONDS.append(0.0)

        def on_event(event, duration, **kwargs):
            if event.startswith("/jax/core/compile/"):
                _COMPILE_SECONDS[0] += duration
        jax.monitoring.register_event_duration_secs_listener(on_event)
    return _COMPILE_SECONDS[0]


def cost_key(run) -> tuple:
    """What a run's time per update depends on: the rule, the base optimizer and the shape
    of the problem (model, data, cluster); not its seed, learning rate or length."""
    c = run.config
    return (run.algorithm, run.base, c.dataset, c.model, c.workers, c.batch_size, c.eval_every)


@dataclass
class Calibration:
    """Per ``cost_key``: seconds of XLA compilation (once per group of runs that share a
    compiled replay) and seconds per applied update (training, evaluation at the run's own
    ``eval_every``, trace simulation)."""

    compile_seconds: dict
    per_update: dict

    def seconds(self, runs, groups) -> float:
        """Estimated seconds for ``runs`` in one process; ``groups``: the runs grouped by
        what they compile (``runner._compile_groups``)."""
        return (sum(self.compile_seconds[cost_key(group[0])] for group in groups)
                + sum(self.per_update[cost_key(r)] * r.config.updates for r in runs))


def calibrate(runs, data_dir=None, log=print) -> Calibration:
    """One short run (``2 x eval_every`` updates, at least 100, at most the run's own) per
    ``cost_key`` of ``runs``, after a warm-up run that loads the data as a real command
    does; the compilation time JAX reports is taken apart from the time per update."""
    from .runner import execute

    compile_seconds()  # counting starts
    first = runs[0]
    execute(replace(first, config=replace(first.config, updates=min(first.config.updates, 20)),
                    seed=first.seed + 10_000), data_dir=data_dir, trace_dir=None)
    kinds = {}
    for run in runs:
        kinds.setdefault(cost_key(run), run)
    compilation, per_update = {}, {}
    for k, (key, run) in enumerate(kinds.items()):
        n = min(run.config.updates, max(100, 2 * run.config.eval_every))
        compiled, started = compile_seconds(), time.perf_counter()
        execute(replace(run, config=replace(run.config, updates=n), seed=run.seed + 10_001 + k),
                data_dir=data_dir, trace_dir=None)
        elapsed, compiling = time.perf_counter() - started, compile_seconds() - compiled
        compilation[key] = compiling
        per_update[key] = max(elapsed - compiling, 1e-3) / n
        c = run.config
        log(f"  calibration {run.algorithm}-{run.base} ({c.dataset} {c.model}, {c.workers} workers, batch "
            f"{c.batch_size}, evaluated every {c.eval_every}): {1 / per_update[key]:,.0f} updates/s, "
            f"compilation {compiling:.1f} s")
    return Calibration(compilation, per_update)
