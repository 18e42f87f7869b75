"""Successive halving over a cell's tuning candidates, one rung: every candidate runs a fraction of the updates, the best few run to the end.

    stalesim reproduce noniid --tune default --halving 3@1/6

With ``--halving KEEP@FRACTION``, every candidate of a cell first runs on every tuning
seed for ``FRACTION`` of its updates (the *rung*). It is scored there as the protocol
scores a tuning run at its end: the mean over the tuning seeds of its final validation
accuracy (the mean of the last ``final_evals`` evaluations of the rung run). A candidate
with a non-finite loss in any rung run is dropped; of the others, the ``KEEP`` best (the
first in grid order among equals) run the whole budget, and ``tuning.choose`` picks
among them exactly as it picks over the full grid. A cell with ``KEEP`` candidates or
fewer skips the rung.

A rung run is an exact prefix of the full run: a run's trace and updates do not depend
on where it will stop (tests/scenarios/experiments/test_halving.py pins it), so a rung
run is the full run cut at the rung, and the rule is the one
``benchmarks/halving.py`` judged offline on the committed tuning runs. Survivors start
again from scratch (the rung is not continued), so the cost per tuning seed is
``n·FRACTION + KEEP`` runs' worth of updates against ``n`` for the full grid
(n candidates): 3.83 of 5 at ``3@1/6``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Optional

import numpy as np

from scenarios.errors import ConfigError
from scenarios.experiments.catalogue import RunSpec


@dataclass(frozen=True)
class Halving:
    """One rung: after ``fraction`` of the updates, keep the ``keep`` best candidates."""

    keep: int
    fraction: Fraction

    def __str__(self) -> str:
        return f"{self.keep}@{self.fraction}"

    def rung(self, run: RunSpec) -> RunSpec:
        """The tuning run cut at the rung: the same run, ``fraction`` of its updates (at least one evaluation's worth)."""
        updates = max(run.config.eval_every, math.floor(run.config.updates * self.fraction))
        return replace(run, config=replace(run.config, updates=updates).validate())

    def cuts(self, entries: list[tuple[tuple, object]]) -> bool:
        """Whether a cell's (candidate, run) pairs hold more than ``keep`` candidates (else it skips the rung)."""
        return len({cand for cand, _ in entries}) > self.keep

    @staticmethod
    def scores(entries: list[tuple[tuple, object]]) -> dict[tuple, Optional[float]]:
        """Each candidate's rung score from a cell's (candidate, rung result) pairs, in grid order:
        the mean over its tuning seeds of the final validation accuracy; None when a rung run
        had a non-finite loss."""
        by_candidate: dict[tuple, list] = {}
        for cand, result in entries:
            by_candidate.setdefault(cand, []).append(result)
        return {cand: None if any(r.diverged for r in results) else float(np.mean([r.final_accuracy for r in results]))
                for cand, results in by_candidate.items()}

    def survivors(self, entries: list[tuple[tuple, object]]) -> list[tuple]:
        """The candidates that run the whole budget, from a cell's (candidate, rung result) pairs:
        the ``keep`` highest rung scores among candidates with no non-finite rung run, the first
        in grid order among equals; in grid order."""
        scores = self.scores(entries)
        alive = {cand: score for cand, score in scores.items() if score is not None}
        order = sorted(alive, key=lambda cand: -alive[cand])  # stable: grid order among equals
        best = set(order[:self.keep])
        return [cand for cand in scores if cand in best]


def parse_halving(text: Optional[str], option: str = "--halving") -> Optional[Halving]:
    """``"3@1/6"`` -> Halving(keep=3, fraction=1/6); None for None or ``"off"``; one error line otherwise."""
    if text is None or str(text).strip() == "off":
        return None
    keep, sep, fraction = str(text).strip().partition("@")
    try:
        halving = Halving(int(keep), Fraction(fraction.strip()))
    except (ValueError, ZeroDivisionError):
        halving = None
    if not sep or halving is None or halving.keep < 1 or not 0 < halving.fraction < 1:
        raise ConfigError(f"{option}: expected KEEP@FRACTION with KEEP >= 1 and 0 < FRACTION < 1 (e.g. 3@1/6), "
                          f"or off; got {text!r}")
    return halving
