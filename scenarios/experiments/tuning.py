"""Tuning on seeds that are never reported: each cell's candidates run on tuning seeds, scored on validation.

A *cell* is one (configuration at an axis value, algorithm, base) of an experiment's
grid. ``--tune FIELD=V1,V2,...`` gives each cell its candidates; every candidate runs
on the tuning seeds (``TUNING_SEED + i``, disjoint from the reported seeds
``0 .. seeds-1``), evaluated on the validation split held out of the training set
(never on the test set). The winner has the highest mean, over the tuning seeds, of its
final validation accuracy (the mean of the last ``final_evals`` evaluations); a
candidate with a diverged tuning run cannot win (``choose``). Where each value of a
reported run comes from (configured, the user's, shipped, tuned here) is ``origins``. The reported seeds then run
at the winner, and their result.json records it as ``"tuned"``.

``lr`` stands for the cell's own base learning rate (``lr_sgd``, ``lr_momentum`` or
``lr_adam``), and a value ``xF`` is F times the configured value, so one grid serves
every base: ``--tune lr=x0.1,x0.3,x1,x3,x10``.

Tuning runs are runs like any other (keyed, resumable, under ``DIR/runs``); every
candidate is one row of ``DIR/tuning.csv``, and the file ends with each cell's margin over
its runner-up against the tuning noise (``margins``).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from algorithms import registry
from scenarios.errors import ConfigError
from scenarios.experiments.catalogue import RunSpec
from scenarios.experiments.config import FIELDS
from scenarios.experiments.halving import Halving
from scenarios.experiments.margins import annotated
from scenarios.experiments.origins import LEARNING_RATES, Origin, grid_edge, resolve, shown_value, tuned_at_key
from scenarios.experiments.pool import run_many
from scenarios.experiments.results import write_text_atomic

TUNING_SEED = 1000  # tuning seeds are 1000, 1001, ...: never a reported seed
TUNING_COLUMNS = ("algorithm", "base", "axis", "axis_value", "tuned_at", "field", "value", "tuning_seed", "validation_accuracy",
                  "outcome", "chosen")


@dataclass(frozen=True)
class Grid:
    """``--tune FIELD=V1,V2,...``: a field (or ``lr``) and its candidate values (``xF`` = F times the configured)."""

    field: str
    values: tuple

    def resolve(self, config, base: str, algorithm: str) -> Optional[tuple[str, list]]:
        """The configuration field and values this grid means for a cell, or None when the
        cell does not read the field (another base's learning rate, another algorithm's
        hyperparameter)."""
        name = f"lr_{base}" if self.field == "lr" else self.field
        if name.startswith("lr_") and name != f"lr_{base}":
            return None
        declared = {h.name for a in registry.ALGORITHMS.values() for h in a.hyperparameters}
        if name in declared and name not in {h.name for h in registry.get(algorithm).hyperparameters}:
            return None
        spec = FIELDS[name].spec
        values = []
        for v in self.values:
            if isinstance(v, str) and v.startswith("x"):
                product = float(f"{float(v[1:]) * getattr(config, name):.6g}")  # 0.1 x 0.1 is 0.01, not 0.010000000000000002
                value = spec.check(f"--tune {self.field}", product, ConfigError)
            else:
                value = spec.parse(f"--tune {self.field}", v, ConfigError) if isinstance(v, str) else \
                    spec.check(f"--tune {self.field}", v, ConfigError)
            values.append(value)
        return name, values


def parse_tune(items, option: str = "--tune") -> tuple[Grid, ...]:
    """``["lr=x0.1,x1,x10", "gsgm_k=1,5"]`` -> grids; one error line for a bad one."""
    grids = []
    for item in items or []:
        name, sep, text = item.partition("=")
        name = name.strip()
        values = tuple(v.strip() for v in text.split(",") if v.strip())
        if not sep or not name or not values:
            raise ConfigError(f"{option}: expected FIELD=V1,V2,..., got {item!r}")
        grids.append(_checked(option, name, values))
    if len({g.field for g in grids}) != len(grids):
        raise ConfigError(f"{option}: each field at most once")
    return tuple(grids)


def grids_from_table(table: dict, option: str = "sweep tune") -> tuple[Grid, ...]:
    """A sweep file's ``[tune]`` table: ``lr = ["x0.1", "x1", "x10"]``."""
    grids = []
    for name, values in table.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{option}.{name}: must be a non-empty list of values")
        grids.append(_checked(f"{option}.{name}", name, tuple(str(v) if isinstance(v, str) else v for v in values)))
    return tuple(grids)


