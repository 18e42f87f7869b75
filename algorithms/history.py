"""What a replay measured: the ``History`` of each run, and the recorder that fills it as the replay evaluates."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

TIME_EVENTS = "/stalesim/time/"


@contextlib.contextmanager
def timed(part: str):
    """The block's wall time (as a decorator: each call's), reported to ``jax.monitoring`` as
    the duration event ``/stalesim/time/<part>``. Nothing listens unless asked: ``python -m
    benchmarks`` splits a command's time by these events."""
    start = time.perf_counter()
    try:
        yield
    finally:
        jax.monitoring.record_event_duration_secs(TIME_EVENTS + part, time.perf_counter() - start)


@dataclass
class History:
    """What a replay measured. Evaluations: ``update`` (applied gradients so far),
    ``sim_time``, ``loss``, ``accuracy``. Per applied gradient: ``staleness`` and
    ``worker``. A run whose loss became NaN or inf stops at ``diverged_at`` (the update
    index of the first non-finite evaluation); its evaluations end at the last finite one."""

    update: np.ndarray
    sim_time: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    staleness: np.ndarray
    worker: np.ndarray
    diverged: bool = False
    diverged_at: int | None = None
    wall_time: float = 0.0
    updates_replayed: int = 0
    params: Any = field(default=None, repr=False)

    def to_records(self) -> list[dict]:
        return [{"update": int(u), "sim_time": float(t), "loss": float(l), "accuracy": float(a)}
                for u, t, l, a in zip(self.update, self.sim_time, self.loss, self.accuracy)]


def updates_per_second(history: History) -> float:
    return history.updates_replayed / history.wall_time if history.wall_time > 0 else math.inf


@jax.jit
def all_finite(params) -> jax.Array:
    """Whether every entry of every leaf of ``params`` is finite."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(params)]))


class Recorder:
    """The evaluations of R runs replayed together. A run stops being evaluated at its
    first non-finite loss or accuracy (it diverged)."""

    def __init__(self, eval_fn: Callable, runs: int):
        self.eval_fn = eval_fn
        self.evals: list[list[tuple]] = [[] for _ in range(runs)]  # (update, time, loss, accuracy)
        self.diverged_at: list[Optional[int]] = [None] * runs

    @property
    def all_diverged(self) -> bool:
        return all(d is not None for d in self.diverged_at)

    def evaluate(self, params_of: Callable[[int], Any], update, sim_time) -> None:
        """Evaluate each run still going; ``params_of(r)`` gives run r's parameters. The training
        dispatched before is waited for first, so that the two are timed apart (``timed``)."""
        with timed("training"):
            jax.block_until_ready(params_of(0))
        with timed("evaluation"):
            self._evaluate(params_of, update, sim_time)

    def check_finite(self, params_of: Callable[[int], Any], update) -> None:
        """Instead of an evaluation: each run still going whose parameters are no longer all
        finite diverged at ``update`` (its loss would not be finite either)."""
        with timed("training"):
            for r, diverged_at in enumerate(self.diverged_at):
                if diverged_at is None and not bool(all_finite(params_of(r))):
                    self.diverged_at[r] = int(update)

    def _evaluate(self, params_of, update, sim_time) -> None:
        for r, diverged_at in enumerate(self.diverged_at):
            if diverged_at is not None:
                continue
            metrics = self.eval_fn(params_of(r))
            loss, acc = float(metrics["loss"]), float(metrics["accuracy"])
            if not (np.isfinite(loss) and np.isfinite(acc)):
                self.diverged_at[r] = int(update)
            else:
                self.evals[r].append((int(update), float(sim_time), loss, acc))

    def histories(self, staleness: np.ndarray, worker: np.ndarray, wall_time: float, updates_replayed: int,
                  params: Sequence[Any]) -> list[History]:
        """One ``History`` per run; ``params`` holds each run's final parameters (or Nones)."""
        out = []
        for evals, diverged_at, p in zip(self.evals, self.diverged_at, params):
            rows = np.asarray(evals, dtype=np.float64).reshape(-1, 4)
            out.append(History(
                update=rows[:, 0].astype(np.int64), sim_time=rows[:, 1], loss=rows[:, 2], accuracy=rows[:, 3],
                staleness=staleness, worker=worker, diverged=diverged_at is not None, diverged_at=diverged_at,
                wall_time=wall_time, updates_replayed=updates_replayed, params=p))
        return out
