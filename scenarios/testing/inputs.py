"""The canonical parameters and inputs (workers, staleness, gradients, backups) the battery updates a rule on."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

_NUM_WORKERS, _OTHER_NUM_WORKERS = 5, 7  # neither is a dimension of the canonical parameters


def canonical_params():
    """The parameters ``check_rule`` updates: a nested dict of float32 arrays, shapes
    (3, 2), (2,) and () (no dimension is 5 or 7, the worker counts it uses)."""

    rng = np.random.default_rng(7)
    return {"layer": {"b": jnp.zeros((2,), jnp.float32),
                      "w": jnp.asarray(rng.normal(size=(3, 2)), jnp.float32)},
            "scale": jnp.ones((), jnp.float32)}


def _inputs(params, num_steps: int, num_workers: int):
    """Per step: (worker, staleness, grad, backup). Workers come in rounds, each a
    permutation of all workers (what a barrier expects)."""

    rng = np.random.default_rng(11)
    workers = np.concatenate([rng.permutation(num_workers) for _ in range(-(-num_steps // num_workers))])
    out = []
    for t in range(num_steps):
        grad = jax.tree_util.tree_map(lambda x: jnp.asarray(rng.normal(size=x.shape), x.dtype), params)
        shift = jax.tree_util.tree_map(lambda x: jnp.asarray(0.01 * rng.normal(size=x.shape), x.dtype), params)
        out.append((int(workers[t]), int(rng.integers(0, 4)), grad, shift))
    return out