def _checked(option, name, values) -> Grid:
    """A grid whose every value the field allows; each error line names ``option`` and the field."""
    if name != "lr" and name not in FIELDS:
        raise ConfigError(f"{option}: unknown field {name!r}; allowed: lr (the base's learning rate) or any "
                          "configuration field (docs/configuration.md)")
    for v in values:
        if isinstance(v, str) and v.startswith("x"):
            try:
                factor = float(v[1:])
            except ValueError:
                raise ConfigError(f"{option} {name}: {v!r} is not a factor like x0.3") from None
            if not factor > 0 or factor == float("inf"):
                raise ConfigError(f"{option} {name}: a factor must be a finite number > 0, got {v!r}")
    grid = Grid(name, values)
    # check the values against the field now, before any work
    probe = FIELDS["lr_sgd" if name == "lr" else name].spec
    where = f"{option} {name}" if option == "--tune" else option  # a sweep's option already names the field
    for v in values:
        if not (isinstance(v, str) and v.startswith("x")):
            probe.parse(where, v, ConfigError) if isinstance(v, str) else probe.check(where, v, ConfigError)
    return grid


def cell_of(run: RunSpec) -> tuple:
    return (run.config, run.algorithm, run.base, run.axis)


def candidates(run: RunSpec, grids) -> list[tuple]:
    """Every candidate of a cell: tuples of (field, value) pairs, in grid order."""
    axes = [g.resolve(run.config, run.base, run.algorithm) for g in grids]
    axes = [a for a in axes if a is not None]
    return [tuple(zip([name for name, _ in axes], combo)) for combo in itertools.product(*(v for _, v in axes))]


def tuning_runs(reported: list[RunSpec], grids, tuning_seeds: int) -> dict[tuple, list[tuple[tuple, RunSpec]]]:
    """Per cell: every (candidate, tuning run)."""
    plan: dict[tuple, list] = {}
    for run in reported:
        cell = cell_of(run)
        if cell in plan:
            continue
        plan[cell] = [(cand, RunSpec(replace(run.config, **dict(cand)).validate(), run.algorithm, run.base,
                                     TUNING_SEED + i, run.axis, split="validation", tuned=cand,
                                     origins=tuple(Origin(name, "candidate") for name, _ in cand)))
                      for cand in candidates(run, grids) for i in range(tuning_seeds)]
    return plan


def choose(entries: list[tuple[tuple, object]]) -> Optional[tuple]:
    """The winning candidate of one cell from its (candidate, result) pairs: the highest
    mean validation accuracy over the tuning seeds among the candidates none of whose
    tuning runs diverged, the first in grid order among equals; None if every candidate
    had a diverged tuning run. A run that learns but misses the target still competes:
    the best rate the grid has is what the protocol reports."""
    scores: dict[tuple, list] = {}
    for cand, result in entries:
        scores.setdefault(cand, []).append(result)
    best, best_score = None, -np.inf
    for cand, results in scores.items():  # grid order: the first of equals wins
        if any(r.outcome == "diverged" for r in results):
            continue
        score = float(np.mean([r.final_accuracy for r in results]))
        if score > best_score:
            best, best_score = cand, score
    return best


def apply(reported: list[RunSpec], chosen: dict[tuple, Optional[tuple]], grid: Optional[dict] = None) -> list[RunSpec]:
    """The reported runs at their cell's values tuned here (unchanged where nothing was chosen);
    ``grid``: per cell, the candidates, to mark a winner at an edge of its grid."""
    out = []
    for run in reported:
        cand = chosen.get(cell_of(run))
        if cand:
            here = {name for name, _ in cand}
            tried = [dict(c) for c in (grid or {}).get(cell_of(run), ())]
            edge = {name: grid_edge(value, [c[name] for c in tried]) for name, value in cand}
            origins = tuple(Origin(o.field, "tuned here", edge=edge[o.field]) if o.field in here else o
                            for o in run.origins)
            origins += tuple(Origin(name, "tuned here", edge=edge[name])
                             for name in here - {o.field for o in run.origins})
            run = replace(run, config=replace(run.config, **dict(cand)).validate(), tuned=cand, origins=origins)
        out.append(run)
    return out


def tuning_csv(plan, results: dict, chosen: dict) -> str:
    """One row per candidate value and tuning seed; ``# tuned_at KEY: CONFIG`` lines name each
    configuration tuned at (``tuned_at_key``), so the file can be shipped as it is."""
    buf = io.StringIO()
    configs = {}
    for (config, *_), entries in plan.items():
        exclude = LEARNING_RATES + tuple(name for cand, _ in entries for name, _ in cand)
        configs[tuned_at_key(config, exclude)] = config
    for key, config in configs.items():
        buf.write(f"# tuned_at {key}: {json.dumps(config.to_dict(), sort_keys=True)}\n")
    writer = csv.writer(buf)
    writer.writerow(TUNING_COLUMNS)
    for cell, entries in plan.items():
        config, algorithm, base, axis = cell
        key = tuned_at_key(config, LEARNING_RATES + tuple(name for cand, _ in entries for name, _ in cand))
        for cand, run in entries:
            r = results[run.key]
            for name, value in cand:
                writer.writerow([algorithm, base, axis or "", getattr(run.config, axis) if axis else "", key, name,
                                 value, run.seed, "" if r.final_accuracy is None else r.final_accuracy, r.outcome,
                                 cand == chosen.get(cell)])
    return annotated(buf.getvalue())


