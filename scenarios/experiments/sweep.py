"""Sweeps: a TOML file names a base scenario and axes to vary; it expands to runs.

    name = "staleness"
    scenario = "fmnist"                 # base configuration
    algorithms = ["asgd", "dcasgd", "gsgm"]
    bases = ["sgd"]
    seeds = 2
    target_accuracy = 0.7               # for "simulated time to reach it"

    [set]                               # fixed overrides of the base configuration
    updates = 2000

    [axes]                              # the sweep is the product of these lists
    workers = [4, 8, 16, 32]
    spread = [1.0, 4.0]

Runs use the same keys and directory layout as ``stalesim run``, so a sweep resumes,
and can be started with one backend and finished with the other. Runs that share a
cluster shape, policy and seed share one cached trace (``DIR/traces``).

Backends: ``local`` (a pool of processes on this machine) and ``ray`` (tasks on an
existing Ray cluster, or a local one). Workers return results; this process writes
them, so the layout is the same whatever the backend.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

from algorithms import BASES
from scenarios.errors import ConfigError
from scenarios.experiments.catalogue import SCENARIOS, RunSpec, check_algorithms, grid
from scenarios.experiments.config import FIELDS, ExperimentConfig, check_names
from scenarios.experiments.results import RunResult
from scenarios.experiments.tuning import grids_from_table, run_protocol
from sim.checks import Spec

SHIPPED = Path(__file__).resolve().parents[1] / "sweeps"


@dataclass(frozen=True)
class Sweep:
    name: str
    scenario: str
    config: ExperimentConfig
    axes: dict
    algorithms: tuple
    bases: tuple
    seeds: int
    target_accuracy: float
    tune: tuple = ()  # tuning grids from the [tune] table
    path: Optional[Path] = None  # the file it was read from
    explicit: frozenset = frozenset()  # the fields the file sets ([set]) or varies ([axes]): never replaced

    @property
    def identity(self) -> dict:
        """What makes two sweeps the same experiment (so they may share an output folder): what the
        file asks for, not where it lies."""
        fixed = {k: getattr(self.config, k) for k in sorted(self.explicit) if k not in self.axes}
        return {"sweep": self.name, "scenario": self.scenario, "algorithms": list(self.algorithms),
                "bases": list(self.bases), "seeds": self.seeds, "target_accuracy": self.target_accuracy,
                "set": fixed, "axes": self.axes, "tune": [str(g) for g in self.tune]}

    def runs(self) -> list[RunSpec]:
        names = list(self.axes)
        configs = []
        for values in itertools.product(*(self.axes[n] for n in names)):
            try:
                configs.append(replace(self.config, **dict(zip(names, values))).validate())
            except ConfigError as e:
                raise ConfigError(f"sweep axes {dict(zip(names, values))}: {e}") from None
        return grid(configs, self.algorithms, self.bases, self.seeds)


def load_sweep(path_or_name: str) -> Sweep:
    """Read and validate a sweep file (or the name of a shipped one, e.g. ``staleness``)."""
    path = Path(path_or_name)
    if not path.is_file() and (SHIPPED / f"{path_or_name}.toml").is_file():
        path = SHIPPED / f"{path_or_name}.toml"
    if not path.is_file():
        shipped = ", ".join(p.stem for p in sorted(SHIPPED.glob("*.toml")))
        raise ConfigError(f"sweep: no file {str(path_or_name)!r} and no shipped sweep of that name ({shipped})")
    try:
        spec = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"sweep {path}: not valid TOML ({e})") from None
    known = {"name", "scenario", "algorithms", "bases", "seeds", "target_accuracy", "set", "axes", "tune"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ConfigError(f"sweep {path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
    scenario_name = spec.get("scenario", "fmnist")
    if scenario_name not in SCENARIOS:
        raise ConfigError(f"sweep scenario: unknown {scenario_name!r}; allowed: {', '.join(SCENARIOS)}")
    scenario = SCENARIOS[scenario_name]
    fixed = spec.get("set", {})
    if not isinstance(fixed, dict):
        raise ConfigError("sweep set: must be a table of field = value")
    if "target_accuracy" in spec and "target_accuracy" not in fixed:
        fixed = {**fixed, "target_accuracy": spec["target_accuracy"]}  # the top-level key sets the field
    config = scenario.config.with_overrides(fixed)
    axes = spec.get("axes", {})
    field_names = set(FIELDS)
    if not isinstance(axes, dict):
        raise ConfigError("sweep axes: must be a table of field = [values]")
    for name, values in axes.items():
        if name not in field_names:
            raise ConfigError(f"sweep axes.{name}: unknown field; allowed: {', '.join(sorted(field_names))}")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep axes.{name}: must be a non-empty list of values")
    algorithms = check_algorithms("sweep algorithms", spec.get("algorithms", scenario.algorithms))
    bases = check_names("sweep bases", spec.get("bases", scenario.bases), BASES)
    seeds = Spec(int, low=1).check("sweep seeds", spec.get("seeds", 2), ConfigError)
    tune = spec.get("tune", {})
    if not isinstance(tune, dict):
        raise ConfigError("sweep tune: must be a table of field = [values]")
    grids = grids_from_table(tune)
    sweep = Sweep(spec.get("name", path.stem), scenario_name, config, axes, algorithms, bases, seeds,
                  config.target_accuracy, grids, path.resolve(), frozenset(fixed) | frozenset(axes))
    sweep.runs()  # validates every combination now
    return sweep


def run_sweep(sweep: Sweep, out: Path, *, tuning_seeds: int = 2, **options) -> list[RunResult]:
    """Tune (with a ``[tune]`` table) and carry out the sweep's missing runs (``tuning.run_protocol``
    options: planned, backend, jobs, ...)."""

    return run_protocol(sweep.runs(), out, grids=sweep.tune, tuning_seeds=tuning_seeds, explicit=sweep.explicit,
                        **options)
