"""Successive halving over the tuning grid, judged offline on finished tuning runs: does it choose what the full grid chose, and at what cost?

    python -m benchmarks.halving record DIR [DIR ...] OUT.json   # experiment folders with their tuning runs
    python -m benchmarks.halving markdown OUT.json                # the table benchmarks/README.md shows

The rule (one rung): every candidate of a cell runs on every tuning seed up to a
fraction ``f`` of its updates; a candidate is scored there as the protocol scores it at
the end (mean over tuning seeds of the mean of its last ``final_evals`` validation
evaluations so far), a candidate with a non-finite loss by then is dropped, and the best
``keep`` continue to the full budget, where ``tuning.choose`` picks among them as it
does over the full grid. Its cost, in applied updates, is ``n·f + keep·(1 − f)`` per
tuning seed against ``n`` for the full grid (n candidates; a survivor continues from its
state at the rung, not from scratch).

Nothing is re-run: a finished tuning run's history holds every evaluation (those made
before 2026-12-02; a tuning run now records only the start and its last ``final_evals``
points, and ``score_at`` refuses it), and the run cut at ``f`` is an exact prefix of it
(a run's trace and updates do not depend on where it will stop; tests/sim pins this for
time budgets). The record names the folders, the
cells, and every cell where the choice differs, with the full grid's margin between the
two candidates (in validation accuracy points) against the tuning noise
(``scenarios.experiments.margins.margin_and_noise``: twice the standard error of that
difference over the tuning seeds).
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from benchmarks.records import record_command
from scenarios.experiments.halving import Halving
from scenarios.experiments.margins import margin_and_noise
from scenarios.experiments.results import load_result
from scenarios.experiments.tuning import choose

FRACTIONS = (1 / 6, 1 / 3, 1 / 2)
KEEPS = (2, 3)


def tuning_cells(folder: Path) -> dict:
    """(algorithm, base, axis value) -> [(candidate, result)] of a folder's tuning runs, in grid order."""
    cells = defaultdict(list)
    for path in sorted(folder.glob("runs/tune-*/result.json")):
        r = load_result(path)
        if r is not None and r.tuned:
            cells[(r.algorithm, r.base, r.axis_value)].append((tuple(sorted(r.tuned.items())), r))
    return {cell: sorted(entries, key=lambda e: (e[0], e[1].seed)) for cell, entries in cells.items()}


def score_at(result, cut: int) -> float:
    """The run's score at update ``cut``: the mean of its last ``final_evals`` evaluations so far;
    NaN when its loss was not finite by then."""
    seen = [e for e in result.history if e["update"] <= cut]
    if not result.diverged and len(seen) < min(cut // int(result.config["eval_every"]) + 1, len(result.history)):
        raise ValueError(f"{result.run}: records only the evaluations its selection reads (tuning runs since "
                         "2026-12-02: the start and the last final_evals points); this analysis needs a tuning run "
                         "evaluated at every point, as the committed ones made before that were")
    if not seen or not all(math.isfinite(e["loss"]) for e in seen):
        return math.nan
    return float(np.mean([e["accuracy"] for e in seen[-int(result.config.get("final_evals", 5)):]]))


def survivors(entries: list, fraction: float, keep: int) -> list:
    """The candidates the tool's rung (``Halving.survivors``) keeps, each tuning run scored at the
    cut as a rung run ending there would be."""
    at_cut = []
    for cand, r in entries:
        score = score_at(r, int(r.config["updates"] * fraction))
        at_cut.append((cand, SimpleNamespace(final_accuracy=score, diverged=not math.isfinite(score))))
    return Halving(keep, Fraction(fraction).limit_denominator(1000)).survivors(at_cut)


def judge(cells: dict, fraction: float, keep: int) -> dict:
    """Agreement with the full grid and the tuning cost, for one (fraction, keep); ``cells`` is
    keyed by (experiment, algorithm, base, axis value)."""
    agree, differ, cost, full_cost = 0, [], 0.0, 0.0
    for cell, entries in cells.items():
        full = choose(entries)
        kept = set(survivors(entries, fraction, keep))
        halved = choose([(c, r) for c, r in entries if c in kept])
        if halved == full:
            agree += 1
        else:
            scores = {c: [r.final_accuracy for cc, r in entries if cc == c] for c in (full, halved) if c}
            margin, noise = margin_and_noise(scores[full], scores[halved]) if full and halved else (None, None)
            experiment, algorithm, base, axis_value = cell
            differ.append({"cell": f"{experiment}: {algorithm} on {base}"
                                   + (f" at {axis_value}" if axis_value is not None else ""),
                           "full_grid": dict(full or ()), "halving": dict(halved or ()),
                           "margin_points": None if margin is None else round(margin, 2),
                           "noise_points": None if noise is None else round(noise, 2),
                           "within_noise": margin is not None and noise is not None and margin < noise})
        seeds = len({r.seed for _, r in entries})
        n = len({c for c, _ in entries})
        full_cost += n * seeds
        cost += (n * fraction + min(keep, n) * (1 - fraction)) * seeds
    return {"fraction": round(fraction, 4), "keep": keep, "same_choice": agree, "cells": len(cells),
            "cost_of_full_grid": round(cost / full_cost, 3) if full_cost else None, "differences": differ}


def record(folders: list[Path]) -> dict:
    cells = {}
    for folder in folders:
        found = tuning_cells(folder)
        if not found:
            raise SystemExit(f"benchmarks.halving: {folder}: no finished tuning runs (runs/tune-*/result.json); "
                             "the committed docs/claims-data folders keep only tuning.csv, so give the folders of "
                             "a claims --rerun or a reproduce --tune run")
        cells.update({(folder.name,) + cell: entries for cell, entries in found.items()})
    rows = [judge(cells, fraction, keep) for fraction in FRACTIONS for keep in KEEPS]
    commits = sorted({str(r.versions.get("git_commit")) for entries in cells.values() for _, r in entries})
    return {"experiments": [f.name for f in folders], "tuning_runs_made_at": commits,
            "tuning_runs": sum(len(e) for e in cells.values()), "rules": rows}


def markdown(rec: dict) -> str:
    lines = ["| rung at | keep | same choice as the full grid | tuning cost (of the full grid) | where it differs "
             "(full grid's margin) |", "|---|---:|---:|---:|---|"]
    for r in rec["rules"]:
        where = "; ".join(f"{d['cell']} ({d['margin_points']:.2f} points, "
                          f"{'within' if d['within_noise'] else 'beyond'} the tuning noise of {d['noise_points']:.2f})"
                          for d in r["differences"]) or "—"
        lines.append(f"| {r['fraction']:.2f} of the updates | {r['keep']} | {r['same_choice']}/{r['cells']} cells | "
                     f"{r['cost_of_full_grid']:.2f} | {where} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return record_command(list(sys.argv[1:] if argv is None else argv), __doc__, record, markdown)


if __name__ == "__main__":
    sys.exit(main())
