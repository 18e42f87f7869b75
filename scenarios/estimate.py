"""Estimating a command's wall time before running it: two short calibration runs on this machine."""

from __future__ import annotations

import time
from dataclasses import replace


def calibrate(run, data_dir=None, updates: int = 250) -> tuple[float, float]:
    """``(start, per_update)`` seconds for runs like ``run``: after one warm-up run (which
    loads the data once per process, as a real command does), a fresh replay of
    ``updates`` and of five times as many (distinct seeds, nothing cached on disk),
    fitted to ``start + per_update * updates``."""
    from .runner import execute

    times = []
    for k, n in enumerate((updates, updates, 5 * updates)):
        cfg = replace(run.config, updates=n, eval_every=run.config.eval_every)
        started = time.perf_counter()
        execute(replace(run, config=cfg, seed=run.seed + 10_000 + k), data_dir=data_dir, trace_dir=None)
        times.append((cfg.updates, time.perf_counter() - started))
    (n1, t1), (n2, t2) = times[1:]
    per_update = max((t2 - t1) / max(1, n2 - n1), 1e-6)
    return max(0.0, t1 - per_update * n1), per_update
