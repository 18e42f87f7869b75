"""The cases' two workloads, least squares and a small MLP, as ``algorithms.Problem``s with hash-drawn minibatches."""

from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import optax

from algorithms import Problem
from scenarios.testing.case_files import _workload_arrays


def _hash_indices(seed, worker, step, batch: int, n: int):
    """``batch`` sample indices in [0, n), a pure integer hash of (seed, worker, step):
    the same on every JAX version (no ``jax.random``)."""

    u = jnp.uint32
    h = (jnp.asarray(seed).astype(u) * u(0x9E3779B1) ^ jnp.asarray(worker).astype(u) * u(0x85EBCA77)
         ^ jnp.asarray(step).astype(u) * u(0xC2B2AE3D))
    x = h + jnp.arange(batch, dtype=u) * u(0x27D4EB2F)
    x = x ^ (x >> 16)
    x = x * u(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * u(0x846CA68B)
    x = x ^ (x >> 16)
    return (x % u(n)).astype(jnp.int32)


def _lsq_loss(w, batch):

    x, y = batch
    return jnp.mean((x @ w - y) ** 2)


def _lsq_batch(data, seed, worker, step):
    i = _hash_indices(seed, worker, step, 8, 64)
    return data[0][i], data[1][i]


def _mlp_logits(params, x):

    return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def _mlp_loss(params, batch):

    x, y = batch
    return optax.softmax_cross_entropy_with_integer_labels(_mlp_logits(params, x), y).mean()


def _mlp_batch(data, seed, worker, step):
    i = _hash_indices(seed, worker, step, 16, 128)
    return data[0][i], data[1][i]


@lru_cache(maxsize=None)
def case_problem(workload: str):
    """The ``algorithms.Problem`` of a workload (``""``: least squares, ``"-mlp"``)."""


    a = {k: jnp.asarray(v) for k, v in _workload_arrays().items()}
    if workload == "":
        data = (a["lsq_x"], a["lsq_y"])

        @jax.jit
        def eval_fn(w):
            residual = data[0] @ w - data[1]
            return {"loss": jnp.mean(residual ** 2), "accuracy": jnp.mean(jnp.abs(residual) < 0.5)}
        return Problem(_lsq_loss, _lsq_batch, eval_fn, data, jnp.zeros(6, jnp.float32))
    data = (a["mlp_x"], a["mlp_y"])

    @jax.jit
    def eval_mlp(params):
        logits = _mlp_logits(params, data[0])
        return {"loss": optax.softmax_cross_entropy_with_integer_labels(logits, data[1]).mean(),
                "accuracy": jnp.mean(jnp.argmax(logits, axis=1) == data[1])}
    params0 = {k: a[f"mlp_{k}"] for k in ("w1", "b1", "w2", "b2")}
    return Problem(_mlp_loss, _mlp_batch, eval_mlp, data, params0)
