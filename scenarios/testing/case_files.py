"""The canonical cases: their names, the shipped trace and workload files, and how those files were made."""

from __future__ import annotations

import importlib.resources
from functools import lru_cache
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from sim import ClusterSpec, ComputeModel, FailureModel, Trace, simulate
from sim.events import ReplayError


class _TraceCase(NamedTuple):
    description: str
    spec: Callable  # () -> sim.ClusterSpec
    policy: str
    num_updates: int
    seed: int = 0


def _spec(num_workers: int, speeds=(), mttf: float = 0.0, downtime: float = 1.0):
    def make():

        return ClusterSpec(num_workers=num_workers, compute=ComputeModel("exponential"), speeds=tuple(speeds),
                           failures=FailureModel(mttf, downtime))
    return make


_TRACES: dict[str, _TraceCase] = {
    "fifo-4": _TraceCase("4 equal workers, exponential compute times, fifo", _spec(4), "fifo", 80),
    "fifo-hetero-8": _TraceCase("8 workers with speeds log-spaced over 4x, exponential, fifo",
                                _spec(8, speeds=tuple(float(x) for x in np.geomspace(0.25, 1.0, 8))), "fifo", 96),
    "whitelist-4": _TraceCase("4 workers with speeds 1, 1, 2, 4, GSGM's white list (whitelist-wait)",
                              _spec(4, speeds=(1.0, 1.0, 2.0, 4.0)), "whitelist-wait", 80),
    "barrier-4": _TraceCase("4 equal workers, synchronous (barrier): one step per 4 gradients", _spec(4),
                            "barrier", 80),
    "buffered-4": _TraceCase("4 equal workers, buffered:2 (FedBuff): one step per 2 gradients", _spec(4),
                             "buffered:2", 80),
    "crash-4": _TraceCase("4 equal workers, fifo; workers crash (mean time to failure 8 s) and come back after "
                          "2 s, losing their gradient", _spec(4, mttf=8.0, downtime=2.0), "fifo", 80),
}
_WORKLOADS = {"": "least squares, 6 weights, 64 samples, batch 8",
              "-mlp": "MLP 8-16-3 (tanh), softmax cross-entropy, 128 samples, batch 16"}
CASES_PACKAGE = "scenarios"
CASES_FOLDER = "cases"
WORKLOAD_FILE = "workloads.npz"


def cases() -> dict[str, str]:
    """Every canonical case's name, with a line saying what it is: each trace on least
    squares (``"fifo-4"``) and on a small MLP (``"fifo-4-mlp"``)."""
    return {f"{trace}{suffix}": f"{case.description}, {case.num_updates} updates; {workload}"
            for suffix, workload in _WORKLOADS.items() for trace, case in _TRACES.items()}


class CaseError(ReplayError):
    """A case name is unknown, or the case's policy does not fit the rule."""


def _split(name: str) -> tuple[str, str]:
    if not isinstance(name, str) or name not in cases():
        raise CaseError(f"case: unknown {name!r}; allowed: {', '.join(cases())}")
    return (name[:-4], "-mlp") if name.endswith("-mlp") else (name, "")


def _cases_dir() -> Path:
    return Path(str(importlib.resources.files(CASES_PACKAGE) / CASES_FOLDER))


def simulate_case(name: str):
    """The trace of case ``name`` made afresh by the simulator (the shipped file was made so)."""

    case = _TRACES[_split(name)[0]]
    return simulate(case.spec(), policy=case.policy, num_updates=case.num_updates, seed=case.seed)


@lru_cache(maxsize=None)
def case_trace(name: str):
    """The shipped trace of case ``name`` (a ``sim.Trace``), as the simulator made it once."""

    return Trace.load(_cases_dir() / f"{_split(name)[0]}.npz")


def _product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` summed in a fixed order (k = 0, 1, ...), one IEEE operation at a time: the
    same bits on every CPU, where ``@`` goes to a BLAS kernel chosen for the CPU."""
    out = a[:, 0:1] * b[0:1]
    for k in range(1, a.shape[1]):
        out = out + a[:, k:k + 1] * b[k:k + 1]
    return out


def make_workload_arrays() -> dict[str, np.ndarray]:
    """The workloads' data and initial MLP weights, from numpy's PCG64 (seed 2026), with
    products in a fixed order (``_product``); the shipped ``workloads.npz`` was made so."""
    rng = np.random.default_rng(2026)
    x = rng.normal(size=(64, 6)).astype(np.float32)
    w_true = np.linspace(-1.0, 1.5, 6).astype(np.float32)
    y = (_product(x, w_true[:, None])[:, 0] + 0.1 * rng.normal(size=64)).astype(np.float32)
    mx = rng.normal(size=(128, 8)).astype(np.float32)
    teacher = rng.normal(size=(8, 3)).astype(np.float32)
    my = np.argmax(np.tanh(_product(mx, teacher)) + 0.3 * rng.normal(size=(128, 3)), axis=1).astype(np.int32)
    return {"lsq_x": x, "lsq_y": y, "mlp_x": mx, "mlp_y": my,
            "mlp_w1": (rng.normal(size=(8, 16)) / np.sqrt(8)).astype(np.float32),
            "mlp_b1": np.zeros(16, np.float32),
            "mlp_w2": (rng.normal(size=(16, 3)) / 4.0).astype(np.float32),
            "mlp_b2": np.zeros(3, np.float32)}


def write_case_files(folder=None) -> list[Path]:
    """(Re)write the case traces and ``workloads.npz`` into ``folder`` (default the
    shipped ``scenarios/cases/``). Only for maintainers: shipped cases must not change."""
    folder = Path(folder) if folder is not None else _cases_dir()
    folder.mkdir(parents=True, exist_ok=True)
    written = [simulate_case(trace).save(folder / f"{trace}.npz") for trace in _TRACES]
    path = folder / WORKLOAD_FILE
    np.savez_compressed(path, **make_workload_arrays())
    return [*written, path]


@lru_cache(maxsize=None)
def _workload_arrays() -> dict:
    with np.load(_cases_dir() / WORKLOAD_FILE, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
