"""The runner: carry out runs (simulate or reuse the trace, replay it with the rule), skip finished ones.

Every command that runs experiments (``run``, ``reproduce``, ``sweep``) goes through
``run_many``: it skips runs already finished in the output folder (same key), carries
out the rest in this process, a local process pool (``jobs``) or on Ray, and writes
each result as it arrives. The numbers do not depend on where a run was carried out.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from algorithms import Base, registry

from .catalogue import RunSpec
from .config import ConfigError
from .progress import Progress
from .results import RunResult, load_result, write_result
from .workload import workload

BACKENDS = ("local", "ray")
AUTO = "auto"  # --jobs auto: see processes_for
AUTO_MIN_UPDATES = 20_000  # less work than this is carried out in this process under --jobs auto


def cores() -> int:
    """CPU cores this process may run on (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def processes_for(jobs, todo: list) -> int:
    """Local processes for the runs ``todo``: ``jobs`` itself when it is a number, or for
    ``"auto"`` one per CPU core, at most one per group of runs sharing a compiled replay
    (``_compile_groups``), and this process alone when the runs total fewer than
    ``AUTO_MIN_UPDATES`` applied updates (a worker process spends about 3 s starting,
    importing JAX and reading the data), or when JAX computes on an accelerator. XLA runs
    one replay on about one CPU core, so separate processes are how a run of many replays
    uses the machine; results are the same for every number of processes."""
    if jobs != AUTO:
        return max(1, min(int(jobs), len(todo)))
    if sum(run.config.updates for run in todo) < AUTO_MIN_UPDATES or accelerator():
        return 1
    return max(1, min(cores(), len(_compile_groups(todo))))


def accelerator() -> bool:
    """Whether JAX computes on a GPU or TPU here: then ``--jobs auto`` keeps one process,
    since each process would claim most of the device's memory."""
    import jax

    return jax.default_backend() != "cpu"


def node_speeds(cfg, num_classes: int, seed: int) -> tuple[float, ...]:
    """Each node's speed factor (docs/timing.md).

    ``cfg.speeds``, when given, is every node's factor as it is. Otherwise the factors are
    log-spaced over ``cfg.spread``, assigned by ``cfg.speed_assignment``:

    - ``index``: node w gets the w-th speed (slowest first);
    - ``class``: nodes holding the same classes (label shards: node w holds classes
      ``(w*c + j) mod K``) share a speed, log-spaced over the distinct class sets in order,
      so the per-class update imbalance stays the same as nodes are added;
    - ``random``: the ``index`` speeds permuted with the run's seed.

    Then the first ``cfg.stragglers`` nodes by index (0, 1, ...) are divided by
    ``cfg.straggler_slowdown``.
    """
    from sim import straggler_speeds

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
    from sim import ClusterSpec, ComputeModel, FailureModel, network
    from sim.cluster import replay_model

    from .timing import read_compute_trace

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


_RULES: dict = {}
_MAX_RULES = 64


def rule_for(algorithm: str, base: str, cfg):
    """The server rule of ``algorithm`` on the base optimizer ``base`` with this configuration.

    One rule object per (algorithm, base, learning rate, momentum, workers, the algorithm's
    hyperparameters) in a process, so the replay engine (cached by rule object) compiles
    once for every seed of it instead of once per run."""
    entry = registry.get(algorithm)
    values = cfg.to_dict()
    base_ = Base(base, cfg.learning_rate(base), cfg.momentum)
    key = (entry.name, base_, cfg.workers,
           json.dumps({h.name: values[h.name] for h in entry.hyperparameters}, sort_keys=True, default=repr))
    if key not in _RULES:
        if len(_RULES) >= _MAX_RULES:
            _RULES.pop(next(iter(_RULES)))
        _RULES[key] = entry.rule(base_, cfg.workers, values)
    return _RULES[key]


def trace_for(cfg, algorithm: str, seed: int, cache_dir: Optional[Path], num_classes: int = 10,
              model_bytes: float = 0.0):
    """The run's trace: simulated once per (cluster, policy, updates, seed), cached on disk.

    The cache key hashes the whole cluster spec, recorded durations included, so a changed
    compute_trace file is simulated again."""
    from sim import Trace, TraceError, simulate

    from .timing import check_crashes

    check_crashes(algorithm, cfg)
    spec = cluster_spec(cfg, num_classes, seed, model_bytes)
    policy = policy_for(algorithm, cfg)
    key = hashlib.sha256(json.dumps({"spec": spec.to_dict(), "policy": policy, "updates": cfg.updates,
                                     "seed": seed}, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir / f"{policy.replace(':', '')}-{key}.npz" if cache_dir else None
    if path is not None and path.is_file():
        try:
            return Trace.load(path)
        except TraceError:
            raise ConfigError(f"--out: the cached trace {path} is unreadable; delete it (it is only a cache and is "
                              "simulated again)") from None
    trace = simulate(spec, policy=policy, num_updates=cfg.updates, seed=seed)
    if path is not None:
        trace.save(path)
    return trace


def metrics_of(history, cfg, num_classes: int = 10) -> dict:
    """Final accuracy, stability (std of accuracy over the second half), and the outcome:

    - ``diverged``: the loss or accuracy became NaN or inf;
    - ``failed``: finite but not learning: the final accuracy is within ``failed_margin``
      of chance (1 / classes), or the final loss is at least ``failed_loss_ratio`` times
      the initial loss;
    - ``converged``: otherwise.
    """
    acc, upd, loss = np.asarray(history.accuracy), np.asarray(history.update), np.asarray(history.loss)
    if history.diverged:
        return {"final_accuracy": None, "accuracy_std": None, "diverged": True, "outcome": "diverged",
                "diverged_at": int(history.diverged_at)}
    second_half = (upd >= cfg.updates / 2) & (upd > 0)
    final_accuracy = float(np.mean(acc[-cfg.final_evals:]))
    final_loss = float(np.mean(loss[-cfg.final_evals:]))
    failed = (final_accuracy <= 1.0 / num_classes + cfg.failed_margin
              or final_loss >= cfg.failed_loss_ratio * float(loss[0]))
    return {"final_accuracy": final_accuracy,
            "accuracy_std": float(np.std(acc[second_half])) if second_half.any() else 0.0,
            "final_loss": final_loss, "diverged": False, "diverged_at": None,
            "outcome": "failed" if failed else "converged"}


def resolve_mode(cfg) -> str:
    """``auto``: one compiled loop per run of ops for the MLP and the CNN (whose convolutions
    are matrix products), one jitted call per op for the ResNet: XLA's CPU convolutions ran
    about 20x slower inside a compiled loop (measured, see benchmarks/README.md)."""
    if cfg.mode != "auto":
        return cfg.mode
    return "loop" if cfg.model == "resnet" else "scan"


def execute(run: RunSpec, data_dir=None, trace_dir: Optional[Path] = None) -> RunResult:
    """Carry out one run and return its result (not yet written)."""
    import jax

    from algorithms import replay
    from sim import summarize

    from .data import provenance
    from .workload import dataset

    cfg = run.config
    wl = workload(cfg, data_dir)
    files = provenance(dataset(cfg.dataset, data_dir).files)
    params0 = wl.model.init(jax.random.PRNGKey(run.seed))
    model_bytes = float(sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(params0)))
    trace = trace_for(cfg, run.algorithm, run.seed, trace_dir, wl.num_classes, model_bytes)
    rule = rule_for(run.algorithm, run.base, cfg)
    started = time.perf_counter()
    history = replay(trace, rule, wl.problem(params0, run.split), eval_every=cfg.eval_every, seed=run.seed,
                     mode=resolve_mode(cfg))
    wall = time.perf_counter() - started
    summary = summarize(trace)
    summary.pop("idle_time_per_worker", None)
    metrics = metrics_of(history, cfg, wl.num_classes)
    return RunResult(
        run=run.label, key=run.key, algorithm=run.algorithm, base=run.base, seed=run.seed,
        axis=run.axis, axis_value=getattr(cfg, run.axis) if run.axis else None,
        policy=policy_for(run.algorithm, cfg), config=cfg.to_dict(), split=run.split, tuned=dict(run.tuned),
        hyperparameters={o.field: o.record(cfg) for o in run.origins},
        **metrics,
        updates_replayed=history.updates_replayed, wall_time=wall,
        updates_per_second=history.updates_replayed / wall if wall > 0 else None,
        history=history.to_records(), trace=summary, versions=versions(),
        provenance={"data": {"dataset": cfg.dataset, "files": files}, "machine": machine()})


_VERSIONS: dict = {}


def versions() -> dict:
    """The versions that made a result: Python, the libraries, stalesim and its git commit."""
    if not _VERSIONS:
        import platform
        import subprocess
        from importlib.metadata import PackageNotFoundError, version

        import jax
        import jaxlib
        import optax
        import simpy

        try:
            stalesim = version("stalesim")
        except PackageNotFoundError:
            stalesim = None
        root = Path(__file__).resolve().parent.parent
        commit = None
        if (root / ".git").exists():
            try:
                head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                      timeout=10)
                dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                       capture_output=True, text=True, timeout=10)
                if head.returncode == 0:
                    commit = head.stdout.strip() + ("+uncommitted" if dirty.stdout.strip() else "")
            except (OSError, subprocess.SubprocessError):
                commit = None
        _VERSIONS.update(python=platform.python_version(), jax=jax.__version__, jaxlib=jaxlib.__version__,
                         numpy=np.__version__, simpy=simpy.__version__, optax=optax.__version__, stalesim=stalesim,
                         git_commit=commit)
    return dict(_VERSIONS)


