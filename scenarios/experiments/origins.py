"""Where each tuned value of a run comes from: configured, the user's, shipped (tuned at this very configuration), tuned here.

A shipped tuning file (``scenarios/tuned/NAME.csv``, as ``tuning.tuning_csv`` writes it)
carries ``# tuned_at KEY: CONFIG`` lines: a shipped value applies only to a run whose
configuration has the same key (``tuned_at_key``: every field that determines numbers,
but the learning rates). ``resolve`` gives each reported run the ``Origin`` of each
tuned field; result.json records it (``Origin.record``).
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple, Optional

from algorithms import BASES
from scenarios.errors import ConfigError
from scenarios.experiments.catalogue import RunSpec
from scenarios.experiments.config import FIELDS, from_dict, numbers_fields

SOURCES = ("configured", "user", "shipped", "tuned here", "candidate")
LEARNING_RATES = tuple(f"lr_{base}" for base in BASES)


class Origin(NamedTuple):
    """Where one tuned field of a run got its value: ``configured`` (the experiment's or the
    default), ``user`` (``--set``, an option, a sweep's set or axis: never replaced),
    ``shipped`` (a committed tuning run at this very configuration), ``tuned here``, or
    ``candidate`` (a tuning run's own value)."""

    field: str
    source: str
    tuned_at: Optional[object] = None  # shipped: the ExperimentConfig the value was tuned at
    file: str = ""  # shipped: the tuning file it came from
    edge: str = ""  # shipped or tuned here: "lowest" or "highest" when the winner is at that end of its grid

    def record(self, config) -> dict:
        """What result.json keeps: the value, its source, whether it lies at an edge of its grid
        (a wider grid might move it) and, for shipped values, where they were tuned."""
        out = {"value": getattr(config, self.field), "source": self.source}
        if self.edge:
            out["grid_edge"] = self.edge
        if self.tuned_at is not None:
            out["tuned_at"] = {"file": self.file, "key": tuned_at_key(self.tuned_at),
                               "config": self.tuned_at.to_dict()}
        return out


def tuned_at_key(config, exclude: tuple = LEARNING_RATES) -> str:
    """A hash of every configuration field but the tuned ones (and the other bases' learning
    rates, which a cell does not read): a shipped value applies only where this matches."""
    values = {k: v for k, v in numbers_fields(config).items() if k not in exclude}
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def tuned_fields(run: RunSpec, grids=()) -> tuple[str, ...]:
    """The fields the protocol tunes in a run's cell: its base's learning rate, and each grid's field."""
    names = [f"lr_{run.base}"]
    for g in grids:
        resolved = g.resolve(run.config, run.base, run.algorithm)
        if resolved and resolved[0] not in names:
            names.append(resolved[0])
    return tuple(names)


@dataclass(frozen=True)
class ShippedTuning:
    """A committed tuning.csv: the values it chose, each keyed by the configuration it was tuned at."""

    path: Path
    configs: dict  # tuned_at key -> the ExperimentConfig tuned at
    chosen: dict  # (algorithm, base, key) -> {field: value}
    fields: tuple  # the fields it tuned
    tried: dict = None  # (algorithm, base, key, field) -> the candidate values

    def edge(self, run: RunSpec, name: str) -> str:
        """"lowest"/"highest" when the shipped value of this run's cell is at that end of its grid."""
        key = (run.algorithm, run.base, self.key(run.config))
        return grid_edge(self.chosen[key][name], (self.tried or {}).get(key + (name,), ()))

    def key(self, config) -> str:
        return tuned_at_key(config, LEARNING_RATES + self.fields)

    def value(self, run: RunSpec, name: str):
        """The value shipped for this run's cell and configuration, or None."""
        return self.chosen.get((run.algorithm, run.base, self.key(run.config)), {}).get(name)

    def nearest(self, config) -> tuple[object, list[str]]:
        """The configuration tuned at that differs from ``config`` in the fewest fields, and those fields."""
        mine = config.to_dict()
        best, best_diff = None, None
        for other in self.configs.values():
            diff = [k for k, v in other.to_dict().items()
                    if k not in LEARNING_RATES + self.fields and mine.get(k) != v]
            if best_diff is None or len(diff) < len(best_diff):
                best, best_diff = other, diff
        return best, best_diff or []


def read_shipped(path: Path) -> ShippedTuning:
    """A tuning.csv with its ``# tuned_at`` lines (``tuning_csv``); one error line if it has none."""

    lines = path.read_text().splitlines()
    configs = {}
    for line in lines:
        if line.startswith("# tuned_at "):
            key, _, text = line.removeprefix("# tuned_at ").partition(": ")
            configs[key] = from_dict(json.loads(text))
    if not configs:
        raise ConfigError(f"{path}: no '# tuned_at KEY: CONFIG' lines, so the configuration its values were tuned "
                          "at is unknown; re-run the tuning with --tune to write it")
    chosen: dict = {}
    fields = []
    tried: dict = {}
    for row in csv.DictReader(line for line in lines if not line.startswith("#")):
        if row["field"] not in fields:
            fields.append(row["field"])
        value = FIELDS[row["field"]].spec.parse(row["field"], row["value"], ConfigError)
        tried.setdefault((row["algorithm"], row["base"], row["tuned_at"], row["field"]), []).append(value)
        if row["chosen"] == "True":
            chosen.setdefault((row["algorithm"], row["base"], row["tuned_at"]), {})[row["field"]] = value
    table = ShippedTuning(path, configs, chosen, tuple(f for f in fields if f not in LEARNING_RATES), tried)
    stale = sorted(k for k in configs if table.key(configs[k]) != k)
    if stale:
        raise ConfigError(f"{path}: tuned_at {stale[0]} does not match its configuration's hash; the file was edited "
                          "by hand or written by another stalesim version: re-run the tuning with --tune")
    return table


def resolve(reported: list[RunSpec], *, explicit=frozenset(), grids=(), shipped: Optional[Path] = None,
            log=print) -> list[RunSpec]:
    """Each reported run with the origin of each tuned field (``Origin``): the user's value is
    kept; without ``grids``, a shipped value applies where it was tuned at this run's
    configuration; otherwise the configured value stays, and one line says so."""
    table = read_shipped(shipped) if shipped is not None and shipped.is_file() and not grids else None
    out, configured, used = [], {}, 0
    for run in reported:
        origins, values = [], {}
        for name in tuned_fields(run, grids):
            value = table.value(run, name) if table is not None and name not in explicit else None
            if name in explicit:
                origins.append(Origin(name, "user"))
            elif value is None:
                origins.append(Origin(name, "configured"))
                configured.setdefault(name, set()).add(getattr(run.config, name))
            else:
                key = table.key(run.config)
                origins.append(Origin(name, "shipped", table.configs[key], _shown(table.path), table.edge(run, name)))
                values[name] = value
        if values:
            used += 1
            run = replace(run, config=replace(run.config, **values).validate(), tuned=tuple(sorted(values.items())))
        out.append(replace(run, origins=tuple(origins)))
    if table is not None and used:
        log(f"using the tuned values shipped in {_shown(table.path)} where they were tuned at the run's "
            f"configuration ({used} of {len(out)} runs; --tune default redoes the tuning)")
    for name in sorted(f for f in explicit if any(o.field == f for r in out for o in r.origins)):
        log(f"{name}: yours ({', '.join(sorted({shown_value(getattr(r.config, name)) for r in out}))}), kept"
            + (" (tuning starts from it)" if grids else "; no tuned value replaces it"))
    if configured and not grids:
        values = ", ".join(f"{k}={'/'.join(shown_value(v) for v in sorted(vs))}" for k, vs in sorted(configured.items()))
        if table is None:
            why = "no tuned values are shipped for this experiment"
        else:
            nearest, diff = table.nearest(next(r.config for r in out if any(o.source == "configured"
                                                                              for o in r.origins)))
            mine = next(r.config for r in out if any(o.source == "configured" for o in r.origins))
            why = (f"the shipped values ({_shown(table.path)}) were tuned at another configuration ("
                   + ", ".join(f"{k} {shown_value(getattr(nearest, k))} -> {shown_value(getattr(mine, k))}" for k in diff[:4])
                   + (", ..." if len(diff) > 4 else "") + ")")
        log(f"note: running at the configured {values}, not tuned for this configuration: {why}; "
            "--tune default (or --tune lr=x0.1,x1,x10) tunes them here")
    return out


def _shown(path: Path) -> str:
    here = Path(__file__).resolve().parents[1]
    try:
        return f"scenarios/{path.resolve().relative_to(here)}"
    except ValueError:
        return str(path)


def shown_value(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def grid_edge(value, values) -> str:
    """"lowest" or "highest" when ``value`` is at that end of ``values`` (two or more), else ""."""
    values = sorted(set(values))
    if len(values) < 2:
        return ""
    return "lowest" if value == values[0] else "highest" if value == values[-1] else ""
