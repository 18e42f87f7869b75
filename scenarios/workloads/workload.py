"""The workload of a configuration: data, partition, model, loss, minibatches and evaluation.

Built once per configuration and process, and shared by its runs (and by
``benchmarks``).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from algorithms import Problem
from algorithms.history import timed
from scenarios.errors import ConfigError
from scenarios.workloads.data import load
from scenarios.workloads.models import make_model
from scenarios.workloads.partition import partition


class Workload(NamedTuple):
    """What a replay trains, for one configuration."""

    model: object
    loss_fn: Callable  # (params, batch) -> scalar
    batch_fn: Callable  # (data, seed, worker, step) -> batch, uniform with replacement from the worker's shard
    eval_fn: Callable  # params -> {"loss", "accuracy"} on the (fixed subset of the) test set
    validate_fn: Callable  # params -> {"loss", "accuracy"} on the validation split held out of training, or None
    data: tuple  # (x_train, y_train, shard_index [N, max_len], shard_len [N])
    num_classes: int
    parts: list  # training-sample indices of each worker

    def problem(self, params0, split: str = "test"):
        """The replay's problem bundle, starting from ``params0``, evaluated on ``split``
        (``"test"`` for reported runs, ``"validation"`` for tuning runs)."""

        if split == "validation" and self.validate_fn is None:
            raise ConfigError("validation_samples: tuning scores candidates on a validation split held out of the "
                              "training set; set validation_samples > 0")
        return Problem(self.loss_fn, self.batch_fn, self.eval_fn if split == "test" else self.validate_fn,
                       self.data, params0)


_WORKLOADS: dict = {}
_DATASETS: dict = {}


def dataset(name: str, data_dir=None):
    """``data.load(name, data_dir)``, read once per process (the commands check it
    before any work, then every run uses it)."""

    key = (name, str(data_dir))
    if key not in _DATASETS:
        _DATASETS[key] = load(name, data_dir)
    return _DATASETS[key]


def check_runnable(cfg, data) -> None:
    """Raise ConfigError now if the model or the partition cannot be built for ``data``."""

    try:
        make_model(cfg.model, data.input_shape, data.num_classes)
        partition(cfg.partition, data.y_train, cfg.workers, classes_per_worker=cfg.classes_per_worker,
                  alpha=cfg.alpha, seed=0)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def shape(cfg) -> tuple:
    """The configuration fields a workload is built from (its data split over the workers, its
    model, its evaluation sets): runs of one shape share a workload."""
    return (cfg.dataset, cfg.model, cfg.workers, cfg.partition, cfg.classes_per_worker, cfg.alpha, cfg.batch_size,
            cfg.eval_samples, cfg.validation_samples)


def workload(cfg, data_dir=None) -> Workload:
    """The workload of ``cfg`` (the last one built is kept in memory and reused)."""
    key = shape(cfg) + (str(data_dir),)
    if key not in _WORKLOADS:
        wl = build(cfg, dataset(cfg.dataset, data_dir))
        _WORKLOADS.clear()  # keep one workload (its data) in memory at a time
        _WORKLOADS[key] = wl
    return _WORKLOADS[key]


@timed("data and workload")
def build(cfg, ds) -> Workload:
    """Partition ``ds`` over ``cfg.workers`` workers and define loss, minibatches and evaluation."""


    train_idx, val_idx = validation_split(ds.y_train, cfg.validation_samples)
    try:
        model = make_model(cfg.model, ds.input_shape, ds.num_classes)
        parts = partition(cfg.partition, ds.y_train[train_idx], cfg.workers, classes_per_worker=cfg.classes_per_worker,
                          alpha=cfg.alpha, seed=0)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    parts = [train_idx[p] for p in parts]  # indices into the whole training set
    lengths = np.array([len(p) for p in parts], dtype=np.int32)
    shards = np.zeros((cfg.workers, lengths.max()), dtype=np.int32)
    for w, p in enumerate(parts):
        shards[w, :len(p)] = p

    is_image = ds.x_train.dtype == np.uint8
    if is_image:
        mean, std = float(ds.x_train.mean() / 255.0), float(ds.x_train.std() / 255.0)
    else:
        mean, std = 0.0, 1.0

    def prepare(x):
        x = x.astype(jnp.float32)
        return (x / 255.0 - mean) / std if is_image else x

    def loss_fn(params, batch):
        x, y = batch
        return optax.softmax_cross_entropy_with_integer_labels(model.apply(params, x), y).mean()

    batch_size = cfg.batch_size

    def batch_fn(data, seed, worker, step):
        """Minibatch ``step`` of ``worker``: uniform with replacement from its shard."""
        x_train, y_train, shard_index, shard_len = data
        key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), worker), step)
        pos = jax.random.randint(key, (batch_size,), 0, shard_len[worker])
        idx = shard_index[worker, pos]
        return prepare(x_train[idx]), y_train[idx]

    n_test = len(ds.y_test) if cfg.eval_samples == 0 else min(cfg.eval_samples, len(ds.y_test))
    test_idx = np.sort(np.random.default_rng(12345).permutation(len(ds.y_test))[:n_test])

    @jax.jit
    def eval_chunk(params, x, y):
        logits = model.apply(params, prepare(x))
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).sum()
        return loss, (logits.argmax(-1) == y).sum()

    def evaluator(x_all, y_all, chunk=1000):
        """Loss and accuracy over the set, in chunks of ``chunk`` samples (sliced once here):
        every chunk is dispatched, then all their sums are fetched at once and added in
        chunk order in float64, as a loop of one chunk at a time would."""
        n = len(y_all)
        chunks = [(jnp.asarray(x_all[i:i + chunk]), jnp.asarray(y_all[i:i + chunk])) for i in range(0, n, chunk)]

        def evaluate(params):
            sums = jax.device_get([eval_chunk(params, x, y) for x, y in chunks])
            loss, correct = 0.0, 0
            for l, c in sums:
                loss, correct = loss + float(l), correct + int(c)
            return {"loss": loss / n, "accuracy": correct / n}
        return evaluate

    eval_fn = evaluator(ds.x_test[test_idx], ds.y_test[test_idx])
    validate_fn = evaluator(ds.x_train[val_idx], ds.y_train[val_idx]) if len(val_idx) else None
    data = (jnp.asarray(ds.x_train), jnp.asarray(ds.y_train), jnp.asarray(shards), jnp.asarray(lengths))
    return Workload(model, loss_fn, batch_fn, eval_fn, validate_fn, data, ds.num_classes, parts)


def validation_split(labels: np.ndarray, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices: ``samples`` held out, stratified by class (the same
    fraction of each class), drawn with a fixed seed so every run holds out the same ones."""
    labels = np.asarray(labels)
    everything = np.arange(len(labels))
    if samples == 0:
        return everything, everything[:0]
    if samples >= len(labels):
        raise ConfigError(f"validation_samples: must be < the training set's {len(labels)} samples, got {samples}")
    rng = np.random.default_rng(54321)
    held = []
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        held.append(rng.permutation(idx)[:int(round(samples * len(idx) / len(labels)))])
    val = np.sort(np.concatenate(held))
    return np.setdiff1d(everything, val), val
