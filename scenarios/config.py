"""Experiment configuration: one flat, validated, hashable set of fields.

Every field can be set from the command line with ``--set field=value``; a bad field
or value raises ``ConfigError`` naming the field, the value and what is allowed.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Optional

ALGORITHMS = ("asgd", "dcasgd", "gsgm", "ssgd", "sasgd", "fedbuff")
BASES = ("sgd", "momentum", "adam")


class ConfigError(ValueError):
    """A configuration field is unknown or out of range."""


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that determines a run's numbers, besides algorithm, base and seed."""

    dataset: str = "fmnist"  # fmnist | cifar10 | cifar100 | synthetic
    model: str = "mlp"  # mlp | cnn | resnet
    workers: int = 10
    partition: str = "shards"  # shards | dirichlet | iid
    classes_per_worker: int = 1  # non-IID degree c of label shards
    alpha: float = 0.5  # Dirichlet concentration
    compute: str = "exponential"  # constant | exponential | lognormal
    compute_sigma: float = 0.5
    spread: float = 4.0  # slowest worker is `spread` times slower than the fastest
    latency: float = 0.0
    bandwidth: float = 0.0  # bytes/s, 0 = infinite
    jitter: float = 0.0
    updates: int = 6000  # applied gradients per run
    batch_size: int = 64
    eval_every: int = 200
    eval_samples: int = 0  # a fixed test subset for evaluations; 0 = the whole test set
    final_evals: int = 5  # final accuracy = mean of the last this many evaluations
    lr_sgd: float = 0.05
    lr_momentum: float = 0.005
    lr_adam: float = 0.001
    momentum: float = 0.9  # of the momentum base, and GSGM's global momentum on SGD
    gsgm_k: int = 0  # partial-average window k; 0 = half the workers, rounded up
    gsgm_policy: str = "whitelist-wait"  # whitelist-wait | whitelist-queue | fifo (ablation)
    dcasgd_variant: str = "a"  # a (adaptive) | c (constant)
    dcasgd_lam: Optional[float] = None  # None = the variant's default: 2 (a), 0.04 (c)
    baseline_state: str = "worker"  # optimizer state of ASGD/DC-ASGD: per worker | server
    buffer_size: int = 4  # fedbuff's K
    mode: str = "auto"  # replay loop: auto | loop | scan

    def validate(self) -> "ExperimentConfig":
        choices = {"dataset": ("fmnist", "cifar10", "cifar100", "synthetic"), "model": ("mlp", "cnn", "resnet"),
                   "partition": ("shards", "dirichlet", "iid"), "compute": ("constant", "exponential", "lognormal"),
                   "gsgm_policy": ("whitelist-wait", "whitelist-queue", "fifo"), "dcasgd_variant": ("a", "c"),
                   "baseline_state": ("worker", "server"), "mode": ("auto", "loop", "scan")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}: {getattr(self, name)!r} is not allowed; allowed: {', '.join(allowed)}")
        minimum = {"workers": 1, "classes_per_worker": 1, "updates": 1, "batch_size": 1, "eval_every": 1,
                   "eval_samples": 0, "final_evals": 1, "gsgm_k": 0, "buffer_size": 1}
        for name, low in minimum.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name}: must be an integer >= {low}, got {value!r}")
        positive = ("alpha", "lr_sgd", "lr_momentum", "lr_adam")
        non_negative = ("compute_sigma", "latency", "bandwidth", "jitter")
        for name in positive + non_negative + ("spread", "momentum"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{name}: must be a finite number, got {value!r}")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: must be > 0, got {getattr(self, name)!r}")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must be >= 0, got {getattr(self, name)!r}")
        if self.spread < 1:
            raise ConfigError(f"spread: must be >= 1 (slowest / fastest speed), got {self.spread!r}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum: must lie in [0, 1), got {self.momentum!r}")
        if self.gsgm_k > self.workers:
            raise ConfigError(f"gsgm_k: must be <= workers ({self.workers}) or 0 for all, got {self.gsgm_k}")
        if self.dcasgd_lam is not None and (not isinstance(self.dcasgd_lam, (int, float))
                                            or not math.isfinite(self.dcasgd_lam) or self.dcasgd_lam < 0):
            raise ConfigError(f"dcasgd_lam: must be a finite number >= 0 or 'default', got {self.dcasgd_lam!r}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    def with_overrides(self, overrides: dict) -> "ExperimentConfig":
        """Apply ``{field: value}``; string values (from ``--set``) are parsed by the field's type."""
        known = {f.name: f for f in fields(self)}
        parsed = {}
        for key, value in overrides.items():
            if key not in known:
                raise ConfigError(f"--set {key}: unknown field; allowed: {', '.join(sorted(known))}")
            parsed[key] = _parse(key, value, str(known[key].type)) if isinstance(value, str) else value
        return replace(self, **parsed).validate()


def _parse(key: str, text: str, type_name: str) -> object:
    """Parse a ``--set`` string by the field's annotated type."""
    if type_name == "Optional[float]":
        if text.lower() in ("default", "none"):
            return None
        type_name = "float"
    if type_name == "int":
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"--set {key}: expected an integer, got {text!r}") from None
    if type_name == "float":
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"--set {key}: expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise ConfigError(f"--set {key}: must be a finite number, got {text!r}")
        return value
    return text


def check_names(field: str, names, allowed) -> tuple:
    """``names`` as a tuple if each is in ``allowed``; else ConfigError naming ``field``."""
    names = tuple(names)
    for name in names:
        if name not in allowed:
            raise ConfigError(f"{field}: unknown {name!r}; allowed: {', '.join(allowed)}")
    if not names:
        raise ConfigError(f"{field}: give at least one of {', '.join(allowed)}")
    return names


def check_count(field: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{field}: must be an integer >= 1, got {value!r}")
    return value


def parse_assignments(items: list[str]) -> dict:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set: expected key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def run_key(config: ExperimentConfig, algorithm: str, base: str, seed: int) -> str:
    """A hash of everything that determines a run's numbers."""
    payload = json.dumps({"config": config.to_dict(), "algorithm": algorithm, "base": base, "seed": seed,
                          "format": 1}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
