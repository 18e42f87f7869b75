"""Saved results as the claim rules read them: loaded, grouped by seed into cells, identical cells merged.

A *cell* is one configuration of an experiment (an algorithm on a base optimizer) with
its runs keyed by (axis value, seed). Two cells whose runs have the same keys and
bit-identical histories (GSGM on sgd and GSGM on momentum: on sgd the optimizer is
sgd(lr * (1 - gsgm_momentum), momentum gsgm_momentum), the same steps when the tuned rates
map onto each other) are one configuration, counted once.
The strongest baseline is chosen on the tuning runs' validation scores (``tuning.csv``),
never on the reported seeds.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from algorithms import BASES, registry
from scenarios.errors import ConfigError
from scenarios.experiments.config import from_dict, numbers_fields
from scenarios.experiments.margins import margins, rows_of
from scenarios.experiments.results import RunResult, load_result
from scenarios.reports.claims.records import Shared, Source
from scenarios.reports.stats import accuracy_over

METHOD = "gsgm"
STABILITY = ("accuracy_std", "detrended_std")  # measured on converged runs only


def name(algorithm: str, base: str) -> str:
    return f"{registry.display_name(algorithm)} on {base}"


def _axis_text(value) -> str:
    """An axis value as tuning.csv writes it ("" for none)."""
    return "" if value is None else str(value)


@dataclass
class Cell:
    """One configuration of an experiment: its runs by (axis value, seed); ``members`` lists
    every (algorithm, base) whose runs are identical to these, the first the one shown."""

    members: list[tuple[str, str]]
    runs: dict  # (axis value, seed) -> RunResult

    @property
    def algorithm(self) -> str:
        return self.members[0][0]

    @property
    def is_method(self) -> bool:
        return self.algorithm == METHOD

    @property
    def name(self) -> str:
        if len(self.members) == 1:
            return name(*self.members[0])
        if len({a for a, _ in self.members}) == 1:
            return f"{name(*self.members[0])} = {' = '.join(b for _, b in self.members[1:])}"
        return " = ".join(name(*m) for m in self.members)

    def at(self, axis_value=None) -> list[RunResult]:
        return [r for (v, _), r in sorted(self.runs.items(), key=lambda kv: kv[0][1]) if v == axis_value]

    def values(self, measure: str, axis_value=None) -> dict:
        """seed -> the run's ``measure``, or None where it does not count: a stability
        measure counts for converged runs only (``STABILITY``), any other for every
        finite run (a failed run's accuracy is a measurement; leaving it out would flatter
        the method that failed)."""
        counts = ("converged",) if measure in STABILITY else ("converged", "failed")
        return {r.seed: getattr(r, measure) if r.outcome in counts else None for r in self.at(axis_value)}

    def counted_values(self, measure: str, axis_value=None) -> list[float]:
        return [v for v in self.values(measure, axis_value).values() if v is not None]

    def all_converged(self, axis_value=None) -> bool:
        runs = self.at(axis_value)
        return bool(runs) and all(r.outcome == "converged" for r in runs)

    def outcome_counts(self, axis_value=None) -> str:
        rs = self.at(axis_value)
        conv = sum(r.outcome == "converged" for r in rs)
        extra = [f"{sum(r.outcome == o for r in rs)} {o}" for o in ("failed", "diverged")
                 if any(r.outcome == o for r in rs)]
        return f"{conv}/{len(rs)} converged" + (f" ({', '.join(extra)})" if extra else "")

    def identical_to(self, other: "Cell") -> bool:
        return self.runs.keys() == other.runs.keys() and \
            all(self.runs[k].history == other.runs[k].history for k in self.runs)


def _order(member: tuple[str, str]) -> tuple:
    algorithm, base = member
    return (registry.order(algorithm), BASES.index(base) if base in BASES else len(BASES), algorithm, base)


def cells(results: list[RunResult]) -> list[Cell]:
    """The reported runs (test split) grouped into cells, identical cells merged, in report order."""
    grouped = defaultdict(dict)
    for r in results:
        if r.split == "test":
            grouped[(r.algorithm, r.base)][(r.axis_value, r.seed)] = r
    out: list[Cell] = []
    for member in sorted(grouped, key=_order):
        cell = Cell([member], grouped[member])
        twin = next((c for c in out if c.identical_to(cell)), None)
        if twin is None:
            out.append(cell)
        else:
            twin.members.append(member)
    return out


def axis_values(results: list[RunResult]) -> list:
    return sorted({r.axis_value for r in results if r.split == "test" and r.axis_value is not None})


def final_window(runs: list[RunResult]) -> float:
    """The simulated time its last ``final_evals`` evaluations span (median over the runs):
    the window an equal-time comparison averages over, as final accuracy does over updates."""
    spans = [r.history[-1]["sim_time"] - r.history[-min(len(r.history), int(r.config.get("final_evals", 5)))][
        "sim_time"] for r in runs if r.history]
    return float(np.median(spans)) if spans else 0.0


def accuracy_in_window(cell: Cell, start: float, end: float, axis_value=None) -> dict:
    """Seed -> the run's mean test accuracy over simulated time [start, end] (None for a run that diverged)."""
    return {r.seed: accuracy_over(r.history, start, end) if r.outcome != "diverged" else None
            for r in cell.at(axis_value)}


