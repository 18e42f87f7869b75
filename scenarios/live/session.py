"""One live run from start to files: check the inputs, start the workers, serve, write the run's folder whole or not at all.

A live run's folder (``OUT/runs/LABEL-KEY``), written to a temporary folder and renamed
into place once complete, so an interrupted run leaves nothing behind:

- ``result.json`` (``"mode": "live"``, the ``live`` section: time scale, backend,
  crashes, measured latencies, service and overruns) and ``history.csv``, as ``run``
  writes them (``scenarios.experiments.results.write_result``);
- ``trace.npz``: the server's log, a ``sim.Trace`` (times in simulated seconds);
- ``compute_times.csv``: each worker's measured compute times in simulated seconds, one
  column per worker, in the format of the ``compute_trace`` field (docs/timing.md);
- ``timings.csv``: one row per pushed gradient: its compute time, the real gradient
  time and overrun, the pull and push latencies and the server's service time;
- ``params.npz``: the final parameters (what the replay is compared with).
"""

from __future__ import annotations

import hashlib
import io
import os
import resource
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import jax
import numpy as np

from sim import make_policy, summarize

from scenarios.experiments.catalogue import RunSpec
from scenarios.errors import ConfigError
from scenarios.experiments.config import run_key
from scenarios.experiments.memory import DATASET_FACTOR, available_bytes, estimate, parameter_bytes
from scenarios.experiments.results import RunResult, load_result, write_result, write_text_atomic
from scenarios.experiments.cluster import cluster_spec, policy_for
from scenarios.experiments.execute import rule_for
from scenarios.experiments.outcomes import metrics_of
from scenarios.experiments.workers import command_cache, cores
from scenarios.experiments.provenance import machine, versions
from scenarios.workloads.workload import workload
from scenarios.live.backends import make_backend
from scenarios.live.server import LiveServer, Outcome
from scenarios.live.worker import Setup

# Wall seconds per simulated second. The MLP's gradient (batch 64) takes about 1.5 ms on one
# core of the 2-core reference machine (3 ms with 10 worker processes sharing it); at 0.2 the
# fastest worker's mean emulated step is 200 ms, so the real computation is about 1% of it, and
# exceeds an exponential draw (an overrun) for about 1% of that worker's gradients.
DEFAULT_TIME_SCALE = 0.2
# a worker process: the Python interpreter, JAX and the compiled gradient (WORKER_PROCESS_BYTES),
# and its data: the arrays as read, their copy on the device and the test set (WORKER_DATA_COPIES
# times the raw size); measured 335 MB resident for fmnist (55 MB of data), counted 370 MB
WORKER_PROCESS_BYTES = 150 << 20
WORKER_DATA_COPIES = 4
FILES_PER_WORKER = 4  # a pipe's ends and the process's sentinel, with room


@dataclass
class LiveResult(RunResult):
    """A run's result measured on real processes (``mode`` says so; ``live``: how it ran)."""

    mode: str = "live"
    live: dict = field(default_factory=dict)


def check_live(cfg, time_scale: float, backend: str) -> None:
    """One line for inputs a live run cannot take, before any process starts."""
    if not isinstance(time_scale, (int, float)) or not time_scale > 0 or not np.isfinite(time_scale):
        raise ConfigError(f"--time-scale: must be a number > 0 (wall seconds per simulated second), got {time_scale}")
    if cfg.mttf > 0:
        raise ConfigError("--set mttf: a live run does not emulate crashes (a killed worker process is recorded as "
                          "one); leave mttf at 0")
    if backend == "local":
        each = WORKER_PROCESS_BYTES + WORKER_DATA_COPIES * estimate(cfg).dataset // DATASET_FACTOR
        need = cfg.workers * each
        available = available_bytes()
        if available is not None and need > available:
            most = available // each
            raise ConfigError(f"--workers: {cfg.workers} worker processes need about {need / 2 ** 30:.1f} GiB, this "
                              f"machine has {available / 2 ** 30:.1f} GiB available (at most {most} workers)")
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if 0 < limit < cfg.workers * FILES_PER_WORKER + 64:
            raise ConfigError(f"--workers: {cfg.workers} worker processes need about "
                              f"{cfg.workers * FILES_PER_WORKER + 64} open files, this process may open {limit} "
                              f"(ulimit -n); at most {(limit - 64) // FILES_PER_WORKER} workers")