def tune(reported: list[RunSpec], out: Path, grids, tuning_seeds: int, *, halving: Optional[Halving] = None,
         log=print, **options) -> list[RunSpec]:
    """Run every cell's candidates on the tuning seeds (with ``halving``, only the survivors of
    its rung to the end), write ``out/tuning.csv``, and return the reported runs at each cell's
    winner (``choose``)."""
    plan = tuning_runs(reported, grids, tuning_seeds)
    tuning = [run for entries in plan.values() for _, run in entries]
    log(f"tuning: {len(plan)} cells x {len(tuning) // max(1, len(plan))} candidate runs "
        f"on tuning seeds {TUNING_SEED}..{TUNING_SEED + tuning_seeds - 1}, scored on validation")
    full, rung_lines = (plan, []) if halving is None else survivors(plan, halving, out, log=log, **options)
    results = {r.key: r for r in run_many([run for entries in full.values() for _, run in entries], out, log=log,
                                          **options)}
    chosen = {cell: choose([(cand, results[run.key]) for cand, run in entries]) for cell, entries in full.items()}
    write_text_atomic(out / "tuning.csv", "".join(rung_lines) + tuning_csv(full, results, chosen))
    for (cfg, algorithm, base, axis), cand in chosen.items():
        where = f" at {axis}={getattr(cfg, axis)}" if axis else ""
        log(f"tuned {algorithm} on {base}{where}: " + (", ".join(f"{k}={shown_value(v)}" for k, v in cand)
                                                       if cand else "no candidate converged; configured value kept"))
    return apply(reported, chosen, {cell: [cand for cand, _ in entries] for cell, entries in plan.items()})


def survivors(plan: dict, halving: Halving, out: Path, *, log=print, **options) -> tuple[dict, list[str]]:
    """``plan`` with each cell cut to the candidates that survive ``halving``'s rung (a cell
    with ``halving.keep`` candidates or fewer is kept whole), and one ``# halving`` line per
    cut cell for tuning.csv: its rung scores, and which candidates went on."""
    cut = {cell: entries for cell, entries in plan.items() if halving.cuts(entries)}
    if not cut:
        return plan, []
    rung = {cell: [(cand, halving.rung(run)) for cand, run in entries] for cell, entries in cut.items()}
    log(f"halving {halving}: {len(cut)} cells, every candidate to {halving.fraction} of its updates; "
        f"the best {halving.keep} of each go on")
    results = {r.key: r for r in run_many([run for entries in rung.values() for _, run in entries], out, log=log,
                                          **options)}
    kept, lines = dict(plan), []
    for cell, entries in rung.items():
        scored = [(cand, results[run.key]) for cand, run in entries]
        alive = halving.survivors(scored)
        kept[cell] = [(cand, run) for cand, run in plan[cell] if cand in alive]
        config, algorithm, base, axis = cell
        where = f" at {axis}={getattr(config, axis)}" if axis else ""
        shown = "; ".join(
            f"{', '.join(f'{k}={shown_value(v)}' for k, v in cand)}: "
            + ("diverged" if score is None else f"{score:.5f}") + (" (kept)" if cand in alive else "")
            for cand, score in halving.scores(scored).items())
        lines.append(f"# halving {halving} {algorithm} on {base}{where}, rung at {entries[0][1].config.updates} "
                     f"updates: {shown}\n")
    return kept, lines


def run_protocol(reported: list[RunSpec], out: Path, *, grids=(), tuning_seeds: int = 2,
                 shipped: Optional[Path] = None, explicit=frozenset(), halving: Optional[Halving] = None, log=print,
                 planned: Optional[Callable] = None, **options) -> list:
    """Resolve each tuned field (``resolve``), tune (when ``grids`` are given, with ``halving``
    if given), then carry out the reported runs; ``planned(runs)`` is called with the reported runs as soon as they are known
    (the manifest), ``options`` go to ``pool.run_many``. Returns the reported results."""
    reported = resolve(reported, explicit=explicit, grids=grids, shipped=shipped, log=log)
    if planned:
        planned(reported)
    if grids:
        reported = tune(reported, out, grids, tuning_seeds, halving=halving, log=log, **options)
        if planned:
            planned(reported)
    log("reported runs:")
    return run_many(reported, out, log=log, **options)
