"""How a run ended: its final accuracy, its stability, and its outcome label.

The label is a function of the stored history and two fields that decide nothing but
the label (``target_accuracy``, ``diverged_loss_ratio``), so it is computed again
whenever a result is read: changing the target relabels saved runs without running
them again (docs/protocol.md, "Outcomes"):

- ``diverged``: the loss or accuracy became NaN or inf, or the final loss blew up to at
  least ``diverged_loss_ratio`` times the initial loss;
- ``converged``: finite, and each of the last ``final_evals`` evaluations is at least
  ``target_accuracy``: the run reached the target and held it;
- ``failed``: finite, but not converged.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

DEFAULT_TARGET_ACCURACY = 0.7
DEFAULT_DIVERGED_LOSS_RATIO = 10.0
OUTCOME_FIELDS = ("target_accuracy", "diverged_loss_ratio")  # decide the label only, never a run's numbers


def label(accuracy, loss, *, non_finite: bool, final_evals: int, target_accuracy: float,
          diverged_loss_ratio: float) -> str:
    """The outcome of a run from its evaluations' accuracy and loss (module docstring)."""
    if non_finite:
        return "diverged"
    accuracy, loss = np.asarray(accuracy, float), np.asarray(loss, float)
    if float(np.mean(loss[-final_evals:])) >= diverged_loss_ratio * float(loss[0]):
        return "diverged"
    return "converged" if bool(np.all(accuracy[-final_evals:] >= target_accuracy)) else "failed"


def second_half(update):
    """The evaluations of the second half of a run: at or after half its applied gradients."""
    update = np.asarray(update)
    return (update >= update[-1] / 2) & (update > 0)


def detrended_std(update, accuracy) -> float:
    """Residual std of accuracy around its least-squares line over the second half: the
    fluctuation, without the trend of a run still learning."""
    update, accuracy = np.asarray(update, float), np.asarray(accuracy, float)
    half = second_half(update)
    if half.sum() < 3:
        return 0.0
    x, y = update[half], accuracy[half]
    slope, intercept = np.polyfit(x - x.mean(), y, 1)
    return float(np.std(y - (slope * (x - x.mean()) + intercept)))


def label_fields(config: dict) -> dict:
    """The fields ``label`` reads, from a saved config (defaults for results saved before they existed)."""
    return {"final_evals": int(config.get("final_evals", 5)),
            "target_accuracy": float(config.get("target_accuracy", DEFAULT_TARGET_ACCURACY)),
            "diverged_loss_ratio": float(config.get("diverged_loss_ratio", DEFAULT_DIVERGED_LOSS_RATIO))}


def relabel(history: list[dict], config: dict, non_finite: bool) -> tuple[str, Optional[float]]:
    """The outcome and the detrended std of a saved result, from its history rows."""
    if non_finite or not history:
        return "diverged" if non_finite else "failed", None
    update = [e["update"] for e in history]
    accuracy = [e["accuracy"] for e in history]
    outcome = label(accuracy, [e["loss"] for e in history], non_finite=False, **label_fields(config))
    return outcome, detrended_std(update, accuracy)


def metrics_of(history, cfg, num_classes: int = 10) -> dict:
    """Final accuracy and loss (means of the last ``final_evals`` evaluations), stability
    (std of accuracy over the second half of the applied gradients, raw and detrended) and
    the outcome label."""
    del num_classes  # the label is set by the target accuracy, not by chance level
    acc, upd, loss = np.asarray(history.accuracy), np.asarray(history.update), np.asarray(history.loss)
    if history.diverged:
        return {"final_accuracy": None, "accuracy_std": None, "detrended_std": None, "diverged": True,
                "outcome": "diverged", "diverged_at": int(history.diverged_at)}
    half = second_half(upd)
    return {"final_accuracy": float(np.mean(acc[-cfg.final_evals:])),
            "accuracy_std": float(np.std(acc[half])) if half.any() else 0.0,
            "detrended_std": detrended_std(upd, acc),
            "final_loss": float(np.mean(loss[-cfg.final_evals:])), "diverged": False, "diverged_at": None,
            "outcome": label(acc, loss, non_finite=False, final_evals=cfg.final_evals,
                             target_accuracy=cfg.target_accuracy, diverged_loss_ratio=cfg.diverged_loss_ratio)}
