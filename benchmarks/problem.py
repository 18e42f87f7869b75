"""The benchmarks' training problem: label shards, softmax cross-entropy, minibatches of a fixed size."""

from __future__ import annotations

import numpy as np


def shards(workers: int):
    """``(x, y, parts, source)``: training images [N, 28, 28, 1] uint8, labels, each worker's
    label shard; Fashion-MNIST if installed, else random images of its shape (``source`` says which)."""
    from scenarios.workloads.data import DataError, load_fmnist
    from scenarios.workloads.partition import label_shards

    try:
        ds = load_fmnist()
        x, y, source = ds.x_train, ds.y_train, "fashion-mnist"
    except DataError:
        rng = np.random.default_rng(0)
        x, y, source = rng.integers(0, 256, (60000, 28, 28, 1), dtype=np.uint8), np.arange(60000) % 10, "random"
    parts = label_shards(y, workers, max(1, -(-10 // workers)))
    return x, np.asarray(y, np.int64), parts, source


def problem(model, x, y, parts, batch: int):
    """``(loss_fn, batch_fn, data)`` for ``model`` on images ``x`` (uint8, scaled to [0, 1]) and
    labels ``y``, worker w drawing ``batch`` samples with replacement from ``parts[w]``."""
    import jax
    import jax.numpy as jnp
    import optax

    lengths = np.array([len(p) for p in parts], np.int32)
    shards = np.zeros((len(parts), lengths.max()), np.int32)
    for w, p in enumerate(parts):
        shards[w, :len(p)] = p

    def loss_fn(params, b):
        xb, yb = b
        return optax.softmax_cross_entropy_with_integer_labels(model.apply(params, xb), yb).mean()

    def batch_fn(d, seed, worker, step):
        xs, ys, shard_index, shard_len = d
        key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), worker), step)
        idx = shard_index[worker, jax.random.randint(key, (batch,), 0, shard_len[worker])]
        return xs[idx].astype(jnp.float32) / 255.0, ys[idx]

    data = (jnp.asarray(x), jnp.asarray(y, jnp.int32), jnp.asarray(shards), jnp.asarray(lengths))
    return loss_fn, batch_fn, data
