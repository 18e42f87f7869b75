"""Cluster description: who computes how fast, and what the network costs.

Everything here is a frozen dataclass that validates itself on construction, so a
bad value fails at once with one line that names the field and what is allowed.
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from .checks import check

COMPUTE_KINDS = ("constant", "exponential", "lognormal", "replay")


class SpecError(ValueError):
    """A cluster, policy or simulation argument is out of range or of the wrong kind."""


def _check_number(name: str, value, *, minimum: float = 0.0, strict: bool = False) -> float:
    """``value`` as a float ``>= minimum`` (``> minimum`` if ``strict``), or SpecError naming ``name``."""
    return check(name, value, SpecError, low=minimum, low_open=strict)


def _check_int(name: str, value, *, minimum: int) -> int:
    return check(name, value, SpecError, kind=int, low=minimum)


@dataclass(frozen=True)
class ComputeModel:
    """Time a worker takes to compute one gradient, before its speed factor.

    kind:
      - ``constant``: always ``mean``.
      - ``exponential``: exponential with mean ``mean``.
      - ``lognormal``: lognormal with mean ``mean`` and log-space std ``sigma``.
      - ``replay``: recorded step times, either ``durations`` (one sequence shared by all
        workers: worker w's k-th gradient takes ``durations[(k + w) mod n]``) or
        ``worker_durations`` (one sequence per worker: worker w's k-th gradient takes
        ``worker_durations[w][k mod n_w]``). Give exactly one of the two.
    A worker with speed factor ``s`` takes ``duration / s``.
    """

    kind: str = "constant"
    mean: float = 1.0
    sigma: float = 0.5
    durations: tuple[float, ...] = ()
    worker_durations: tuple[tuple[float, ...], ...] = ()

    def __post_init__(self):
        if self.kind not in COMPUTE_KINDS:
            raise SpecError(f"compute: unknown model {self.kind!r}; allowed: {', '.join(COMPUTE_KINDS)}")
        _check_number("compute.mean", self.mean, strict=True)
        _check_number("compute.sigma", self.sigma)
        if self.kind == "replay":
            per_worker = tuple(tuple(column) for column in self.worker_durations)
            if per_worker and len(self.durations):
                raise SpecError("compute.durations: give durations (shared) or worker_durations (one sequence "
                                "per worker), not both")
            if not per_worker and len(self.durations) == 0:
                raise SpecError("compute.durations: the replay model needs at least one duration")
            for column in per_worker:
                if not column:
                    raise SpecError("compute.worker_durations: every worker needs at least one duration")
                for d in column:
                    _check_number("compute.worker_durations", d, strict=True)
            for d in self.durations:
                _check_number("compute.durations", d, strict=True)
            object.__setattr__(self, "durations", tuple(float(d) for d in self.durations))
            object.__setattr__(self, "worker_durations", tuple(tuple(float(d) for d in c) for c in per_worker))

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` draws of the base duration (speed factor not applied)."""
        if self.kind == "constant":
            return np.full(size, self.mean)
        if self.kind == "exponential":
            return rng.exponential(self.mean, size)
        if self.kind == "lognormal":
            # E[exp(N(mu, s^2))] = exp(mu + s^2/2) = mean
            mu = math.log(self.mean) - 0.5 * self.sigma**2
            return rng.lognormal(mu, self.sigma, size)
        raise AssertionError("replay durations are cycled, not sampled")

    def replay_for(self, worker: int) -> tuple[np.ndarray, int]:
        """The replay model's durations for ``worker`` and the index its first gradient takes."""
        if self.worker_durations:
            return np.asarray(self.worker_durations[worker]), 0
        return np.asarray(self.durations), worker


@dataclass(frozen=True)
class NetworkModel:
    """One transfer (a pull of the parameters or a push of a gradient) takes

        latency + model_bytes / bandwidth + Exp(jitter)

    seconds. ``bandwidth`` is in bytes per second; ``0`` means infinite. ``jitter`` is the
    mean of an exponential extra delay; ``0`` means none.
    """

    latency: float = 0.0
    bandwidth: float = 0.0
    model_bytes: float = 0.0
    jitter: float = 0.0

    def __post_init__(self):
        for name in ("latency", "bandwidth", "model_bytes", "jitter"):
            _check_number(f"network.{name}", getattr(self, name))

    @property
    def is_instant(self) -> bool:
        return self.latency == 0 and self.jitter == 0 and (self.bandwidth == 0 or self.model_bytes == 0)

    @property
    def fixed_delay(self) -> float:
        transfer = self.model_bytes / self.bandwidth if self.bandwidth > 0 else 0.0
        return self.latency + transfer

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        delay = np.full(size, self.fixed_delay)
        if self.jitter > 0:
            delay += rng.exponential(self.jitter, size)
        return delay


@dataclass(frozen=True)
class FailureModel:
    """Worker crashes: each worker fails after Exp(mean_time_to_failure) seconds of
    being up, loses the gradient it is computing or sending, and returns after
    ``downtime`` seconds by pulling fresh parameters. ``mean_time_to_failure = 0``
    (the default) disables failures."""

    mean_time_to_failure: float = 0.0
    downtime: float = 1.0

    def __post_init__(self):
        _check_number("failures.mean_time_to_failure", self.mean_time_to_failure)
        _check_number("failures.downtime", self.downtime)

    @property
    def enabled(self) -> bool:
        return self.mean_time_to_failure > 0


@dataclass(frozen=True)
class ClusterSpec:
    """A parameter server and ``num_workers`` workers.

    ``speeds`` gives one speed factor per worker (a worker with speed 2 computes twice
    as fast); empty means all 1. ``service_time`` is the server's time to apply one
    gradient; the server applies one gradient at a time.
    """

    num_workers: int
    compute: ComputeModel = field(default_factory=ComputeModel)
    speeds: tuple[float, ...] = ()
    push: NetworkModel = field(default_factory=NetworkModel)
    pull: NetworkModel = field(default_factory=NetworkModel)
    service_time: float = 0.0
    failures: FailureModel = field(default_factory=FailureModel)

    def __post_init__(self):
        _check_int("workers", self.num_workers, minimum=1)
        if not isinstance(self.compute, ComputeModel):
            raise SpecError(f"compute: expected a ComputeModel, got {type(self.compute).__name__}")
        speeds = tuple(self.speeds)
        if speeds and len(speeds) != self.num_workers:
            raise SpecError(f"speeds: expected {self.num_workers} values (one per worker), got {len(speeds)}")
        for s in speeds:
            _check_number("speeds", s, strict=True)
        if self.compute.worker_durations and len(self.compute.worker_durations) != self.num_workers:
            raise SpecError(f"compute.worker_durations: expected {self.num_workers} sequences (one per worker), "
                            f"got {len(self.compute.worker_durations)}")
        object.__setattr__(self, "speeds", tuple(float(s) for s in speeds))
        _check_number("service_time", self.service_time)

    @property
    def worker_speeds(self) -> np.ndarray:
        return np.asarray(self.speeds, dtype=float) if self.speeds else np.ones(self.num_workers)

    def to_dict(self) -> dict:
        d = asdict(self)
        if not self.compute.worker_durations:
            del d["compute"]["worker_durations"]  # specs without it keep the keys (and cached traces) they had
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ClusterSpec":
        """The inverse of ``to_dict`` (for example from a loaded trace's ``spec``)."""
        d = dict(d)
        compute = d.pop("compute", {}) or {}
        return cls(
            compute=ComputeModel(**{**compute, "durations": tuple(compute.get("durations", ())),
                                    "worker_durations": tuple(tuple(c) for c in compute.get("worker_durations", ()))}),
            push=NetworkModel(**(d.pop("push", {}) or {})),
            pull=NetworkModel(**(d.pop("pull", {}) or {})),
            failures=FailureModel(**(d.pop("failures", {}) or {})),
            speeds=tuple(d.pop("speeds", ()) or ()),
            **d,
        )


def straggler_speeds(num_workers: int, spread: float) -> tuple[float, ...]:
    """Speed factors evenly spaced on a log scale from ``1/spread`` to 1 (the fastest
    worker is 1, the slowest ``spread`` times slower); ``spread = 1`` is homogeneous."""
    _check_number("spread", spread, minimum=1.0)
    _check_int("workers", num_workers, minimum=1)
    if num_workers == 1:
        return (1.0,)
    return tuple(float(x) for x in np.geomspace(1.0 / spread, 1.0, num_workers))


def network(latency: float = 0.0, bandwidth: float = 0.0, model_bytes: float = 0.0,
            jitter: float = 0.0) -> NetworkModel:
    """A symmetric network model (the same for push and pull)."""
    return NetworkModel(latency=latency, bandwidth=bandwidth, model_bytes=model_bytes, jitter=jitter)


def as_durations(values: Sequence[float]) -> ComputeModel:
    """A compute model that replays measured step durations, cycling through them."""
    values = tuple(float(v) for v in values)
    return ComputeModel(kind="replay", mean=float(np.mean(values)) if values else 1.0, durations=values)


def replay_model(columns: Sequence[Sequence[float]]) -> ComputeModel:
    """The replay model of recorded durations: one column is shared by all workers (cycled
    with offsets, as ``as_durations``), several are one per worker."""
    columns = [tuple(float(v) for v in c) for c in columns]
    if len(columns) == 1:
        return as_durations(columns[0])
    every = [v for c in columns for v in c]
    return ComputeModel(kind="replay", mean=float(np.mean(every)) if every else 1.0,
                        worker_durations=tuple(columns))


def read_durations(path) -> tuple[tuple[float, ...], ...]:
    """Recorded compute times from a CSV file, as columns (see docs/timing.md for the format).

    Comma-separated, UTF-8; blank lines and lines starting with ``#`` are skipped. The first
    remaining line is a header when none of its cells is a number (names, ignored);
    otherwise it is data. Every data line has the same number of cells, each a finite
    number > 0 (seconds of one gradient). One column: shared by all workers; several: one
    per worker. Errors (``SpecError``) name the file and the line.
    """
    name = str(path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except FileNotFoundError:
        raise SpecError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise SpecError(f"{name}: is a folder, not a CSV file") from None
    except UnicodeDecodeError:
        raise SpecError(f"{name}: not a UTF-8 text (CSV) file") from None
    except OSError as e:
        raise SpecError(f"{name}: cannot be read ({e.strerror or e})") from None
    return parse_durations(text, name)


def parse_durations(text: str, name: str = "durations") -> tuple[tuple[float, ...], ...]:
    """``read_durations`` of a file's text; errors name ``name`` and the line."""
    rows: list[list[float]] = []
    width = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in next(csv.reader([line]))]
        values = []
        for cell in cells:
            try:
                values.append(float(cell))
            except ValueError:
                values.append(None)
        if width is None:
            width = len(cells)
            if all(v is None for v in values):
                continue  # the header
        if len(cells) != width:
            raise SpecError(f"{name} line {number}: expected {width} values (as the first line), got {len(cells)}")
        for column, (cell, value) in enumerate(zip(cells, values), start=1):
            if value is None:
                raise SpecError(f"{name} line {number}, column {column}: "
                                + ("empty value" if not cell else f"{cell!r} is not a number"))
            if not math.isfinite(value) or value <= 0:
                raise SpecError(f"{name} line {number}, column {column}: a duration must be a finite number > 0, "
                                f"got {cell}")
        rows.append(values)
    if not rows:
        raise SpecError(f"{name}: no durations (expected one column shared by all workers, or one per worker)")
    return tuple(tuple(row[c] for row in rows) for c in range(width))
