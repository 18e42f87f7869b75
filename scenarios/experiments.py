"""Named experiments and how one run is carried out.

A *scenario* is a base configuration plus a grid: algorithms x base optimizers x seeds,
optionally along one axis (workers for ``scale``, classes per worker for ``noniid``).
A *run* is one point of the grid: it simulates (or reuses) the trace for its cluster,
policy and seed, replays it with the rule, and writes ``result.json`` atomically into
a directory keyed by the hash of its full configuration, so an interrupted experiment
resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .config import ALGORITHMS, BASES, ConfigError, ExperimentConfig, check_count, check_names, run_key


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    claim: str  # what the paper says, which this scenario tests
    config: ExperimentConfig
    algorithms: tuple[str, ...] = ("asgd", "dcasgd", "gsgm")
    bases: tuple[str, ...] = BASES
    seeds: int = 3
    axis: Optional[str] = None  # a config field to vary
    axis_values: tuple = ()
    fallback: Optional[str] = None  # dataset to use when config.dataset's files are absent


SCENARIOS: dict[str, Scenario] = {s.name: s for s in [
    Scenario(
        "synthetic", "Instant demo: 10 Gaussian clusters, 4 workers holding 3 classes each, an MLP.",
        "none (a smoke test of the whole pipeline)",
        ExperimentConfig(dataset="synthetic", model="mlp", workers=4, classes_per_worker=3, updates=400,
                         eval_every=50, lr_sgd=0.1, lr_momentum=0.01, lr_adam=0.01, final_evals=3),
        bases=("sgd", "momentum"), seeds=2),
    Scenario(
        "fmnist", "Fashion-MNIST, 10 nodes holding one class each, node speeds spread 4x, MLP 784-200-10; "
                  "ASGD, DC-ASGD-a and GSGM on SGD, momentum SGD and Adam.",
        "GSGM raises training stability by about 20% with a slight accuracy gain (Fashion-MNIST, 10 nodes)",
        ExperimentConfig()),
    Scenario(
        "cifar10", "CIFAR-10, 10 nodes holding one class each, node speeds spread 4x, small ResNet.",
        "GSGM raises training stability by about 20% with a slight accuracy gain (CIFAR-10, 10 nodes)",
        ExperimentConfig(dataset="cifar10", model="resnet", updates=3000, eval_every=100, eval_samples=2000)),
    Scenario(
        "scale", "10, 20 and 30 nodes on CIFAR-100 (Fashion-MNIST when CIFAR-100 is absent), one class per node "
                 "(a class split across nodes when nodes outnumber classes), momentum SGD.",
        "with 30 nodes only GSGM converges well; on CIFAR-100 stability improves by 37%",
        ExperimentConfig(dataset="cifar100", model="resnet", updates=3000, eval_every=100, eval_samples=2000),
        bases=("momentum",),
        axis="workers", axis_values=(10, 20, 30), fallback="fmnist"),
    Scenario(
        "noniid", "Fashion-MNIST, 10 nodes, non-IID degree from 1 class per node to all 10 (IID), momentum SGD.",
        "GSGM is robust to the degree of non-IID data",
        ExperimentConfig(), algorithms=("asgd", "gsgm"), bases=("momentum",),
        axis="classes_per_worker", axis_values=(1, 2, 5, 10)),
]}


@dataclass(frozen=True)
class RunSpec:
    """One point of an experiment's grid."""

    config: ExperimentConfig
    algorithm: str
    base: str
    seed: int
    axis: Optional[str] = None

    @property
    def key(self) -> str:
        return run_key(self.config, self.algorithm, self.base, self.seed)

    @property
    def label(self) -> str:
        axis = f"-{self.axis}{getattr(self.config, self.axis)}" if self.axis else ""
        return f"{self.algorithm}-{self.base}{axis}-s{self.seed}"

    @property
    def dirname(self) -> str:
        return f"{self.label}-{self.key[:10]}"


def grid(configs, algorithms, bases, seeds: int, axis: Optional[str] = None) -> list[RunSpec]:
    """Every (config, algorithm, base, seed), in a fixed order."""
    return [RunSpec(cfg, a, b, s, axis) for cfg in configs for a in algorithms for b in bases for s in range(seeds)]


