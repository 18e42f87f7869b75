"""Refuse, before any work, runs that would not fit in this machine's memory (a mistyped --updates or --workers).

What grows with a run's settings, each estimated from above (measured on CPython 3.11,
JAX 0.10, then rounded up):

- the trace, per applied update: the simulator's event log (three events per update, as
  Python tuples, then numpy columns), and the replay's walk over it and its op table,
  which exist at once at the replay's peak (measured about 1,100 bytes; counted 1,500);
- per worker: the parameter copies the replay keeps (a snapshot, a pending gradient and
  its backup, and up to three per-worker optimizer states: ``PARAMETER_COPIES``), a ring
  of recent versions (up to two rows per worker, at most ``RING_BUDGET_BYTES``), and the
  simulator's random streams and buffers (measured about 35 KiB; counted 48 KiB);
- per evaluation: the history's row, its record, its JSON and CSV text (counted 2,000
  bytes);
- the dataset: its arrays, their copy on the device and the temporaries of its
  normalisation (counted ten times its raw size).

It is one run's memory: ``--jobs N`` runs N at once, each in its own process.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from typing import Callable, NamedTuple, Optional

import jax

from algorithms.schedule import RING_BUDGET_BYTES
from scenarios.errors import ConfigError
from scenarios.workloads.models import make_model

BYTES_PER_UPDATE = 1_500
BYTES_PER_EVALUATION = 2_000
WORKER_BOOKKEEPING_BYTES = 48 * 1024
PARAMETER_COPIES = 6
DATASET_FACTOR = 10

# input shape, classes and samples (train + test) of each dataset, without reading its files
DATASET_SHAPES = {
    "fmnist": ((28, 28, 1), 10, 70_000, 1),
    "cifar10": ((32, 32, 3), 10, 60_000, 1),
    "cifar100": ((32, 32, 3), 100, 60_000, 1),
    "synthetic": ((32,), 10, 2_500, 4),  # float32
}

GiB = 1 << 30


class Estimate(NamedTuple):
    """One run's memory, by what it grows with (bytes)."""

    trace: int
    workers: int
    history: int
    dataset: int
    parameter_bytes: int  # one copy of the model's parameters

    @property
    def total(self) -> int:
        return self.trace + self.workers + self.history + self.dataset


def cli_option(field: str) -> str:
    """How ``run`` and ``reproduce`` spell a configuration field."""
    return {"updates": "--updates", "workers": "--workers"}.get(field, f"--set {field}")


def sweep_field(field: str) -> str:
    """How a sweep file spells it (in ``[set]`` or ``[axes]``)."""
    return f"sweep field {field}"


@lru_cache(maxsize=None)
def parameter_bytes(model: str, dataset: str) -> int:
    """Bytes of one copy of ``model``'s parameters for ``dataset`` (0 when unknown: the
    commands' own checks then say what is wrong)."""
    if dataset not in DATASET_SHAPES:
        return 0
    shape, classes, _, _ = DATASET_SHAPES[dataset]
    try:
        shapes = jax.eval_shape(make_model(model, shape, classes).init, jax.random.PRNGKey(0))
    except ValueError:
        return 0
    return sum(math.prod(x.shape) * x.dtype.itemsize for x in jax.tree_util.tree_leaves(shapes))


def estimate(cfg) -> Estimate:
    """The estimated peak memory of one run of configuration ``cfg``."""
    copy = parameter_bytes(cfg.model, cfg.dataset)
    ring = min(2 * cfg.workers * copy, RING_BUDGET_BYTES)
    shape, _, samples, itemsize = DATASET_SHAPES.get(cfg.dataset, ((), 0, 0, 0))
    raw = samples * math.prod(shape) * itemsize
    evaluations = cfg.updates // cfg.eval_every + 1
    return Estimate(trace=cfg.updates * BYTES_PER_UPDATE,
                    workers=cfg.workers * (PARAMETER_COPIES * copy + WORKER_BOOKKEEPING_BYTES) + ring,
                    history=evaluations * BYTES_PER_EVALUATION, dataset=DATASET_FACTOR * raw, parameter_bytes=copy)


def available_bytes() -> Optional[int]:
    """Memory available to a new process: ``MemAvailable`` of /proc/meminfo, else the free
    physical pages; None when neither can be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def check_memory(runs, label: Callable[[str], str] = cli_option, available: Optional[int] = None) -> None:
    """Raise ConfigError (one line: the field, the memory needed and the memory there is)
    if the largest run would need more memory than is available."""
    available = available_bytes() if available is None else available
    if available is None or not runs:
        return
    cfg, need = max(((cfg, estimate(cfg)) for cfg in {r.config for r in runs}), key=lambda pair: pair[1].total)
    if need.total <= available:
        return
    part = max(("trace", "workers", "history", "dataset"), key=lambda name: getattr(need, name))
    if part == "trace":
        what = (f"{label('updates')}: {cfg.updates:,} updates would need about {_gib(need.trace)} for the trace "
                f"({BYTES_PER_UPDATE:,} bytes per update)")
    elif part == "workers":
        per = need.workers / cfg.workers
        what = (f"{label('workers')}: {cfg.workers:,} workers would need about {_gib(need.workers)} for the "
                f"parameter copies ({per / 2 ** 20:,.1f} MiB per worker: up to {PARAMETER_COPIES} copies of the "
                f"{need.parameter_bytes / 2 ** 10:,.0f} KiB {cfg.model} and the simulator's state)")
    elif part == "history":
        what = (f"{label('eval_every')}: {cfg.eval_every:,} with {cfg.updates:,} updates is "
                f"{cfg.updates // cfg.eval_every + 1:,} evaluations, which would need about {_gib(need.history)} "
                f"for the history ({BYTES_PER_EVALUATION:,} bytes per evaluation)")
    else:
        what = f"{label('dataset')}: {cfg.dataset} would need about {_gib(need.dataset)}"
    if getattr(need, part) < available:
        what += f", {_gib(need.total)} in all"
    raise ConfigError(f"{what}; this machine has {_gib(available)} available")


def _gib(n: int) -> str:
    gib = n / GiB
    return f"{gib:,.0f} GiB" if gib >= 100 else f"{gib:.1f} GiB"
