"""The timing fields of a configuration checked together, and recorded compute times read once.

``ExperimentConfig.validate`` calls ``check_timing``: each field is checked alone by its
declaration; this checks how they combine (speeds against workers and spread, stragglers
against workers, compute against compute_trace, crashes) and reads the compute_trace
file, returning its sha256 (kept in the configuration, so a changed file is a different
experiment). The timing model and the CSV format: docs/timing.md.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from algorithms import registry
from scenarios.errors import ConfigError
from sim import Barrier, SpecError, make_policy
from sim.cluster import parse_durations, read_durations

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

_READ: dict = {}  # (path, sha256 of its bytes) -> columns: each validation reads the file, parses it once


def trace_path(value: str) -> Path:
    """The file ``compute_trace`` names: a path (relative to the current folder), or the name
    of a shipped example (``compute_times.csv``) when no such file exists."""
    path = Path(value).expanduser()
    if not path.exists() and not path.is_absolute() and (EXAMPLES / value).is_file():
        return EXAMPLES / value
    return path


def read_compute_trace(value: str) -> tuple[tuple[tuple[float, ...], ...], str]:
    """The recorded durations of ``compute_trace`` (one tuple per column) and the file's sha256;
    ConfigError naming the field, the file and the line for a bad file."""

    path = trace_path(value)
    try:
        data = path.read_bytes()
    except OSError:
        try:
            read_durations(path)  # says why, in one line
        except SpecError as e:
            raise ConfigError(f"compute_trace: {e}") from None
        raise ConfigError(f"compute_trace: {path}: cannot be read") from None
    sha = hashlib.sha256(data).hexdigest()
    if (str(path), sha) not in _READ:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ConfigError(f"compute_trace: {path}: not a UTF-8 text (CSV) file") from None
        try:
            _READ[str(path), sha] = parse_durations(text, str(path))
        except SpecError as e:
            raise ConfigError(f"compute_trace: {e}") from None
    return _READ[str(path), sha], sha


def check_timing(cfg) -> str:
    """ConfigError naming the field if the timing fields do not fit together; else the sha256
    of the compute_trace file ("" without one)."""
    if cfg.speeds:
        if len(cfg.speeds) != cfg.workers:
            raise ConfigError(f"speeds: expected {cfg.workers} values (one per worker, workers={cfg.workers}), "
                              f"got {len(cfg.speeds)}")
        if cfg.spread != 1:
            raise ConfigError(f"speeds: gives every worker's speed itself; set spread=1 with it "
                              f"(spread={cfg.spread:g} would not be used)")
        if cfg.speed_assignment != "index":
            raise ConfigError(f"speeds: gives every worker's speed itself; speed_assignment={cfg.speed_assignment} "
                              "cannot also apply (leave it at index)")
    if cfg.stragglers > cfg.workers:
        raise ConfigError(f"stragglers: must be <= workers ({cfg.workers}), got {cfg.stragglers}")
    if cfg.compute == "replay" and not cfg.compute_trace:
        raise ConfigError("compute: replay needs the recorded times, compute_trace=FILE.csv (docs/timing.md)")
    if not cfg.compute_trace:
        return ""
    if cfg.compute != "replay":
        raise ConfigError(f"compute_trace: needs compute=replay (compute={cfg.compute} would not use the file)")
    columns, sha = read_compute_trace(cfg.compute_trace)
    if len(columns) > 1:
        if len(columns) != cfg.workers:
            raise ConfigError(f"compute_trace: {cfg.compute_trace} has {len(columns)} columns (one per worker) but "
                              f"workers={cfg.workers}; give one column (shared by all workers) or {cfg.workers}")
        if cfg.spread != 1:
            raise ConfigError(f"compute_trace: {cfg.compute_trace} has one column per worker (their own times); set "
                              f"spread=1 so they are not also log-spaced (spread={cfg.spread:g})")
    return sha


def check_crashes(algorithm: str, cfg) -> None:
    """ConfigError naming ``mttf`` if ``algorithm`` runs under a policy that cannot take crashes
    (the barrier of ssgd would wait for a crashed worker forever). Cheap: call it for every run
    before any work starts."""

    if cfg.mttf > 0 and isinstance(make_policy(registry.get(algorithm).policy_for(cfg.to_dict())), Barrier):
        raise ConfigError(f"mttf: {algorithm} runs under the barrier policy, which does not support crashes (it "
                          "would wait for a crashed worker forever); set mttf=0 or choose another algorithm")