def expand(scenario: Scenario, config: ExperimentConfig, algorithms=None, bases=None, seeds=None) -> list[RunSpec]:
    """The grid of runs, in a fixed order."""
    algorithms = check_names("--algorithms", algorithms or scenario.algorithms, ALGORITHMS)
    bases = check_names("--base", bases or scenario.bases, BASES)
    n_seeds = check_count("--seeds", scenario.seeds if seeds is None else seeds)
    configs = []
    for value in scenario.axis_values if scenario.axis else (None,):
        cfg = config if value is None else replace(config, **{scenario.axis: value})
        try:
            configs.append(cfg.validate())
        except ConfigError as e:
            raise ConfigError(f"{scenario.name} along {scenario.axis}={value}: {e}") from None
    return grid(configs, algorithms, bases, n_seeds, scenario.axis)


# ------------------------------------------------------------------ building blocks
def cluster_spec(cfg: ExperimentConfig, model_bytes: float = 0.0):
    """The simulated cluster; ``model_bytes`` (the parameters' size) matters only with a bandwidth."""
    from sim import ClusterSpec, ComputeModel, network, straggler_speeds

    net = network(cfg.latency, cfg.bandwidth, model_bytes if cfg.bandwidth > 0 else 0.0, cfg.jitter)
    return ClusterSpec(num_workers=cfg.workers, compute=ComputeModel(cfg.compute, 1.0, cfg.compute_sigma),
                       speeds=straggler_speeds(cfg.workers, cfg.spread), push=net, pull=net)


def policy_for(algorithm: str, cfg: ExperimentConfig) -> str:
    return {"gsgm": cfg.gsgm_policy, "ssgd": "barrier", "fedbuff": f"buffered:{cfg.buffer_size}"}.get(algorithm, "fifo")


def build_rule(algorithm: str, base: str, cfg: ExperimentConfig):
    """The server rule for an algorithm on a base optimizer (see docs/choices.md)."""
    import optax

    from algorithms import asgd, buffered, dcasgd, gsgm, polynomial, ssgd, staleness_aware_asgd

    def base_optimizer():
        return {"sgd": lambda: optax.sgd(cfg.lr_sgd), "momentum": lambda: optax.sgd(cfg.lr_momentum, cfg.momentum),
                "adam": lambda: optax.adam(cfg.lr_adam)}[base]()

    scope = cfg.baseline_state
    if algorithm == "asgd":
        return asgd(base=base_optimizer(), state_scope=scope)
    if algorithm == "sasgd":
        return staleness_aware_asgd(base=base_optimizer(), state_scope=scope)
    if algorithm == "dcasgd":
        return dcasgd(base=base_optimizer(), lam=cfg.dcasgd_lam, adaptive=cfg.dcasgd_variant == "a",
                      state_scope=scope)
    if algorithm == "gsgm":
        k = cfg.gsgm_k or -(-cfg.workers // 2)
        if base == "sgd":
            # GSGM brings its global momentum to plain SGD; lr (1 - beta) keeps SGD's step size
            return gsgm(cfg.lr_sgd * (1 - cfg.momentum), momentum=cfg.momentum, average_window=k)
        return gsgm(base=base_optimizer(), average_window=k)
    if algorithm == "ssgd":
        return ssgd(base=base_optimizer())
    if algorithm == "fedbuff":
        return buffered(base=base_optimizer(), buffer_size=cfg.buffer_size, weight=polynomial(0.5))
    raise ConfigError(f"algorithm: unknown {algorithm!r}; allowed: {', '.join(ALGORITHMS)}")


@dataclass
class Workload:
    """Data, partition and model for one configuration, built once and shared by runs."""

    dataset: object
    model: object
    loss_fn: Callable
    batch_fn: Callable
    eval_fn: Callable
    data: tuple
    class_counts: np.ndarray


_WORKLOADS: dict = {}


def check_runnable(cfg: ExperimentConfig, dataset) -> None:
    """Raise ConfigError now if the model or the partition cannot be built for ``dataset``."""
    from .models import make_model
    from .partition import partition

    try:
        make_model(cfg.model, dataset.input_shape, dataset.num_classes)
        partition(cfg.partition, dataset.y_train, cfg.workers, classes_per_worker=cfg.classes_per_worker,
                  alpha=cfg.alpha, seed=0)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def workload(cfg: ExperimentConfig, data_dir=None) -> Workload:
    import jax
    import jax.numpy as jnp
    import optax

    from .models import make_model
    from .partition import class_counts, partition

    key = (cfg.dataset, cfg.model, cfg.workers, cfg.partition, cfg.classes_per_worker, cfg.alpha, cfg.batch_size,
           cfg.eval_samples, str(data_dir))
    if key in _WORKLOADS:
        return _WORKLOADS[key]
    ds = dataset(cfg.dataset, data_dir)
    try:
        model = make_model(cfg.model, ds.input_shape, ds.num_classes)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    try:
        parts = partition(cfg.partition, ds.y_train, cfg.workers, classes_per_worker=cfg.classes_per_worker,
                          alpha=cfg.alpha, seed=0)
    except ValueError as e:
        raise ConfigError(str(e)) from None
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
    x_test, y_test = jnp.asarray(ds.x_test[test_idx]), jnp.asarray(ds.y_test[test_idx])

    @jax.jit
    def eval_chunk(params, x, y):
        logits = model.apply(params, prepare(x))
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).sum()
        return loss, (logits.argmax(-1) == y).sum()

    chunk = 1000

    def eval_fn(params):
        loss, correct = 0.0, 0
        for i in range(0, n_test, chunk):
            l, c = eval_chunk(params, x_test[i:i + chunk], y_test[i:i + chunk])
            loss, correct = loss + float(l), correct + int(c)
        return {"loss": loss / n_test, "accuracy": correct / n_test}

    data = (jnp.asarray(ds.x_train), jnp.asarray(ds.y_train), jnp.asarray(shards), jnp.asarray(lengths))
    wl = Workload(ds, model, loss_fn, batch_fn, eval_fn, data, class_counts(ds.y_train, parts))
    _WORKLOADS.clear()  # keep one workload (its data) in memory at a time
    _WORKLOADS[key] = wl
    return wl


