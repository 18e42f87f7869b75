"""Comparing two pytrees leaf by leaf: bit for bit, or within the rounding XLA allows an update."""

from __future__ import annotations

import math
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np


def _paths(tree, prefix: str):

    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    return [prefix + jax.tree_util.keystr(p) for p, _ in leaves], [x for _, x in leaves], treedef


def _same(a, b) -> bool:
    """Bit for bit: dtype, shape and bytes."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _same_tree(a, b) -> Optional[str]:
    """None if ``a`` and ``b`` are the same pytree bit for bit, else the first differing leaf."""
    names, xs, ta = _paths(a, "")
    _, ys, tb = _paths(b, "")
    if ta != tb:
        return "(tree structure)"
    for name, x, y in zip(names, xs, ys):
        if not _same(x, y):
            return name or "(leaf)"
    return None


JIT_RTOL = 1e-4  # how far jit may be from op by op, relative to the change an update makes


def _distance(a, b, before=None) -> float:
    """How far ``b`` is from ``a`` (a leaf after one update, jitted and op by op;
    ``before`` the leaf before it): 0 if bit for bit equal; else the largest absolute
    difference relative to the largest change the update made (``|a - before|``), with
    4 units of the last place of the leaf's magnitude forgiven; ``inf`` for another
    dtype, shape, NaN or inf pattern, or any difference in an integer leaf."""

    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return math.inf
    if a.tobytes() == b.tobytes():
        return 0.0
    if not jnp.issubdtype(a.dtype, jnp.floating):
        return math.inf
    x, y = a.astype(np.float64), b.astype(np.float64)
    if not (np.array_equal(np.isnan(x), np.isnan(y)) and np.array_equal(np.isinf(x), np.isinf(y))
            and np.array_equal(x[np.isinf(x)], y[np.isinf(y)])):
        return math.inf
    ok = np.isfinite(x)
    r = np.zeros_like(x)
    if before is not None and np.shape(before) == a.shape:
        r = np.asarray(before, np.float64)
        r = np.where(np.isfinite(r), r, 0.0)
    x, y, r = x[ok], y[ok], r[ok]
    diff = np.max(np.abs(x - y), initial=0.0)
    magnitude = max(np.max(np.abs(x), initial=0.0), np.max(np.abs(y), initial=0.0), np.max(np.abs(r), initial=0.0))
    diff = max(0.0, diff - 4 * float(jnp.finfo(a.dtype).eps) * magnitude)
    if diff == 0:
        return 0.0
    change = max(np.max(np.abs(x - r), initial=0.0), np.max(np.abs(y - r), initial=0.0))
    return math.inf if change == 0 else float(diff / change)


def _compare_trees(expected, got, before) -> tuple[Optional[str], float]:
    """(first leaf further than ``JIT_RTOL`` from ``expected``, or None; the largest distance)."""
    names, xs, tx = _paths(expected, "")
    _, ys, ty = _paths(got, "")
    if tx != ty:
        return "(tree structure)", math.inf
    _, rs, tr = _paths(before, "")
    rs = rs if tr == tx else [None] * len(xs)
    worst = 0.0
    for name, x, y, r in zip(names, xs, ys, rs):
        d = _distance(x, y, r)
        worst = max(worst, d)
        if d > JIT_RTOL:
            return name or "(leaf)", d
    return None, worst


def _distance_text(d: float) -> str:
    return "type, shape, NaN/inf pattern or integer value" if math.isinf(d) else f"{d:.3g} of the update's change"
