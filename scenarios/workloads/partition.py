"""Split a training set across workers: label shards (non-IID degree c), Dirichlet, IID.

Each function returns one array of sample indices per worker; every sample goes to
exactly one worker.
"""

from __future__ import annotations

import numpy as np

PARTITIONS = ("shards", "dirichlet", "iid")


class PartitionError(ValueError):
    pass


def label_shards(labels: np.ndarray, num_workers: int, classes_per_worker: int, seed: int = 0) -> list[np.ndarray]:
    """Worker w holds the ``c`` classes ``(w*c + j) mod K``, j < c. A class held by m
    workers is split evenly (at random) among them. ``c = 1`` is one class per worker
    (the most non-IID); ``c = K`` gives every worker every class (IID in distribution).
    Needs ``num_workers * c >= K`` so that every class has a holder."""
    labels = np.asarray(labels)
    num_classes = int(labels.max()) + 1
    c = classes_per_worker
    if not 1 <= c <= num_classes:
        raise PartitionError(f"classes_per_worker: must lie in 1..{num_classes} (the number of classes), got {c}")
    if num_workers * c < num_classes:
        raise PartitionError(f"classes_per_worker: {num_workers} workers x {c} classes leave classes unassigned; "
                             f"need workers x classes_per_worker >= {num_classes}")
    rng = np.random.default_rng(seed)
    holders: list[list[int]] = [[] for _ in range(num_classes)]
    for w in range(num_workers):
        for j in range(c):
            holders[(w * c + j) % num_classes].append(w)
    parts: list[list[np.ndarray]] = [[] for _ in range(num_workers)]
    for k in range(num_classes):
        idx = rng.permutation(np.flatnonzero(labels == k))
        for w, chunk in zip(holders[k], np.array_split(idx, len(holders[k]))):
            parts[w].append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]


def dirichlet(labels: np.ndarray, num_workers: int, alpha: float, seed: int = 0, min_size: int = 2) -> list[np.ndarray]:
    """Each class is split across workers in proportions drawn from Dirichlet(alpha):
    small alpha is very non-IID, large alpha close to IID. Redraws (deterministically)
    until every worker has at least ``min_size`` samples."""
    labels = np.asarray(labels)
    if not (alpha > 0 and np.isfinite(alpha)):
        raise PartitionError(f"alpha: must be a finite number > 0, got {alpha}")
    if len(labels) < num_workers * min_size:
        raise PartitionError(f"workers: {len(labels)} samples cannot give {num_workers} workers {min_size} each")
    rng = np.random.default_rng(seed)
    num_classes = int(labels.max()) + 1
    for _ in range(1000):
        parts: list[list[np.ndarray]] = [[] for _ in range(num_workers)]
        for k in range(num_classes):
            idx = rng.permutation(np.flatnonzero(labels == k))
            cuts = (np.cumsum(rng.dirichlet(np.full(num_workers, alpha))) * len(idx)).astype(int)[:-1]
            for w, chunk in enumerate(np.split(idx, cuts)):
                parts[w].append(chunk)
        out = [np.sort(np.concatenate(p)) for p in parts]
        if min(len(p) for p in out) >= min_size:
            return out
    raise PartitionError(f"alpha: {alpha} leaves some of {num_workers} workers with fewer than {min_size} samples")


def iid(labels: np.ndarray, num_workers: int, seed: int = 0) -> list[np.ndarray]:
    """A uniformly random split into near-equal parts."""
    order = np.random.default_rng(seed).permutation(len(labels))
    return [np.sort(p) for p in np.array_split(order, num_workers)]


def partition(kind: str, labels, num_workers: int, *, classes_per_worker: int = 1, alpha: float = 0.5,
              seed: int = 0) -> list[np.ndarray]:
    if num_workers < 1 or num_workers > len(labels):
        raise PartitionError(f"workers: must lie in 1..{len(labels)} (the training samples), got {num_workers}")
    if kind == "shards":
        return label_shards(labels, num_workers, classes_per_worker, seed)
    if kind == "dirichlet":
        return dirichlet(labels, num_workers, alpha, seed)
    if kind == "iid":
        return iid(labels, num_workers, seed)
    raise PartitionError(f"partition: unknown {kind!r}; allowed: {', '.join(PARTITIONS)}")


def class_counts(labels, parts: list[np.ndarray]) -> np.ndarray:
    """[workers, classes] sample counts."""
    labels = np.asarray(labels)
    k = int(labels.max()) + 1
    return np.stack([np.bincount(labels[p], minlength=k) for p in parts])
