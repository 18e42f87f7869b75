"""Experiment configuration: one flat, validated, hashable set of fields.

Every field is declared once, with its default, what it allows and what it means; the
fields of algorithm hyperparameters come from the algorithm registry. Every field can
be set from the command line with ``--set field=value``; docs/configuration.md is
generated from these declarations (``python -m scenarios.experiments.config > docs/configuration.md``;
a test fails when it is stale).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, field, fields, make_dataclass, replace
from typing import NamedTuple

from algorithms import BASES, registry
from algorithms.registry import hyperparameters
from scenarios.errors import ConfigError, notice, notice_once
from scenarios.experiments.outcomes import DEFAULT_DIVERGED_LOSS_RATIO, DEFAULT_TARGET_ACCURACY, OUTCOME_FIELDS
from scenarios.experiments.timing import check_timing
from sim.checks import Spec


class Field(NamedTuple):
    """One configuration field: default, what it allows, a one-line meaning."""

    name: str
    default: object
    spec: Spec
    meaning: str
    group: str


DATASETS = ("fmnist", "cifar10", "cifar100", "synthetic")
MODELS = ("mlp", "cnn", "resnet")

_CORE = [
    # data and model
    Field("dataset", "fmnist", Spec(str, DATASETS), "the data set", "data"),
    Field("model", "mlp", Spec(str, MODELS),
          "mlp (784-200-10), cnn (two 3x3 convs) or resnet (ResNet-8, no batch norm)", "data"),
    Field("partition", "shards", Spec(str, ("shards", "dirichlet", "iid")),
          "how training data is split over workers: label shards, Dirichlet(alpha), or IID", "data"),
    Field("classes_per_worker", 1, Spec(int, low=1), "non-IID degree c of label shards: classes per worker", "data"),
    Field("alpha", 0.5, Spec(float, low=0, low_open=True), "Dirichlet concentration (partition=dirichlet)", "data"),
    Field("batch_size", 64, Spec(int, low=1), "minibatch size of each gradient", "data"),
    # the cluster
    Field("workers", 10, Spec(int, low=1),
          "number of workers (the paper's nodes), each computing gradients on its own shard", "cluster"),
    Field("compute", "exponential", Spec(str, ("constant", "exponential", "lognormal", "replay")),
          "compute-time model of one gradient (mean 1 simulated second before the worker's speed); replay: the "
          "recorded times of compute_trace", "cluster"),
    Field("compute_trace", "", Spec(str),
          "recorded compute times: a CSV file (a path, or a shipped example: compute_times.csv) of one column "
          "shared by all workers or one per worker; needs compute=replay (format: docs/timing.md)", "cluster"),
    Field("compute_trace_sha256", "", Spec(str),
          "filled in by stalesim: the sha256 of the compute_trace file, so a changed file is a new run (not to be "
          "set)", "cluster"),
    Field("compute_sigma", 0.5, Spec(float, low=0), "log-space std of the lognormal compute model", "cluster"),
    Field("spread", 4.0, Spec(float, low=1), "worker speeds are log-spaced: the slowest is this many times slower "
          "than the fastest", "cluster"),
    Field("speed_assignment", "index", Spec(str, ("index", "class", "random")),
          "which worker gets which speed: index (log-spaced by worker index), class (workers holding the same classes "
          "share a speed; needs partition=shards), random (a permutation drawn from the run's seed)", "cluster"),
    Field("speeds", (), Spec(tuple, low=0, low_open=True),
          "every worker's speed factor, one per worker (2 = twice as fast), e.g. 1,1,2,4; needs spread=1 and "
          "speed_assignment=index; empty = from spread and speed_assignment", "cluster"),
    Field("stragglers", 0, Spec(int, low=0),
          "this many workers, the first by index (0, 1, ...), are made straggler_slowdown times slower, on top of "
          "their assigned speed", "cluster"),
    Field("straggler_slowdown", 10.0, Spec(float, low=1), "how many times slower a straggler is", "cluster"),
    Field("mttf", 0.0, Spec(float, low=0),
          "crashes: each worker's mean time to failure (exponential), simulated seconds; 0 = no crashes; a crash "
          "loses the gradient in flight (the barrier policy, ssgd, does not support crashes)", "cluster"),
    Field("downtime", 1.0, Spec(float, low=0),
          "seconds a crashed worker stays down before it pulls fresh parameters", "cluster"),
    Field("latency", 0.0, Spec(float, low=0), "network latency of each push and pull, simulated seconds", "cluster"),
    Field("bandwidth", 0.0, Spec(float, low=0), "network bandwidth in bytes/s (0 = infinite)", "cluster"),
    Field("jitter", 0.0, Spec(float, low=0), "mean of an exponential extra delay per transfer, seconds", "cluster"),
    Field("service_time", 0.0, Spec(float, low=0),
          "the server's time to apply one gradient, simulated seconds (one at a time, in arrival order); 0 = instant",
          "cluster"),
    # training and evaluation
    Field("updates", 6000, Spec(int, low=1), "applied gradients per run (at most, with a time_budget)", "training"),
    Field("time_budget", 0.0, Spec(float, low=0),
          "simulated seconds per run: a run stops at the last gradient applied before this time, or after updates, "
          "whichever comes first (the equal-time budget); 0 = none", "training"),
    Field("eval_every", 200, Spec(int, low=1), "evaluate every this many applied gradients", "training"),
    Field("eval_samples", 0, Spec(int, low=0), "a fixed test subset for evaluations; 0 = the whole test set",
          "training"),
    Field("final_evals", 5, Spec(int, low=1), "final accuracy = mean of the last this many evaluations", "training"),
    Field("lr_sgd", 0.05, Spec(float, low=0, low_open=True), "learning rate of the sgd base", "training"),
    Field("lr_momentum", 0.005, Spec(float, low=0, low_open=True), "learning rate of the momentum base", "training"),
    Field("lr_adam", 0.001, Spec(float, low=0, low_open=True), "learning rate of the adam base", "training"),
    Field("momentum", 0.9, Spec(float, low=0, high=1, high_open=True),
          "beta of the momentum base (GSGM's global momentum on sgd is gsgm_momentum)", "training"),
    Field("validation_samples", 0, Spec(int, low=0),
          "training samples held out (stratified, fixed) for validation; tuning scores candidates on them", "protocol"),
    Field("target_accuracy", DEFAULT_TARGET_ACCURACY, Spec(float, low=0, high=1, low_open=True),
          "a run converged when each of its last final_evals evaluations is at least this; tables also report the "
          "simulated time of its first crossing", "outcome"),
    Field("diverged_loss_ratio", DEFAULT_DIVERGED_LOSS_RATIO, Spec(float, low=1),
          "a finite run diverged when its final loss is at least this times its initial loss (a blow-up)",
          "outcome"),
    Field("mode", "auto", Spec(str, ("auto", "loop", "scan")),
          "replay loop: one compiled loop per run of ops (scan; auto for mlp and cnn) or one jitted call per op "
          "(loop; auto for resnet, whose convolutions XLA runs 20x slower inside a compiled loop, and there "
          "only equal to float rounding)", "training"),
]


def _algorithm_fields() -> list[Field]:
    return [Field(h.name, h.default, h.spec, h.meaning, "algorithms") for h in hyperparameters().values()]


FIELDS: dict[str, Field] = {f.name: f for f in _CORE + _algorithm_fields()}
RETIRED = {  # fields that no longer exist: accepted from old files and --set, with a one-line notice
    "failed_margin": "outcome labels follow target_accuracy now (docs/protocol.md, Outcomes)",
    "failed_loss_ratio": "outcome labels follow target_accuracy and diverged_loss_ratio now (docs/protocol.md)",
}
RENAMED_VALUES = {  # field -> {old value: its name now}: accepted from old files and --set, with a one-line notice
    "gsgm_k": {0: "half"},
}


def renamed_value(name: str, value):
    """``value`` of field ``name``, with a value that has a name now (``RENAMED_VALUES``) given
    that name, and a one-line notice, once per process; any other value as it is."""
    for old, new in RENAMED_VALUES.get(name, {}).items():
        if value == old or (isinstance(value, str) and value.strip() == str(old)):
            notice_once(f"{name}={old} is now written {name}={new} (read as {new})")
            return new
    return value


def _validate(self):
    """Check every field against its declaration; ``ConfigError`` names the first bad one."""
    for f in FIELDS.values():
        object.__setattr__(self, f.name, f.spec.check(f.name, getattr(self, f.name), ConfigError))
    if self.speed_assignment == "class" and self.partition != "shards":
        raise ConfigError(f"speed_assignment: class needs partition=shards (workers holding the same classes), "
                          f"got partition={self.partition}")

    object.__setattr__(self, "compute_trace_sha256", check_timing(self))
    if isinstance(self.gsgm_k, int) and self.gsgm_k > self.workers:
        raise ConfigError(f"gsgm_k: must be at most workers ({self.workers}), half or all, got {self.gsgm_k}")
    return self


def _to_dict(self) -> dict:
    return asdict(self)


def _with_overrides(self, overrides: dict):
    """Apply ``{field: value}``; string values (from ``--set``) are parsed by the field's kind."""
    parsed = {}
    for key, value in overrides.items():
        if key in RETIRED:
            notice(f"--set {key}: no longer a field, ignored; {RETIRED[key]}")
            continue
        if key not in FIELDS:
            raise ConfigError(f"--set {key}: unknown field; allowed: {', '.join(sorted(FIELDS))} "
                              "(see docs/configuration.md)")
        value = renamed_value(key, value)
        spec = FIELDS[key].spec
        parsed[key] = spec.parse(f"--set {key}", value, ConfigError) if isinstance(value, str) and spec.kind is not str \
            else value
    return replace(self, **parsed).validate()