def machine() -> dict:
    """The platform and the JAX device the numbers were computed on."""
    import platform

    import jax

    device = jax.devices()[0]
    return {"platform": platform.platform(), "processor": platform.machine(), "jax_backend": jax.default_backend(),
            "jax_device": f"{device.platform}:{getattr(device, 'device_kind', '')}"}


# ------------------------------------------------------------------ many runs
def pending(runs: list[RunSpec], out: Path, force: bool) -> tuple[dict, list[RunSpec]]:
    """Runs already finished in ``out`` (by key) and the runs still to do."""
    done, todo = {}, []
    for run in runs:
        path = out / "runs" / run.dirname / "result.json"
        existing = None if force else load_result(path)
        if existing is None and path.exists() and not force:
            raise ConfigError(f"--out {out}: {path.relative_to(out)} is unreadable (corrupt, or not a stalesim "
                              "result); remove it, or use --force to recompute every run")
        if existing is not None and existing.key != run.key:
            raise ConfigError(f"--out {out}: {path.relative_to(out)} holds another run (key {existing.key}); "
                              "remove it, or use --force to recompute every run")
        if existing is not None:
            done[run.key] = existing
        else:
            todo.append(run)
    return done, todo


def _order_for_trace_reuse(runs: list[RunSpec]) -> list[RunSpec]:
    """Runs sharing a cluster shape and seed next to each other, so the first simulates
    the trace and the others find it in the cache."""
    return sorted(runs, key=lambda r: (r.seed, sorted(r.config.to_dict().items()), r.algorithm, r.base))