def equal_time(a: Cell, b: Cell, axis_value=None) -> tuple[float, float, dict, dict]:
    """The simulated time where the faster cell's runs ended (median over seeds), the window
    before it (``final_window`` of the faster cell), and each cell's mean accuracy over that
    window by seed (None for runs that diverged)."""
    end_a, end_b = (float(np.median([r.sim_time for r in c.at(axis_value)])) for c in (a, b))
    faster, horizon = (a, end_a) if end_a <= end_b else (b, end_b)
    window = final_window(faster.at(axis_value))
    return (horizon, window, accuracy_in_window(a, horizon - window, horizon, axis_value),
            accuracy_in_window(b, horizon - window, horizon, axis_value))


def to_budget(method: Cell, baseline: Cell) -> tuple[float, float, dict, dict]:
    """GSGM's runs against a baseline run until a simulated-time budget (``time_budget``): the
    window ending at the budget, as long as the method's last ``final_evals`` evaluations
    took, and each cell's mean accuracy over it by seed (None for runs that diverged)."""
    budget = float(baseline.at()[0].config["time_budget"])
    start = budget - final_window(method.at())
    return start, budget, accuracy_in_window(method, start, budget), accuracy_in_window(baseline, start, budget)


# ---------------------------------------------------------------------- tuning.csv
@dataclass(frozen=True)
class Tuning:
    """What a tuning.csv says: per cell (algorithm, base, axis value as text), the chosen
    field, value and validation score (mean over tuning seeds); the cells tuned at the
    edge of their grid; and the file's name as shown."""

    chosen: dict = field(default_factory=dict)  # (algorithm, base, axis text) -> (field, value, score)
    edges: tuple[str, ...] = ()
    label: str = ""
    runs: int = 0  # tuning runs (candidate x tuning seed) it records
    margins: tuple = ()  # each cell's margin over its runner-up against the tuning noise (margins.Margin)


def read_tuning(path: Optional[Path]) -> Tuning:
    """A tuning.csv (a folder's own, or an experiment's shipped one); empty when there is none."""
    if path is None or not path.is_file():
        return Tuning()
    rows = rows_of(path.read_text())
    scores = defaultdict(list)
    grids = defaultdict(set)
    for row in rows:
        cell = (row["algorithm"], row["base"], row["axis_value"])
        grids[cell + (row["field"],)].add(float(row["value"]))
        if row["chosen"] == "True":
            scores[cell + (row["field"], float(row["value"]))].append(float(row["validation_accuracy"]))
    chosen = {(a, b, v): (f, value, float(np.mean(s))) for (a, b, v, f, value), s in scores.items()}
    edges = set()
    for (a, b, v, f), grid in grids.items():
        picked = chosen.get((a, b, v))
        if picked and len(grid) > 1 and picked[1] in (min(grid), max(grid)):
            axis = next(row["axis"] for row in rows if (row["algorithm"], row["base"], row["axis_value"]) == (a, b, v))
            where = f" at {axis}={v}" if axis else ""
            edges.add(f"{name(a, b)}{where}: {f} = {picked[1]:g}, the "
                      f"{'smallest' if picked[1] == min(grid) else 'largest'} candidate")
    runs = len({(r["algorithm"], r["base"], r["axis_value"], r["value"], r["tuning_seed"]) for r in rows})
    return Tuning(chosen, tuple(sorted(edges)), f"{path.parent.name}/{path.name}", runs, tuple(margins(rows)))


def validation_score(cell: Cell, tuning: Tuning, axis_value=None) -> Optional[float]:
    """The validation score of the value a cell's reported runs ran at (the best over its
    identical members); None when the tuning file has no chosen value for it or when the
    runs ran at another value than the one it chose."""
    scores = []
    for algorithm, base in cell.members:
        picked = tuning.chosen.get((algorithm, base, _axis_text(axis_value)))
        runs = cell.at(axis_value)
        if picked is None or not runs:
            continue
        fieldname, value, score = picked
        if all(math.isclose(float(r.config.get(fieldname, math.nan)), value, rel_tol=1e-9) for r in runs):
            scores.append(score)
    return max(scores) if scores else None


