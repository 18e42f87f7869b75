"""A tiny softmax-regression problem for replay tests: fast to compile, exact to check."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from algorithms import Problem

NUM_SAMPLES, DIM, CLASSES, BATCH = 64, 5, 3, 4


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(NUM_SAMPLES, DIM)).astype(np.float32)
    y = (x @ rng.normal(size=(DIM, CLASSES))).argmax(1).astype(np.int32)
    return jnp.asarray(x), jnp.asarray(y)


def init_params(seed=0):
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    return {"w": 0.1 * jax.random.normal(k1, (DIM, CLASSES)), "b": 0.1 * jax.random.normal(k2, (CLASSES,))}


def loss_fn(params, batch):
    x, y = batch
    logits = x @ params["w"] + params["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def batch_fn(data, seed, worker, step):
    x, y = data
    key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), worker), step)
    idx = jax.random.randint(key, (BATCH,), 0, NUM_SAMPLES)
    return x[idx], y[idx]


def make_eval(data):
    @jax.jit
    def eval_fn(params):
        x, y = data
        logits = x @ params["w"] + params["b"]
        return {"loss": optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(),
                "accuracy": (logits.argmax(1) == y).mean()}
    return eval_fn


def problem(data, eval_fn, params0=None):
    """The replay's ``Problem`` on ``data``, from ``params0`` (default ``init_params()``)."""
    return Problem(loss_fn, batch_fn, eval_fn, data, init_params() if params0 is None else params0)
