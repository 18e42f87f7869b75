"""The result store: a typed run result, written atomically, read back (old files migrated).

A run's directory holds ``history.csv`` (one row per evaluation) and ``result.json``,
each written to a temporary file and renamed into place, the JSON last: a run counts as
finished only once both exist.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Optional

import numpy as np

from algorithms import registry
from scenarios.errors import ConfigError, notice_once
from scenarios.experiments.outcomes import relabel

OUTCOMES = ("converged", "failed", "diverged")


@dataclass
class RunResult:
    """What one run measured, and where it came from."""

    run: str  # label, e.g. "gsgm-sgd-s0"
    key: str  # hash of everything that determines the numbers
    algorithm: str  # registry name, or a user's module:function
    base: str
    seed: int
    policy: str
    config: dict
    history: list  # [{"update", "sim_time", "loss", "accuracy"}] per evaluation
    trace: dict  # the trace's summary (sim.summarize)
    final_accuracy: Optional[float] = None
    accuracy_std: Optional[float] = None  # std of accuracy over the second half
    detrended_std: Optional[float] = None  # ... around its least-squares line (outcomes.detrended_std)
    final_loss: Optional[float] = None
    diverged: bool = False
    diverged_at: Optional[int] = None
    outcome: str = "converged"  # set again from the history whenever a result is read (outcomes.relabel)
    axis: Optional[str] = None
    axis_value: object = None
    updates_replayed: int = 0
    wall_time: float = 0.0
    updates_per_second: Optional[float] = None
    split: str = "test"  # what the history's accuracy is measured on: test, or validation (tuning runs)
    tuned: dict = field(default_factory=dict)  # hyperparameters tuned for this configuration, e.g. {"lr_sgd": 0.05}
    hyperparameters: dict = field(default_factory=dict)  # each tuned field: value, source, tuned_at (origins.Origin)
    versions: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)

    @property
    def dirname(self) -> str:
        return f"{self.run}-{self.key[:10]}"

    @property
    def mean_staleness(self) -> float:
        return self.trace["mean_staleness"]

    @property
    def p95_staleness(self) -> float:
        return self.trace["p95_staleness"]

    @property
    def sim_time(self) -> float:
        """Simulated time at the run's last evaluation."""
        return self.history[-1]["sim_time"] if self.history else 0.0

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> "RunResult":
        """Read a result.json; files from older stalesim versions are migrated, and the
        outcome label is set from the history by the current rule (outcomes.relabel)."""
        obj = dict(obj)

        obj["algorithm"] = registry.canonical(obj["algorithm"])  # "dcasgd" -> "dcasgd-a"
        obj["outcome"], detrended_std = relabel(obj["history"], obj["config"], bool(obj.get("diverged")))
        # a tuning run evaluated only at its last points has no stability measured (execute.evaluate_last)
        obj["detrended_std"] = detrended_std if obj.get("accuracy_std") is not None else None
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in known})


RENAMED_KEYS = {"scenario": "experiment"}  # keys of experiment.json and sweep files renamed on 2026-12-02


def current_names(manifest: dict, where: str = "experiment.json") -> dict:
    """An experiment.json (or a sweep file, ``where``) as read, with the keys renamed since it was
    written (``RENAMED_KEYS``) given their names now, in it and in its ``identity``; one notice
    per process, file kind and key."""
    def renamed(d: dict) -> dict:
        out = {}
        for key, value in d.items():
            if key in RENAMED_KEYS and RENAMED_KEYS[key] not in d:
                notice_once(f"{where}: the key {key!r} is now {RENAMED_KEYS[key]!r} (read as such)")
                key = RENAMED_KEYS[key]
            out[key] = value
        return out
    manifest = renamed(manifest)
    if isinstance(manifest.get("identity"), dict):
        manifest["identity"] = renamed(manifest["identity"])
    return manifest


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file in the same folder, then rename it into place; a
    folder that cannot be written (read-only, full, a file in the way) is one ConfigError line."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise ConfigError(f"{path}: cannot write there ({e.strerror or e})") from None


def check_writable(path, option: str) -> None:
    """Refuse, before any work, a file path that cannot be written: an existing folder, a
    file in the way of its folder, or a folder without write permission."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a folder; give a file name")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError(f"{option} {path}: cannot write there ({folder} is a file, not a folder)")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {path}: cannot write there (no write permission in {folder})")


def write_json_atomic(path: Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=1, allow_nan=False, default=_json_default))


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def write_result(run_dir: Path, result: RunResult) -> None:
    """A run's ``history.csv``, then its ``result.json``, each atomically."""
    rows = ["update,sim_time,loss,accuracy"] + [f"{e['update']},{e['sim_time']!r},{e['loss']!r},{e['accuracy']!r}"
                                                 for e in result.history]
    write_text_atomic(run_dir / "history.csv", "\n".join(rows) + "\n")
    write_json_atomic(run_dir / "result.json", result.to_json())


def load_result(path: Path) -> Optional[RunResult]:
    """A finished run's result, or None if absent or unreadable."""
    try:
        with open(path) as f:
            return RunResult.from_json(json.load(f))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def collect(out: Path) -> list[RunResult]:
    """Every finished run under ``out/runs``."""
    results = []
    for path in sorted((out / "runs").glob("*/result.json")):
        r = load_result(path)
        if r is not None:
            results.append(r)
    return results