def _learning_rate(self, base: str) -> float:
    """The configured learning rate of a base optimizer."""
    return getattr(self, f"lr_{base}")


ExperimentConfig = make_dataclass(
    "ExperimentConfig",
    [(f.name, type(f.default) if f.default is not None else object, field(default=f.default)) for f in FIELDS.values()],
    frozen=True,
    namespace={"validate": _validate, "to_dict": _to_dict, "with_overrides": _with_overrides,
               "learning_rate": _learning_rate,
               "__doc__": "Everything that determines a run's numbers, besides algorithm, base and seed "
                          "(fields: see docs/configuration.md)."},
)
ExperimentConfig.__module__ = __name__
assert all(f"lr_{b}" in FIELDS for b in BASES)


def from_dict(values: dict) -> "ExperimentConfig":
    """A config from a saved ``to_dict()``; fields it lacks take their defaults, retired ones
    (``RETIRED``) are dropped, unknown ones are refused."""
    values = {k: renamed_value(k, v) for k, v in values.items() if k not in RETIRED}
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ConfigError(f"config: unknown field(s) {', '.join(unknown)}")
    return ExperimentConfig(**values).validate()


def check_names(option: str, names, allowed) -> tuple:
    """``names`` as a tuple if each is in ``allowed``; else ConfigError naming ``option``."""
    names = tuple(names)
    for name in names:
        if name not in allowed:
            raise ConfigError(f"{option}: unknown {name!r}; allowed: {', '.join(allowed)}")
    if not names:
        raise ConfigError(f"{option}: give at least one of {', '.join(allowed)}")
    return names


