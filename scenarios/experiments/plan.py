"""An experiment planned before any work: every option checked, the grid of runs, the output folder.

The command line (``stalesim run | reproduce``) and the Python API (``scenarios.run``)
both describe what the user asked for as ``Options``, with the values as the command
line spells them, and plan it with ``plan``: so the same request gives the same runs,
the same folder identity and the same numbers, whichever way it came.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from algorithms import BASES, registry
from scenarios.errors import ConfigError
from scenarios.experiments.catalogue import (
    EXPERIMENTS,
    RunSpec,
    ExperimentSpec,
    check_algorithms,
    expand,
)
from scenarios.experiments.config import (
    ExperimentConfig,
    check_names,
    parse_assignments,
)
from scenarios.experiments.halving import Halving, parse_halving
from scenarios.experiments.memory import check_memory, cli_option
from scenarios.experiments.pool import AUTO
from scenarios.experiments.results import current_names
from scenarios.experiments.timing import check_crashes
from scenarios.experiments.tuning import parse_tune
from scenarios.workloads.data import available
from scenarios.workloads.workload import check_runnable, dataset
from sim.checks import Spec

_COUNT = Spec(int, low=1)


@dataclass(frozen=True)
class Options:
    """What the user asked for, as the command line spells it (``None``: the experiment's default)."""

    experiment: str
    algorithms: Optional[str] = None  # "asgd,gsgm"
    base: Optional[str] = None  # "sgd,momentum"
    workers: Optional[str] = None
    seeds: Optional[str] = None
    updates: Optional[str] = None
    set: tuple = ()  # ("lr_sgd=0.02", ...)
    tune: tuple = ()  # ("lr=x0.1,x1,x10", ...) or ("default",)
    tuning_seeds: str = "2"
    jobs: str = AUTO
    out: Optional[str] = None
    data_dir: Optional[str] = None
    force: bool = False
    halving: Optional[str] = None  # "3@1/6": successive halving over the tuning grid (scenarios.experiments.halving)

    @property
    def identity(self) -> dict:
        """What makes two requests the same experiment (so they may share an output folder)."""
        identity = {"experiment": self.experiment, "set": sorted(self.set), "algorithms": self.algorithms,
                    "base": self.base, "workers": self.workers, "seeds": self.seeds, "updates": self.updates,
                    "tune": sorted(self.tune)}
        if self.halving is not None:  # absent when off, so folders made before the option keep their identity
            identity["halving"] = str(parse_halving(self.halving))
        return identity

    @property
    def overrides(self) -> dict:
        return parse_assignments(list(self.set))

    @property
    def explicit(self) -> frozenset:
        """The configuration fields the user chose (``--set`` and the options that set a field): never replaced."""
        return frozenset(self.overrides) | frozenset(k for k in ("workers", "updates") if getattr(self, k) is not None)


@dataclass(frozen=True)
class Plan:
    """A checked experiment: its catalogue entry, configuration, reported runs, tuning grids and folder."""

    options: Options
    experiment: ExperimentSpec
    config: ExperimentConfig
    runs: list = field(hash=False)
    grids: tuple
    tuning_seeds: int
    jobs: object  # "auto" or a number of processes
    out: Path
    halving: Optional[Halving] = None

    def manifest(self, reported: list[RunSpec]) -> dict:
        """``experiment.json``: what was asked, and the reported runs as resolved (tuned values applied)."""
        return {"experiment": self.experiment.name, "description": self.experiment.description,
                "claim": self.experiment.claim, "identity": self.options.identity,
                "seeds": len({r.seed for r in reported}), "default_seeds": self.experiment.seeds,
                "overrides": self.options.overrides, "config": self.config.to_dict(), "axis": self.experiment.axis,
                "axis_values": list(self.experiment.axis_values), "runs": [r.dirname for r in reported]}


def count(text, option: str) -> Optional[int]:
    """A count option (``--seeds 3``): None when not given, else an integer >= 1."""
    return None if text is None else _COUNT.parse(option, str(text), ConfigError)


def jobs(text):
    """``--jobs``: ``auto`` or a number of processes >= 1."""
    text = str(text).strip()
    if text == AUTO:
        return AUTO
    try:
        return _COUNT.parse("--jobs", text, ConfigError)
    except ConfigError:
        raise ConfigError(f"--jobs: must be {AUTO!r} or an integer >= 1, got {text!r}") from None


def names(text, option: str, allowed) -> Optional[list]:
    """A comma-separated option's names, or None when not given; one error line when empty."""
    if text is None:
        return None
    return [t.strip() for t in str(text).split(",") if t.strip()] or list(check_names(option, [], allowed))


def resolve_dataset(experiment: ExperimentSpec, config: ExperimentConfig, overrides: dict, data_dir, log=print):
    """The experiment's fallback dataset when its own is absent, announced in one line;
    values the user gave are kept."""
    if not experiment.fallback or available(config.dataset, data_dir):
        return config
    if "dataset" in overrides:
        return config  # the user asked for this dataset: loading it will say what is missing
    fallback = {"dataset": experiment.fallback, "model": "mlp", "updates": 6000, "eval_every": 200, "eval_samples": 0}
    changes = {k: v for k, v in fallback.items() if k == "dataset" or k not in overrides}
    log(f"note: {config.dataset} not found; {experiment.name} runs on its stand-in instead: "
        + ", ".join(f"{k}={v}" for k, v in changes.items())
        + (f" (kept yours: {', '.join(k for k in fallback if k in overrides)})" if set(fallback) & set(overrides)
           else ""))
    return replace(config, **changes).validate()


def check_runs(runs, data_dir=None, label=cli_option) -> None:
    """What only whole runs can tell, before any work: a policy that cannot take crashes,
    the memory they need (errors name fields by ``label``), and whether the data is there
    and fits the configuration."""
    for algorithm, cfg in {(r.algorithm, r.config) for r in runs}:
        check_crashes(algorithm, cfg)
    check_memory(runs, label=label)  # a mistyped --updates or --workers: refused now, not when memory runs out
    configs = {r.config for r in runs}
    for name in {c.dataset for c in configs}:
        data = dataset(name, data_dir)  # fail now, not after an hour, if the data is missing
        for cfg in configs:
            if cfg.dataset == name:
                check_runnable(cfg, data)


def grids(options: Options, experiment: ExperimentSpec) -> tuple:
    """The tuning grids ``--tune`` asks for (``default``: the experiment's own)."""
    if list(options.tune) == ["default"]:
        if not experiment.tune:
            raise ConfigError(f"--tune default: {experiment.name} declares no tuning grid; give FIELD=V1,V2,...")
        return parse_tune([f"{name}={','.join(values)}" for name, values in experiment.tune])
    return parse_tune(list(options.tune))


def plan(options: Options, log=print) -> Plan:
    """Check every option and build the run list, before any work starts."""
    if options.experiment not in EXPERIMENTS:
        raise ConfigError(f"experiment: unknown {options.experiment!r}; allowed: {', '.join(EXPERIMENTS)}")
    experiment = EXPERIMENTS[options.experiment]
    overrides = options.overrides
    for option, key in (("--workers", "workers"), ("--updates", "updates")):
        value = count(getattr(options, key), option)
        if value is not None:
            overrides[key] = value
    if experiment.axis and experiment.axis in overrides:
        raise ConfigError(f"--set {experiment.axis}: {experiment.name} varies it along its axis; it cannot be fixed")
    config = resolve_dataset(experiment, experiment.config.with_overrides(overrides), overrides, options.data_dir, log)
    algorithms = names(options.algorithms, "--algorithms", tuple(registry.ALGORITHMS))
    if algorithms is not None:
        algorithms = check_algorithms("--algorithms", algorithms)
    bases = names(options.base, "--base", BASES)
    if bases is not None:
        bases = check_names("--base", bases, BASES)
    runs = expand(experiment, config, algorithms, bases, count(options.seeds, "--seeds"))
    check_runs(runs, options.data_dir)
    tuning_grids = grids(options, experiment)
    halving = parse_halving(options.halving)
    if halving is not None and not tuning_grids:
        raise ConfigError("--halving: only with --tune (it cuts the tuning grid)")
    return Plan(options, experiment, config, runs, tuning_grids,
                count(options.tuning_seeds, "--tuning-seeds"), jobs(options.jobs),
                Path(options.out or f"results/{experiment.name}"), halving)


def claim_folder(out: Path, identity: dict, force: bool) -> None:
    """Refuse an output folder that holds a different experiment, unless ``force``."""
    manifest = out / "experiment.json"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a folder; choose another --out")
    if not manifest.is_file():
        if out.exists() and any(not p.name.startswith(".") for p in out.iterdir()) and not (out / "runs").is_dir():
            raise ConfigError(f"--out {out}: the folder exists and holds something else; choose another --out")
        return
    try:
        old = current_names(json.loads(manifest.read_text()))
    except ValueError:
        raise ConfigError(f"--out {out}: its experiment.json is not valid JSON; choose another --out, or --force "
                          "to replace it") from None
    if old.get("identity") != identity and not force:
        what = old.get("experiment") or old.get("sweep") or "another experiment"
        raise ConfigError(f"--out {out}: holds a different experiment ({what}, other options); use another --out, "
                          "or --force to replace it")
