"""The server's log: what happened, in server order, as numpy arrays.

Three kinds of event, each one row:

- ``PULL``  worker ``w`` reads the parameters at server version ``version``.
- ``PUSH``  worker ``w``'s gradient, computed on what it last pulled, reaches the
  server and is held in pending-gradient slot ``slot``.
- ``APPLY`` the gradient in ``slot`` (from worker ``w``) is handed to the server rule;
  ``version`` is the server version just before.

A trace depends on timing only, never on gradient values, so it can be replayed with
any server rule (``algorithms.replay``). The event kinds, and the walk that works out
each applied gradient's read version, are the trace contract in ``sim.events``, which
``algorithms`` shares.
"""

from __future__ import annotations

import io
import os
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .events import APPLY, PULL, PUSH, EventLog

FORMAT = "stalesim-trace"
FORMAT_VERSION = 1
_ARRAYS = ("kind", "worker", "slot", "time", "version")


class TraceError(ValueError):
    """A trace file is missing, corrupt or not a stalesim trace."""


@dataclass(frozen=True, eq=False)
class Trace:
    """The server log of one simulation (see the module docstring).

    ``gradients_per_version`` is how many applied gradients make one server version:
    1 for ``fifo`` and ``whitelist``, N for ``barrier``, K for ``buffered``.
    """

    kind: np.ndarray
    worker: np.ndarray
    slot: np.ndarray
    time: np.ndarray
    version: np.ndarray
    num_workers: int
    num_slots: int
    policy: str = "fifo"
    gradients_per_version: int = 1
    seed: int = 0
    spec: dict = field(default_factory=dict)

    def __post_init__(self):
        n = len(self.kind)
        for name in _ARRAYS:
            if len(getattr(self, name)) != n:
                raise TraceError(f"trace: array {name!r} has {len(getattr(self, name))} rows, expected {n}")

    # ----------------------------------------------------------------- derived views
    @property
    def num_events(self) -> int:
        return len(self.kind)

    @property
    def num_updates(self) -> int:
        """Number of applied gradients."""
        return int(np.count_nonzero(self.kind == APPLY))

    @property
    def applied_worker(self) -> np.ndarray:
        """Worker of each applied gradient, in apply order."""
        return self.worker[self.kind == APPLY]

    @property
    def apply_time(self) -> np.ndarray:
        """Simulated time of each applied gradient."""
        return self.time[self.kind == APPLY]

    @property
    def read_version(self) -> np.ndarray:
        """For each applied gradient, the server version its worker had read."""
        return np.asarray(EventLog(self).walk.read, dtype=np.int64)[self.kind == APPLY]

    @property
    def staleness(self) -> np.ndarray:
        """Staleness of each applied gradient: version at apply minus version read."""
        return self.version[self.kind == APPLY] - self.read_version

    @property
    def sim_time(self) -> float:
        return float(self.time[-1]) if len(self.time) else 0.0

    def arrays(self) -> dict:
        """The plain arrays and sizes a replay needs (what ``algorithms.replay`` takes)."""
        return {
            "kind": self.kind, "worker": self.worker, "slot": self.slot, "time": self.time,
            "version": self.version, "num_workers": self.num_workers,
            "num_slots": self.num_slots, "gradients_per_version": self.gradients_per_version,
        }

    def __eq__(self, other) -> bool:
        if not isinstance(other, Trace):
            return NotImplemented
        return (all(np.array_equal(getattr(self, a), getattr(other, a)) for a in _ARRAYS)
                and json.dumps(self._meta(), sort_keys=True) == json.dumps(other._meta(), sort_keys=True))

    # ------------------------------------------------------------------ persistence
    def _meta(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "num_workers": self.num_workers,
                "num_slots": self.num_slots, "policy": self.policy,
                "gradients_per_version": self.gradients_per_version, "seed": self.seed,
                "spec": self.spec}

    def save(self, path) -> Path:
        """Write the trace to ``path`` (``.npz``) atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez_compressed(buf, meta=np.frombuffer(json.dumps(self._meta()).encode(), dtype=np.uint8),
                            **{a: getattr(self, a) for a in _ARRAYS})
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # one per process: --jobs N may write it at once
        tmp.write_bytes(buf.getvalue())
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path) -> "Trace":
        """Read a trace written by ``save``; a missing, corrupt or foreign file raises TraceError."""
        path = Path(path)
        if not path.is_file():
            raise TraceError(f"trace file {str(path)!r}: no such file")
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
            raise TraceError(f"trace file {str(path)!r}: not a readable .npz file ({e})") from None
        missing = [k for k in ("meta", *_ARRAYS) if k not in data]
        if missing:
            raise TraceError(f"trace file {str(path)!r}: not a stalesim trace (missing {', '.join(missing)})")
        try:
            meta = json.loads(bytes(data.pop("meta")).decode())
        except (ValueError, UnicodeDecodeError):
            raise TraceError(f"trace file {str(path)!r}: corrupt metadata") from None
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise TraceError(f"trace file {str(path)!r}: format {meta.get('format')!r} "
                             f"v{meta.get('format_version')}, expected {FORMAT} v{FORMAT_VERSION}")
        trace = cls(kind=data["kind"].astype(np.int8), worker=data["worker"].astype(np.int32),
                    slot=data["slot"].astype(np.int32), time=data["time"].astype(np.float64),
                    version=data["version"].astype(np.int64), num_workers=int(meta["num_workers"]),
                    num_slots=int(meta["num_slots"]), policy=str(meta["policy"]),
                    gradients_per_version=int(meta["gradients_per_version"]), seed=int(meta["seed"]),
                    spec=meta.get("spec", {}))
        trace.validate(source=str(path))
        return trace

    def validate(self, source: str = "trace") -> None:
        """Check the structural invariants; raise TraceError naming the first violation."""
        k, w, s = self.kind, self.worker, self.slot
        if len(k) and (k.min() < 0 or k.max() > 2):
            raise TraceError(f"{source}: event kinds must be 0 (pull), 1 (push) or 2 (apply)")
        if len(w) and (w.min() < 0 or w.max() >= self.num_workers):
            raise TraceError(f"{source}: worker ids must lie in [0, {self.num_workers})")
        moving = k != PULL
        if moving.any() and (s[moving].min() < 0 or s[moving].max() >= self.num_slots):
            raise TraceError(f"{source}: slots must lie in [0, {self.num_slots})")
        if len(self.time) > 1 and np.any(np.diff(self.time) < 0):
            raise TraceError(f"{source}: event times must not decrease")
