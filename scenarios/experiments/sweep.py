"""Sweeps: a TOML file names a base experiment and axes to vary; it expands to runs.

    name = "staleness"
    experiment = "fmnist"                 # base configuration
    algorithms = ["asgd", "dcasgd", "gsgm"]
    bases = ["sgd"]
    seeds = 2
    target_accuracy = 0.7               # for "simulated time to reach it"

    [set]                               # fixed overrides of the base configuration
    updates = 2000

    [axes]                              # the sweep is the product of these lists
    workers = [4, 8, 16, 32]
    spread = [1.0, 4.0]

Instead of ``algorithms`` x ``bases``, ``methods`` lists the (algorithm, base) pairs to
run, e.g. ``methods = [["gsgm", "sgd"], ["asgd-server", "momentum"]]``. A learning-rate
axis varies only the runs that read it: with ``lr_sgd`` and ``lr_momentum`` both axes, a
run on sgd goes along ``lr_sgd`` (its ``lr_momentum`` stays configured) and a run on
momentum along ``lr_momentum``, as a tuning grid's ``lr`` does.

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
from scenarios.experiments.catalogue import EXPERIMENTS, RunSpec, check_algorithms, grid
from scenarios.experiments.config import FIELDS, ExperimentConfig, check_names
from scenarios.experiments.origins import LEARNING_RATES
from scenarios.experiments.results import RunResult, current_names
from scenarios.experiments.tuning import grids_from_table, run_protocol
from sim.checks import Spec

SHIPPED = Path(__file__).resolve().parents[1] / "sweeps"


@dataclass(frozen=True)
class Sweep:
    name: str
    experiment: str
    config: ExperimentConfig
    axes: dict
    algorithms: tuple
    bases: tuple
    seeds: int
    target_accuracy: float
    tune: tuple = ()  # tuning grids from the [tune] table
    path: Optional[Path] = None  # the file it was read from
    explicit: frozenset = frozenset()  # the fields the file sets ([set]) or varies ([axes]): never replaced
    methods: tuple = ()  # (algorithm, base) pairs, when the file lists them instead of algorithms x bases

    @property
    def identity(self) -> dict:
        """What makes two sweeps the same experiment (so they may share an output folder): what the
        file asks for, not where it lies."""
        fixed = {k: getattr(self.config, k) for k in sorted(self.explicit) if k not in self.axes}
        identity = {"sweep": self.name, "experiment": self.experiment, "algorithms": list(self.algorithms),
                    "bases": list(self.bases), "seeds": self.seeds, "target_accuracy": self.target_accuracy,
                    "set": fixed, "axes": self.axes, "tune": [str(g) for g in self.tune]}
        if self.methods:
            identity["methods"] = [list(m) for m in self.methods]
        return identity

    def runs(self) -> list[RunSpec]:
        """Every run: the product of the axes, for each method and seed (a learning-rate axis
        only for the runs on its base)."""
        names = list(self.axes)
        configs = []
        for values in itertools.product(*(self.axes[n] for n in names)):
            try:
                configs.append((values, replace(self.config, **dict(zip(names, values))).validate()))
            except ConfigError as e:
                raise ConfigError(f"sweep axes {dict(zip(names, values))}: {e}") from None
        if not self.methods:
            return grid([cfg for _, cfg in configs], self.algorithms, self.bases, self.seeds)
        runs = []
        for values, cfg in configs:
            for algorithm, base in self.methods:
                others = {n: v for n, v in zip(names, values) if n in LEARNING_RATES and n != f"lr_{base}"}
                if any(v != self.axes[n][0] for n, v in others.items()):
                    continue  # another base's rate: this run is the same at every value, so it runs once
                own = replace(cfg, **{n: getattr(self.config, n) for n in others}).validate()
                runs += [RunSpec(own, algorithm, base, s) for s in range(self.seeds)]
        return runs


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
    spec = current_names(spec, where=f"sweep {path}")  # a file written before a key was renamed
    known = {"name", "experiment", "algorithms", "bases", "methods", "seeds", "target_accuracy", "set", "axes", "tune"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ConfigError(f"sweep {path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
    experiment_name = spec.get("experiment", "fmnist")
    if experiment_name not in EXPERIMENTS:
        raise ConfigError(f"sweep experiment: unknown {experiment_name!r}; allowed: {', '.join(EXPERIMENTS)}")
    experiment = EXPERIMENTS[experiment_name]
    fixed = spec.get("set", {})
    if not isinstance(fixed, dict):
        raise ConfigError("sweep set: must be a table of field = value")
    if "target_accuracy" in spec and "target_accuracy" not in fixed:
        fixed = {**fixed, "target_accuracy": spec["target_accuracy"]}  # the top-level key sets the field
    config = experiment.config.with_overrides(fixed)
    axes = spec.get("axes", {})
    field_names = set(FIELDS)
    if not isinstance(axes, dict):
        raise ConfigError("sweep axes: must be a table of field = [values]")
    for name, values in axes.items():
        if name not in field_names:
            raise ConfigError(f"sweep axes.{name}: unknown field; allowed: {', '.join(sorted(field_names))}")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep axes.{name}: must be a non-empty list of values")
    methods = check_methods(spec["methods"]) if "methods" in spec else ()
    if methods and ("algorithms" in spec or "bases" in spec):
        raise ConfigError("sweep methods: give either methods or algorithms and bases, not both")
    algorithms = tuple(dict.fromkeys(a for a, _ in methods)) or \
        check_algorithms("sweep algorithms", spec.get("algorithms", experiment.algorithms))
    bases = tuple(dict.fromkeys(b for _, b in methods)) or \
        check_names("sweep bases", spec.get("bases", experiment.bases), BASES)
    seeds = Spec(int, low=1).check("sweep seeds", spec.get("seeds", 2), ConfigError)
    tune = spec.get("tune", {})
    if not isinstance(tune, dict):
        raise ConfigError("sweep tune: must be a table of field = [values]")
    grids = grids_from_table(tune)
    sweep = Sweep(spec.get("name", path.stem), experiment_name, config, axes, algorithms, bases, seeds,
                  config.target_accuracy, grids, path.resolve(), frozenset(fixed) | frozenset(axes), methods)
    sweep.runs()  # validates every combination now
    return sweep


def check_methods(methods) -> tuple:
    """A sweep file's ``methods``: [algorithm, base] pairs, each checked; one error line for a bad one."""
    allowed = "a non-empty list of [algorithm, base] pairs, e.g. [[\"gsgm\", \"sgd\"]]"
    if not isinstance(methods, list) or not methods:
        raise ConfigError(f"sweep methods: must be {allowed}")
    pairs = []
    for pair in methods:
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise ConfigError(f"sweep methods: {pair!r} is not an [algorithm, base] pair; must be {allowed}")
        (algorithm,) = check_algorithms("sweep methods", [pair[0]])
        (base,) = check_names("sweep methods", [pair[1]], BASES)
        pairs.append((algorithm, base))
    if len(set(pairs)) != len(pairs):
        raise ConfigError("sweep methods: each [algorithm, base] pair at most once")
    return tuple(pairs)


def run_sweep(sweep: Sweep, out: Path, *, tuning_seeds: int = 2, **options) -> list[RunResult]:
    """Tune (with a ``[tune]`` table) and carry out the sweep's missing runs (``tuning.run_protocol``
    options: planned, backend, jobs, ...)."""

    return run_protocol(sweep.runs(), out, grids=sweep.tune, tuning_seeds=tuning_seeds, explicit=sweep.explicit,
                        **options)
