"""How a run ended: its final accuracy, its stability, and its outcome label."""

from __future__ import annotations

import numpy as np


def metrics_of(history, cfg, num_classes: int = 10) -> dict:
    """Final accuracy, stability (std of accuracy over the second half), and the outcome:

    - ``diverged``: the loss or accuracy became NaN or inf;
    - ``failed``: finite but not learning: the final accuracy is within ``failed_margin``
      of chance (1 / classes), or the final loss is at least ``failed_loss_ratio`` times
      the initial loss;
    - ``converged``: otherwise.
    """
    acc, upd, loss = np.asarray(history.accuracy), np.asarray(history.update), np.asarray(history.loss)
    if history.diverged:
        return {"final_accuracy": None, "accuracy_std": None, "diverged": True, "outcome": "diverged",
                "diverged_at": int(history.diverged_at)}
    second_half = (upd >= cfg.updates / 2) & (upd > 0)
    final_accuracy = float(np.mean(acc[-cfg.final_evals:]))
    final_loss = float(np.mean(loss[-cfg.final_evals:]))
    failed = (final_accuracy <= 1.0 / num_classes + cfg.failed_margin
              or final_loss >= cfg.failed_loss_ratio * float(loss[0]))
    return {"final_accuracy": final_accuracy,
            "accuracy_std": float(np.std(acc[second_half])) if second_half.any() else 0.0,
            "final_loss": final_loss, "diverged": False, "diverged_at": None,
            "outcome": "failed" if failed else "converged"}