def _task(run: RunSpec, data_dir, trace_dir) -> RunResult:
    """What a worker process does: one run, its result returned (the caller writes it)."""
    use_compilation_cache()
    return execute(run, data_dir=data_dir, trace_dir=Path(trace_dir) if trace_dir else None)


def _group_task(runs: list[RunSpec], data_dir, trace_dir) -> list[RunResult]:
    """What a worker process of the local pool does: runs that share a compiled replay."""
    return [_task(run, data_dir, trace_dir) for run in runs]


def _compile_groups(runs: list[RunSpec]) -> list[list[RunSpec]]:
    """The runs, in their order, grouped by what their replay compiles for (algorithm,
    base, configuration: every field but the seed), so that one process compiles it once
    for all its seeds."""
    groups: dict = {}
    for run in runs:
        groups.setdefault((run.algorithm, run.base, run.config), []).append(run)
    return list(groups.values())


COMPILATION_CACHE_ENV = "STALESIM_COMPILATION_CACHE"


def use_compilation_cache() -> Optional[str]:
    """Opt-in: with ``STALESIM_COMPILATION_CACHE=DIR`` in the environment, JAX keeps every
    compiled program in ``DIR`` (its persistent compilation cache), so later processes,
    ``--jobs`` workers included, load it instead of compiling again. The numbers are the
    same either way. Returns the folder, or None when the variable is unset or empty."""
    folder = os.environ.get(COMPILATION_CACHE_ENV, "").strip()
    if not folder:
        return None
    import jax

    folder = str(Path(folder).expanduser().resolve())
    if jax.config.jax_compilation_cache_dir != folder:
        jax.config.update("jax_compilation_cache_dir", folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder


def run_many(runs: list[RunSpec], out: Path, *, data_dir=None, force: bool = False, jobs: int | str = 1,
             backend: str = "local", address: Optional[str] = None, log=print,
             invocation: Optional[dict] = None) -> list[RunResult]:
    """Carry out every run not already finished in ``out``; results in the order of ``runs``.

    ``invocation`` (the command line and the overrides) is recorded in each result's
    provenance. ``jobs``: local processes, a number or ``"auto"`` (``processes_for``)."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend: must be one of {', '.join(BACKENDS)}, got {backend!r}")
    use_compilation_cache()
    done, todo = pending(runs, out, force)
    jobs = processes_for(jobs, todo) if todo else 1
    where = f"{jobs} processes" if backend == "local" and jobs > 1 else ("ray" if backend == "ray" else "in process")
    log(f"{len(runs)} runs, {len(done)} already finished, {len(todo)} to do ({where})")
    progress = Progress(len(runs), log)
    for run in runs:
        if run.key in done:
            progress.kept(run.label)
    results = dict(done)
    trace_dir = str(out / "traces")

    def finished(run: RunSpec, result: RunResult):
        if invocation:
            result.provenance["invocation"] = invocation
        write_result(out / "runs" / run.dirname, result)
        results[run.key] = result
        progress.finished(result)

    if todo:
        if backend == "ray":
            _run_ray(todo, address, data_dir, trace_dir, finished)
        else:
            _run_local(_order_for_trace_reuse(todo) if jobs > 1 else todo, jobs, data_dir, trace_dir, finished)
    return [results[r.key] for r in runs]


def _run_local(todo, jobs: int, data_dir, trace_dir, finished: Callable) -> None:
    from concurrent.futures import ProcessPoolExecutor, as_completed

    if jobs == 1:
        for run in todo:
            finished(run, _task(run, data_dir, trace_dir))
        return
    groups = _compile_groups(todo)
    # JAX must not be forked once initialised: spawn fresh worker processes; each carries out
    # whole groups, so a replay is compiled once per group rather than once per run
    with ProcessPoolExecutor(max_workers=min(jobs, len(groups)),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_group_task, group, data_dir, trace_dir): group for group in groups}
        for future in as_completed(futures):
            for run, result in zip(futures[future], future.result()):
                finished(run, result)


def _run_ray(todo, address, data_dir, trace_dir, finished: Callable) -> None:
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray: Ray is not installed; install it with "
                          "pip install 'stalesim[ray]' (or pip install ray)") from None
    started_here = not ray.is_initialized()
    # stalesim is made for offline machines: no usage report unless the user asks for one
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(_task)
        refs = {task.remote(run, data_dir, trace_dir): run for run in todo}
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            for ref in ready:
                finished(refs.pop(ref), ray.get(ref))
    finally:
        if started_here:
            ray.shutdown()