def parse_assignments(items: list[str], option: str = "--set") -> dict:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option}: expected key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def numbers_fields(config) -> dict:
    """The fields that determine a run's numbers: all but those that only decide its outcome
    label, a renamed value (``RENAMED_VALUES``) spelled as it was, so that the hashes made of
    them (a run's key, a tuned value's ``tuned_at``) stay those of the results already made."""
    spelled_before = {name: {new: old for old, new in values.items()} for name, values in RENAMED_VALUES.items()}
    return {k: spelled_before.get(k, {}).get(v, v) for k, v in config.to_dict().items() if k not in OUTCOME_FIELDS}


def run_key(config, algorithm: str, base: str, seed: int, extra: dict | None = None) -> str:
    """A hash of everything that determines a run's numbers (not the outcome fields: a
    saved run is relabelled, not run again, when the target changes)."""
    payload = {"config": numbers_fields(config), "algorithm": algorithm, "base": base, "seed": seed, "format": 3}
    if extra:
        payload.update(extra)
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def field_names() -> list[str]:
    return [f.name for f in fields(ExperimentConfig)]


def markdown() -> str:
    """docs/configuration.md: every field, its default, what it allows and what it means."""

    users = {h.name: a.name for a in registry.ALGORITHMS.values() for h in a.hyperparameters}
    lines = ["# Configuration fields", "",
             "Generated by `python -m scenarios.experiments.config > docs/configuration.md` from the fields' declarations "
             "(`scenarios/experiments/config.py`, and each algorithm's hyperparameters in its own file under `algorithms/`); "
             "a test fails when this file is stale.", "",
             "Set any field with `--set FIELD=VALUE` on `stalesim run` and `stalesim reproduce`, in a sweep file's "
             "`[set]` table, or vary it along a sweep's `[axes]`. Each experiment starts from these defaults and "
             "changes a few (`stalesim list`).", ""]
    groups: dict = {}
    for f in FIELDS.values():
        groups.setdefault(f.group, []).append(f)
    titles = {"data": "Data and model", "cluster": "The simulated cluster", "training": "Training and evaluation",
              "algorithms": "Algorithm hyperparameters", "protocol": "The comparison protocol",
              "outcome": "Outcome labels (they decide no run's numbers, and are applied again when results are read)"}
    for group, fs in groups.items():
        lines += [f"## {titles.get(group, group)}", "", "| field | default | allowed | meaning |", "|---|---|---|---|"]
        for f in fs:
            meaning = f.meaning + (f" (read by `{users[f.name]}`)" if f.name in users else "")
            default = "none" if f.default is None else ('""' if f.default == "" else f.default)
            lines.append(f"| `{f.name}` | `{default}` | {f.spec.describe()} | {meaning} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(), end="")
