"""``compare``: where two rules' histories on a canonical case first differ."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

from scenarios.testing.factories import Factory
from scenarios.testing.replay import CaseHistory, replay_case

_METRICS = ("update", "sim_time", "loss", "accuracy", "param_norm", "digest")


def _rows(history) -> tuple[list[str], list[list]]:
    """The evaluations of a ``CaseHistory`` or an ``algorithms.History`` as rows."""
    inner = history
    columns = [("update", [int(u) for u in inner.update]), ("sim_time", [float(x) for x in inner.sim_time]),
               ("loss", [float(x) for x in inner.loss]), ("accuracy", [float(x) for x in inner.accuracy])]
    if isinstance(history, CaseHistory):
        columns += [("param_norm", [float(x) for x in history.param_norm]), ("digest", list(history.digest))]
    names = [c[0] for c in columns]
    return names, [list(row) for row in zip(*(c[1] for c in columns))]


class Difference(NamedTuple):
    """Where two histories first differ: at evaluation ``update`` (applied gradients so
    far), in ``metric``, values ``a`` and ``b``; ``largest`` maps each numeric metric to
    its largest absolute difference over the evaluations both have."""

    update: int
    metric: str
    a: Any
    b: Any
    largest: dict


def _first_difference(names, rows_a, rows_b, close=None):
    """(index, metric, a, b) of the first difference, or None; ``close(a, b)`` for floats."""
    for i in range(max(len(rows_a), len(rows_b))):
        if i >= len(rows_a) or i >= len(rows_b):
            return i, "evaluations", len(rows_a), len(rows_b)
        for j, metric in enumerate(names):
            a, b = rows_a[i][j], rows_b[i][j]
            if isinstance(a, float) and isinstance(b, float) and close is not None:
                if not close(a, b):
                    return i, metric, a, b
            elif a != b:
                return i, metric, a, b
    return None


def compare(factory_a: Factory, factory_b: Factory, name: str = "fifo-4", base="sgd") -> Optional[Difference]:
    """``None`` if the two rules give identical histories on case ``name`` (every
    evaluation's loss, accuracy and parameter digest, bit for bit), else a
    ``Difference`` at the first update where they differ."""
    a = replay_case(factory_a, name, base)
    b = replay_case(factory_b, name, base)
    names, rows_a = _rows(a)
    _, rows_b = _rows(b)
    first = _first_difference(names, rows_a, rows_b)
    if first is None and a.diverged == b.diverged:
        return None
    largest = {}
    for j, metric in enumerate(names):
        if metric in ("update", "sim_time", "digest"):
            continue
        diffs = [abs(ra[j] - rb[j]) for ra, rb in zip(rows_a, rows_b)]
        largest[metric] = max(diffs) if diffs else 0.0
    if first is None:
        return Difference(int(rows_a[-1][0]) if rows_a else 0, "diverged", a.diverged, b.diverged, largest)
    i, metric, va, vb = first
    rows = rows_a if i < len(rows_a) else rows_b
    update = int(rows[i][0]) if i < len(rows) else int(rows[-1][0])
    return Difference(update, metric, va, vb, largest)