def live_key(run: RunSpec, time_scale: float) -> str:
    """What identifies a live run's settings (its numbers differ from run to run)."""
    return run_key(run.config, run.algorithm, run.base, run.seed, {"live": {"time_scale": float(time_scale)}})


def run_dir(out: Path, run: RunSpec, time_scale: float) -> Path:
    return Path(out) / "runs" / f"{run.label}-{live_key(run, time_scale)[:10]}"


def finished(out: Path, run: RunSpec, time_scale: float) -> Optional[RunResult]:
    """The live run's result if its folder is complete, else None."""
    folder = run_dir(out, run, time_scale)
    result = load_result(folder / "result.json")
    return result if result is not None and result.key == live_key(run, time_scale) else None


def worker_timeout_for(spec, time_scale: float) -> float:
    """The default limit on one step's silence: a minute, plus 50 of the slowest worker's mean steps."""
    slowest = spec.compute.mean / float(np.min(spec.worker_speeds)) + spec.pull.fixed_delay + spec.push.fixed_delay
    return 60.0 + 50 * slowest * time_scale


def run_live(run: RunSpec, out: Path, *, time_scale: float = DEFAULT_TIME_SCALE, backend: str = "local",
             address: Optional[str] = None, data_dir=None, worker_timeout: Optional[float] = None,
             kill: Optional[tuple[int, int]] = None, hang: Optional[tuple[int, int]] = None,
             invocation: Optional[dict] = None) -> LiveResult:
    """Carry out ``run`` live and write its folder under ``out``; ``kill`` and ``hang`` are for
    tests: (worker, after this many updates) is killed; (worker, after this many steps) hangs."""
    cfg = run.config
    check_live(cfg, time_scale, backend)
    wl = workload(cfg, data_dir)
    spec = cluster_spec(cfg, wl.num_classes, run.seed, float(parameter_bytes(cfg.model, cfg.dataset)))
    cache = command_cache()  # the first worker compiles the gradient into it, the others load it
    setups = [Setup(w, cfg, None if data_dir is None else str(data_dir), run.seed, spec, float(time_scale), cache,
                    hang[1] if hang and hang[0] == w else None) for w in range(cfg.workers)]
    params0 = wl.model.init(jax.random.PRNGKey(run.seed))  # before the workers take the cores: eager, many small ops
    workers = make_backend(backend, setups, address)
    try:
        workers.launch()  # the workers start while the server compiles its side
        server = LiveServer(workers, make_policy(policy_for(run.algorithm, cfg)), rule_for(run.algorithm, run.base, cfg),
                            params0, num_workers=cfg.workers, num_updates=cfg.updates, eval_every=cfg.eval_every,
                            eval_fn=wl.problem(params0, run.split).eval_fn, time_scale=time_scale,
                            service_time=spec.service_time, seed=run.seed, spec=spec.to_dict(), kill=kill,
                            worker_timeout=worker_timeout if worker_timeout is not None else
                            worker_timeout_for(spec, time_scale))
        workers.wait_ready()
        outcome = server.run()
    finally:
        workers.close()
    result = _result(run, outcome, time_scale, workers.name, wl.num_classes, invocation)
    write_run(run_dir(out, run, time_scale), result, outcome, time_scale)
    return result


def params_sha256(params) -> str:
    """The sha256 of the parameters' bytes, leaf by leaf in pytree order."""
    digest = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(jax.device_get(params)):
        digest.update(np.ascontiguousarray(leaf).tobytes())
    return digest.hexdigest()


def _stats(values, scale: float = 1.0) -> dict:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float) * scale
    if not len(v):
        return {"mean": None, "median": None, "p95": None, "max": None}
    return {"mean": float(v.mean()), "median": float(np.median(v)), "p95": float(np.percentile(v, 95)),
            "max": float(v.max())}