_DATASETS: dict = {}


def dataset(name: str, data_dir=None):
    """``data.load(name, data_dir)``, read once per process (the commands check it
    before any work, then every run uses it)."""
    from .data import load

    key = (name, str(data_dir))
    if key not in _DATASETS:
        _DATASETS[key] = load(name, data_dir)
    return _DATASETS[key]


def trace_for(cfg: ExperimentConfig, algorithm: str, seed: int, cache_dir: Optional[Path], model_bytes: float = 0.0):
    """The run's trace: simulated once per (cluster, policy, updates, seed), cached on disk."""
    import hashlib

    from sim import Trace, TraceError, simulate

    spec = cluster_spec(cfg, model_bytes)
    policy = policy_for(algorithm, cfg)
    key = hashlib.sha256(json.dumps({"spec": spec.to_dict(), "policy": policy, "updates": cfg.updates,
                                     "seed": seed}, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir / f"{policy.replace(':', '')}-{key}.npz" if cache_dir else None
    if path is not None and path.is_file():
        try:
            return Trace.load(path)
        except TraceError:
            pass  # a damaged cache entry is simulated again
    trace = simulate(spec, policy=policy, num_updates=cfg.updates, seed=seed)
    if path is not None:
        trace.save(path)
    return trace


def metrics_of(history, cfg: ExperimentConfig) -> dict:
    """Final accuracy, stability (std of accuracy over the second half), divergence."""
    acc, upd = np.asarray(history.accuracy), np.asarray(history.update)
    if history.diverged:
        return {"final_accuracy": None, "accuracy_std": None, "diverged": True,
                "diverged_at": int(history.diverged_at)}
    second_half = (upd >= cfg.updates / 2) & (upd > 0)
    return {"final_accuracy": float(np.mean(acc[-cfg.final_evals:])),
            "accuracy_std": float(np.std(acc[second_half])) if second_half.any() else 0.0,
            "final_loss": float(np.mean(np.asarray(history.loss)[-cfg.final_evals:])),
            "diverged": False, "diverged_at": None}


def resolve_mode(cfg: ExperimentConfig) -> str:
    """``auto``: lax.scan for the MLP, a loop of jitted ops for conv nets (measured, see benchmarks/)."""
    if cfg.mode != "auto":
        return cfg.mode
    return "scan" if cfg.model == "mlp" else "loop"


def execute(run: RunSpec, data_dir=None, trace_dir: Optional[Path] = None) -> dict:
    """Carry out one run and return its result (not yet written)."""
    import jax

    from algorithms import replay
    from sim import summarize

    cfg = run.config
    wl = workload(cfg, data_dir)
    params0 = wl.model.init(jax.random.PRNGKey(run.seed))
    model_bytes = float(sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(params0)))
    trace = trace_for(cfg, run.algorithm, run.seed, trace_dir, model_bytes)
    rule = build_rule(run.algorithm, run.base, cfg)
    started = time.perf_counter()
    history = replay(trace, rule, wl.loss_fn, params0, wl.batch_fn, wl.eval_fn, cfg.eval_every, run.seed,
                     data=wl.data, mode=resolve_mode(cfg))
    wall = time.perf_counter() - started
    summary = summarize(trace)
    summary.pop("idle_time_per_worker", None)
    return {
        "run": run.label, "key": run.key, "algorithm": run.algorithm, "base": run.base, "seed": run.seed,
        "axis": run.axis, "axis_value": getattr(cfg, run.axis) if run.axis else None,
        "policy": policy_for(run.algorithm, cfg), "config": cfg.to_dict(),
        **metrics_of(history, cfg),
        "updates_replayed": history.updates_replayed, "wall_time": wall,
        "updates_per_second": history.updates_replayed / wall if wall > 0 else None,
        "history": history.to_records(),
        "trace": summary,
        "versions": _versions(),
    }


def _versions() -> dict:
    import jax
    import optax
    import simpy

    return {"jax": jax.__version__, "optax": optax.__version__, "simpy": simpy.__version__, "numpy": np.__version__}


# ------------------------------------------------------------------ results on disk
def write_json_atomic(path: Path, obj) -> None:
    """Write JSON to a temporary file in the same directory, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, allow_nan=False, default=_json_default)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def write_result(run_dir: Path, result: dict) -> None:
    """A run's ``history.csv`` (one row per evaluation), then its ``result.json``; each
    atomically, the JSON last, so a run counts as finished only once both exist."""
    rows = ["update,sim_time,loss,accuracy"] + [f"{e['update']},{e['sim_time']!r},{e['loss']!r},{e['accuracy']!r}"
                                                 for e in result["history"]]
    write_text_atomic(run_dir / "history.csv", "\n".join(rows) + "\n")
    write_json_atomic(run_dir / "result.json", result)


def load_result(path: Path) -> Optional[dict]:
    """A finished run's result, or None if absent or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


@dataclass
class Progress:
    total: int
    done: int = 0
    skipped: int = 0
    started: float = field(default_factory=time.perf_counter)
    computed_time: float = 0.0

    def line(self, result: dict, elapsed_run: float) -> str:
        self.done += 1
        self.computed_time += elapsed_run
        computed = self.done - self.skipped
        left = (self.total - self.done) * (self.computed_time / computed if computed else 0.0)
        acc = "diverged" if result["diverged"] else f"acc {result['final_accuracy']:.3f} std {result['accuracy_std']:.4f}"
        ups = result.get("updates_per_second") or 0.0
        return (f"[{self.done:>3}/{self.total}] {result['run']:<32} {acc:<24} {ups:7.0f} upd/s  "
                f"elapsed {_hms(time.perf_counter() - self.started)}  left ~{_hms(left)}")


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def run_all(runs: list[RunSpec], out: Path, *, data_dir=None, force: bool = False, log=print) -> list[dict]:
    """Carry out every run not already finished in ``out`` (``force``: all of them)."""
    runs_dir, trace_dir = out / "runs", out / "traces"
    progress = Progress(len(runs))
    results = []
    for run in runs:
        path = runs_dir / run.dirname / "result.json"
        existing = None if force else load_result(path)
        if existing is not None and existing.get("key") == run.key:
            progress.skipped += 1
            progress.done += 1
            log(f"[{progress.done:>3}/{progress.total}] {run.label:<32} done before, kept")
            results.append(existing)
            continue
        t0 = time.perf_counter()
        result = execute(run, data_dir=data_dir, trace_dir=trace_dir)
        write_result(path.parent, result)
        results.append(result)
        log(progress.line(result, time.perf_counter() - t0))
    return results


def collect(out: Path) -> list[dict]:
    """Every finished run under ``out/runs``."""
    results = []
    for path in sorted((out / "runs").glob("*/result.json")):
        r = load_result(path)
        if r is not None:
            results.append(r)
    return results


def resolve_dataset(scenario: Scenario, config: ExperimentConfig, data_dir, log=print) -> ExperimentConfig:
    """Swap in the scenario's fallback dataset when its own is absent, and say so."""
    from .data import available

    if scenario.fallback and not available(config.dataset, data_dir):
        log(f"note: {config.dataset} not found; {scenario.name} runs on {scenario.fallback} instead "
            f"(see README: running CIFAR with your own data)")
        return replace(config, dataset=scenario.fallback, model="mlp", updates=6000, eval_every=200,
                       eval_samples=0).validate()
    return config


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