def strongest(all_cells: list[Cell], tuning: Tuning, axis_value=None) -> Optional[Cell]:
    """The baseline whose tuned value scored highest on validation (first in report order among equals)."""
    best, best_score = None, -math.inf
    for cell in all_cells:
        if cell.is_method or not cell.at(axis_value):
            continue
        score = validation_score(cell, tuning, axis_value)
        if score is not None and score > best_score:
            best, best_score = cell, score
    return best


# ---------------------------------------------------------------------- folders, sources, shared runs
def load(folder: Path) -> list[RunResult]:
    """Every run under ``folder/runs``; a corrupt experiment.json or result.json is refused,
    naming the file, rather than judged as if it were not there."""
    manifest = folder / "experiment.json"
    if manifest.is_file():
        try:
            ok = isinstance(json.loads(manifest.read_text()), dict)
        except (OSError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"--results: {manifest} is not a valid experiment.json; re-run the command that wrote "
                              "the folder (finished runs are kept), or move the folder away")
    if not (folder / "runs").is_dir():
        return []
    results = []
    for path in sorted((folder / "runs").glob("*/result.json")):
        result = load_result(path)
        if result is None:
            raise ConfigError(f"--results: {path} is not a readable result.json; re-run the command that wrote it "
                              "with --force, or remove that run's folder")
        results.append(result)
    return results


def provenance_problems(name_: str, results: list[RunResult]) -> list[str]:
    """What keeps an experiment's reported runs from being rebuilt from a commit: runs made in
    a working tree with uncommitted changes (or outside a git checkout), and JAX versions
    mixed within the experiment."""
    reported = [r for r in results if r.split == "test"]
    unclean = [r for r in reported if not r.versions.get("git_commit") or
               str(r.versions["git_commit"]).endswith("+uncommitted")]
    problems = []
    if unclean:
        commits = sorted({str(r.versions.get("git_commit"))[:12] + "+uncommitted" * str(
            r.versions.get("git_commit")).endswith("+uncommitted") for r in unclean})
        problems.append(f"`{name_}`: {len(unclean)} of {len(reported)} reported runs were made in a working tree "
                        f"with uncommitted changes or outside a git checkout (commit {', '.join(commits)})")
    jax = sorted({r.versions.get("jax", "?") for r in reported})
    if len(jax) > 1:
        problems.append(f"`{name_}`: its reported runs mix JAX versions {', '.join(jax)}")
    return problems


def source(name_: str, results: list[RunResult], tuning: Tuning) -> Source:
    reported = [r for r in results if r.split == "test"]
    return Source(name_, len(reported), tuning.runs, tuning.label, tuning.margins, tuple(sorted({r.seed for r in reported})),
                  sum(r.updates_replayed for r in reported), sum(r.wall_time for r in reported),
                  tuple(sorted({r.versions.get("jax", "?") for r in reported})),
                  tuple(sorted({r.provenance.get("machine", {}).get("processor", "?") for r in reported})))


def _normalized(config: dict) -> dict:
    """A saved configuration as the current fields read it (retired fields dropped, new ones at
    their defaults), without the fields that decide only the outcome label."""
    return numbers_fields(from_dict(config))


def shared(first: str, a: list[RunResult], second: str, b: list[RunResult]) -> Shared:
    """How far the runs two experiments have in common (same algorithm, base and seed) agree."""
    index = {(r.algorithm, r.base, r.seed): r for r in b if r.split == "test"}
    pairs = [(r, index[(r.algorithm, r.base, r.seed)]) for r in a
             if r.split == "test" and (r.algorithm, r.base, r.seed) in index]
    differences = sorted({k for x, y in pairs for k, v in _normalized(x.config).items()
                          if _normalized(y.config).get(k) != v})
    finals = [abs(x.final_accuracy - y.final_accuracy) for x, y in pairs
              if x.final_accuracy is not None and y.final_accuracy is not None]
    return Shared(first, second, len(pairs), sum(x.key == y.key for x, y in pairs), tuple(differences),
                  sum(x.tuned == y.tuned for x, y in pairs), sum(x.trace == y.trace for x, y in pairs),
                  sum(x.history == y.history for x, y in pairs), max(finals) if finals else None,
                  (tuple(sorted({x.versions.get("jax", "?") for x, _ in pairs})),
                   tuple(sorted({y.versions.get("jax", "?") for _, y in pairs}))))


def at_axis(results: list[RunResult], value) -> list[RunResult]:
    return [r for r in results if r.axis_value == value]