def _result(run: RunSpec, outcome: Outcome, time_scale: float, backend: str, num_classes: int,
            invocation: Optional[dict]) -> LiveResult:
    cfg, trace, history, g = run.config, outcome.trace, outcome.history, outcome.gradients
    summary = summarize(trace)
    summary.pop("idle_time_per_worker", None)
    live = {
        "time_scale": float(time_scale), "backend": backend, "wall_time": outcome.wall_time, "cores": cores(),
        "params_sha256": params_sha256(outcome.params),
        "crashes": [c._asdict() for c in outcome.crashes],
        "gradients_pushed": len(g),
        "overrun_fraction": float(np.mean([r.overrun > 0 for r in g])) if g else 0.0,
        "real_gradient_ms": _stats([r.real for r in g], 1e3),
        "overrun_ms": _stats([r.overrun for r in g if r.overrun > 0], 1e3),
        "pull_latency_ms": _stats([r.pull_latency for r in g], 1e3),
        "push_latency_ms": _stats([r.push_latency for r in g], 1e3),
        "service_ms": _stats([r.service for r in g], 1e3),
    }
    return LiveResult(
        run=run.label, key=live_key(run, time_scale), algorithm=run.algorithm, base=run.base, seed=run.seed,
        axis=run.axis, axis_value=getattr(cfg, run.axis) if run.axis else None, policy=trace.policy,
        config=cfg.to_dict(), split=run.split, tuned=dict(run.tuned),
        hyperparameters={o.field: o.record(cfg) for o in run.origins},
        **metrics_of(history, cfg, num_classes),
        updates_replayed=trace.num_updates, wall_time=outcome.wall_time,
        updates_per_second=trace.num_updates / outcome.wall_time if outcome.wall_time > 0 else None,
        history=history.to_records(), trace=summary, versions=versions(),
        provenance={"machine": machine(), **({"invocation": invocation} if invocation else {})}, live=live)


def compute_times_csv(gradients, num_workers: int, time_scale: float) -> str:
    """Each worker's measured compute times (simulated seconds: from the parameters' arrival to the
    push, over the time scale), one column per worker, in the ``compute_trace`` format. Columns are
    as long as the longest; a shorter one repeats its own times from its first, as the replay
    model cycles them, so the file replays exactly what was measured."""
    columns = [[r.compute / time_scale for r in gradients if r.worker == w] for w in range(num_workers)]
    every = [t for c in columns for t in c]
    fallback = float(np.median(every)) if every else 1.0
    rows = max(1, max(len(c) for c in columns))
    lines = ["# measured by stalesim live: each worker's compute time of each gradient, in simulated seconds",
             "# (wall seconds from the parameters' arrival to the push leaving the worker, over the time scale)",
             "# counts: " + ", ".join(f"worker {w} {len(c)}" for w, c in enumerate(columns)),
             "# a column shorter than the longest repeats its own times from its first (as compute=replay cycles "
             "them); a worker that pushed nothing has the median of all",
             ",".join(f"worker{w}" for w in range(num_workers))]
    for k in range(rows):
        lines.append(",".join(f"{c[k % len(c)] if c else fallback:.7g}" for c in columns))
    return "\n".join(lines) + "\n"


def timings_csv(gradients) -> str:
    """One row per pushed gradient: what it cost (see ``server.Gradient``; durations in wall seconds, 7
    significant digits: microseconds)."""
    names = ("worker", "step", "read_version", "pulled", "compute", "real", "overrun", "pull_latency",
             "push_latency", "applied", "service")
    rows = [",".join(names)]
    for r in gradients:
        rows.append(",".join(str(getattr(r, n)) if n in ("worker", "step", "read_version") else f"{getattr(r, n):.7g}"
                             for n in names))
    return "\n".join(rows) + "\n"


def write_run(folder: Path, result: LiveResult, outcome: Outcome, time_scale: float) -> None:
    """Write the run's files into a temporary folder beside ``folder``, then rename it into place."""
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        outcome.trace.save(tmp / "trace.npz")
        write_text_atomic(tmp / "compute_times.csv",
                          compute_times_csv(outcome.gradients, outcome.trace.num_workers, time_scale))
        write_text_atomic(tmp / "timings.csv", timings_csv(outcome.gradients))
        buf = io.BytesIO()
        leaves = jax.tree_util.tree_leaves(jax.device_get(outcome.params))
        np.savez_compressed(buf, **{f"leaf{i}": leaf for i, leaf in enumerate(leaves)})
        (tmp / "params.npz").write_bytes(buf.getvalue())
        write_result(tmp, result)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except OSError as e:
        raise ConfigError(f"--out {folder.parent.parent}: cannot write there ({e.strerror or e})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
