"""The simulated cluster of a configuration: worker speeds, the ClusterSpec, the server policy, the (cached) trace."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

import numpy as np

from algorithms import registry
from algorithms.history import timed
from scenarios.errors import ConfigError
from scenarios.experiments.timing import check_crashes, read_compute_trace
from sim import (
    ClusterSpec,
    ComputeModel,
    FailureModel,
    Trace,
    TraceError,
    network,
    simulate,
    straggler_speeds,
)
from sim.cluster import replay_model


def node_speeds(cfg, num_classes: int, seed: int) -> tuple[float, ...]:
    """Each worker's speed factor (docs/timing.md).

    ``cfg.speeds``, when given, is every worker's factor as it is. Otherwise the factors are
    log-spaced over ``cfg.spread``, assigned by ``cfg.speed_assignment``:

    - ``index``: worker w gets the w-th speed (slowest first);
    - ``class``: workers holding the same classes (label shards: worker w holds classes
      ``(w*c + j) mod K``) share a speed, log-spaced over the distinct class sets in order,
      so the per-class update imbalance stays the same as workers are added;
    - ``random``: the ``index`` speeds permuted with the run's seed.

    Then the first ``cfg.stragglers`` workers by index (0, 1, ...) are divided by
    ``cfg.straggler_slowdown``.
    """

    if cfg.speeds:
        speeds = tuple(float(s) for s in cfg.speeds)
    elif cfg.speed_assignment == "class":
        c = cfg.classes_per_worker
        sets = [frozenset((w * c + j) % num_classes for j in range(c)) for w in range(cfg.workers)]
        groups = list(dict.fromkeys(sets))
        levels = straggler_speeds(len(groups), cfg.spread)
        speeds = tuple(levels[groups.index(s)] for s in sets)
    else:
        speeds = straggler_speeds(cfg.workers, cfg.spread)
        if cfg.speed_assignment == "random":
            order = np.random.default_rng([seed, 7]).permutation(cfg.workers)
            speeds = tuple(speeds[i] for i in order)
    if cfg.stragglers:
        speeds = tuple(s / cfg.straggler_slowdown if w < cfg.stragglers else s for w, s in enumerate(speeds))
    return speeds


def cluster_spec(cfg, num_classes: int = 10, seed: int = 0, model_bytes: float = 0.0):
    """The simulated cluster; ``model_bytes`` (the parameters' size) matters only with a bandwidth.

    With ``compute=replay`` the durations are read from ``cfg.compute_trace``; a file whose
    sha256 is no longer the one the configuration was validated with is refused."""

    if cfg.compute == "replay":
        columns, sha = read_compute_trace(cfg.compute_trace)
        if cfg.compute_trace_sha256 and sha != cfg.compute_trace_sha256:
            raise ConfigError(f"compute_trace: {cfg.compute_trace} changed since the run was planned (sha256 "
                              f"{sha[:12]}..., planned with {cfg.compute_trace_sha256[:12]}...); run the command "
                              "again")
        compute = replay_model(columns)
    else:
        compute = ComputeModel(cfg.compute, 1.0, cfg.compute_sigma)
    net = network(cfg.latency, cfg.bandwidth, model_bytes if cfg.bandwidth > 0 else 0.0, cfg.jitter)
    return ClusterSpec(num_workers=cfg.workers, compute=compute, speeds=node_speeds(cfg, num_classes, seed),
                       push=net, pull=net, service_time=cfg.service_time,
                       failures=FailureModel(cfg.mttf, cfg.downtime))


def policy_for(algorithm: str, cfg) -> str:
    """The server policy the algorithm runs under, with this configuration."""
    return registry.get(algorithm).policy_for(cfg.to_dict())


@timed("trace simulation")
def trace_for(cfg, algorithm: str, seed: int, cache_dir: Optional[Path], num_classes: int = 10,
              model_bytes: float = 0.0):
    """The run's trace: simulated once per (cluster, policy, updates, time budget, seed), cached on disk.

    The cache key hashes the whole cluster spec, recorded durations included, so a changed
    compute_trace file is simulated again."""

    check_crashes(algorithm, cfg)
    spec = cluster_spec(cfg, num_classes, seed, model_bytes)
    policy = policy_for(algorithm, cfg)
    stop = {"updates": cfg.updates, **({"time_budget": cfg.time_budget} if cfg.time_budget else {})}
    key = hashlib.sha256(json.dumps({"spec": spec.to_dict(), "policy": policy, **stop,
                                     "seed": seed}, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir / f"{policy.replace(':', '')}-{key}.npz" if cache_dir else None
    if path is not None and path.is_file():
        try:
            return Trace.load(path)
        except TraceError:
            raise ConfigError(f"--out: the cached trace {path} is unreadable; delete it (it is only a cache and is "
                              "simulated again)") from None
    trace = simulate(spec, policy=policy, num_updates=cfg.updates, seed=seed, time_budget=cfg.time_budget)
    if path is not None:
        trace.save(path)
    return trace

