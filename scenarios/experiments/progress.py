"""One progress reporter for every command that carries out runs: a line per finished run."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Progress:
    total: int
    log: object = print
    done: int = 0
    computed: int = 0
    started: float = field(default_factory=time.perf_counter)

    def kept(self, label: str) -> None:
        """A run finished before (resumed experiment)."""
        self.done += 1
        self.log(f"[{self.done:>4}/{self.total}] {label:<34} done before, kept")

    def finished(self, result, note: str = "") -> None:
        """A run just computed."""
        self.done += 1
        self.computed += 1
        elapsed = time.perf_counter() - self.started
        left = (self.total - self.done) * elapsed / self.computed
        if result.outcome == "diverged":
            acc = "diverged"
        else:
            acc = f"acc {result.final_accuracy:.3f}"
            if result.accuracy_std is not None:  # None for a tuning run (execute.evaluate_last)
                acc += f" std {result.accuracy_std:.4f}"
            if result.outcome == "failed":
                acc += " failed"
        ups = result.updates_per_second or 0.0
        self.log(f"[{self.done:>4}/{self.total}] {result.run:<34} {acc:<31} {ups:6.0f} upd/s  "
                 f"elapsed {hms(elapsed)}  left ~{hms(left)}{note}")


def hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
