"""How clearly each tuned cell's winner won: its margin over the runner-up against the tuning noise.

Read from the rows of a tuning.csv (``tuning.TUNING_COLUMNS``). For one cell:

- the candidates that can win are those none of whose tuning runs diverged (as ``choose``);
- the *margin* is the winner's mean validation accuracy over the tuning seeds minus the
  runner-up's (the best other candidate that can win), in accuracy points;
- the *noise* is twice the standard error of that difference,
  ``2 · s · sqrt(1/n_winner + 1/n_runner_up)``, where ``s`` is the seed-to-seed standard
  deviation of validation accuracy pooled over the winner and the runner-up (the
  two-sample pooled SD, ``s² = Σ_c Σ_seeds (x − mean_c)² / (n_winner + n_runner_up − 2)``;
  the other candidates, often far noisier at a bad rate, do not enter);
- the winner lies *within the tuning noise* when the margin is below the noise: another
  draw of tuning seeds could well have chosen the runner-up.

With one tuning seed the noise is unknown (``noise`` is None). ``tuning_csv`` ends the file
with one ``# margin ...`` line per cell (``annotated``); ``stalesim claims`` lists the cells
within the noise.
"""

from __future__ import annotations

import math
import csv
from typing import NamedTuple, Optional

import numpy as np


class Margin(NamedTuple):
    """One cell's winning margin against the tuning noise, in accuracy points."""

    cell: str  # "asgd on sgd", or "asgd on sgd at workers=20"
    winner: str  # "lr_sgd=0.05"
    runner_up: Optional[str]  # None when no other candidate could win
    margin: Optional[float]
    noise: Optional[float]  # 2 standard errors of the margin; None with one tuning seed

    @property
    def within_noise(self) -> bool:
        return self.margin is not None and self.noise is not None and self.margin < self.noise

    def line(self) -> str:
        """The ``# margin`` line tuning.csv carries."""
        if self.runner_up is None:
            return f"# margin {self.cell}: {self.winner} was the only candidate that could win"
        noise = ("unknown (one tuning seed)" if self.noise is None else
                 f"{self.noise:.2f} points (2 SE)")
        verdict = ": within the tuning noise" if self.within_noise else ""
        return f"# margin {self.cell}: {self.winner} over {self.runner_up} by {self.margin:.2f} points; noise {noise}{verdict}"


def _score(text: str) -> float:
    return math.nan if text in ("", "None") else float(text)


def tuning_runs(rows: list[dict]) -> list[dict]:
    """The tuning runs the rows describe: one row per (candidate field, run), consecutive for
    one run, so a run is the rows of one cell and seed until a field repeats."""
    runs: list[dict] = []
    for row in rows:
        cell = (row["algorithm"], row["base"], row["axis"], row["axis_value"])
        last = runs[-1] if runs else None
        if last and last["cell"] == cell and last["seed"] == row["tuning_seed"] and row["field"] not in last["fields"]:
            last["fields"][row["field"]] = row["value"]
            continue
        runs.append({"cell": cell, "seed": row["tuning_seed"], "fields": {row["field"]: row["value"]},
                     "score": _score(row["validation_accuracy"]), "diverged": row["outcome"] == "diverged",
                     "chosen": row["chosen"] == "True"})
    return runs


def margin_and_noise(winner, other) -> tuple[float, Optional[float]]:
    """The difference of two candidates' mean scores over their tuning seeds, in points, and
    twice its standard error with the seed SD pooled over the two (None without a degree of
    freedom)."""
    winner, other = np.asarray(winner, dtype=float), np.asarray(other, dtype=float)
    dof = len(winner) + len(other) - 2
    noise = None
    if dof > 0:
        sd = math.sqrt((float(((winner - winner.mean()) ** 2).sum()) + float(((other - other.mean()) ** 2).sum()))
                       / dof)
        noise = 100 * 2 * sd * math.sqrt(1 / len(winner) + 1 / len(other))
    return float(100 * (winner.mean() - other.mean())), noise


def margins(rows: list[dict]) -> list[Margin]:
    """Every tuned cell's margin, in the order the rows give the cells."""
    by_cell: dict[tuple, dict[str, list]] = {}
    for run in tuning_runs(rows):
        candidate = ", ".join(f"{k}={v}" for k, v in run["fields"].items())
        by_cell.setdefault(run["cell"], {}).setdefault(candidate, []).append(run)
    out = []
    for (algorithm, base, axis, axis_value), candidates in by_cell.items():
        winner = next((c for c, runs in candidates.items() if runs[0]["chosen"]), None)
        if winner is None:
            continue  # nothing was chosen: no candidate could win
        able = {c: np.array([r["score"] for r in runs]) for c, runs in candidates.items()
                if not any(r["diverged"] for r in runs)}
        cell = f"{algorithm} on {base}" + (f" at {axis}={axis_value}" if axis else "")
        others = {c: s.mean() for c, s in able.items() if c != winner}
        if not others:
            out.append(Margin(cell, winner, None, None, None))
            continue
        runner_up = max(others, key=others.get)
        out.append(Margin(cell, winner, runner_up, *margin_and_noise(able[winner], able[runner_up])))
    return out


def rows_of(text: str) -> list[dict]:
    """The rows of a tuning.csv's text (its ``#`` lines skipped)."""
    return list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))


def annotated(text: str) -> str:
    """A tuning.csv's text ending with its ``# margin`` lines, computed from its rows (any
    earlier ones replaced)."""
    kept = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("# margin "))
    return kept + "".join(m.line() + "\n" for m in margins(rows_of(text)))
