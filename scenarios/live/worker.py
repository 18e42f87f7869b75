"""A live worker: compute the real gradient of each pulled version, wait out its emulated compute time, push.

One ``Worker`` per worker process (a spawned local process, or a Ray actor). It builds
the run's workload itself (the same model, loss, minibatch function and data as
``stalesim run``: ``scenarios.workloads.workload``) and turns every pull into a push:

    params (version v, pulled)  ->  grad(loss_fn)(params, batch_fn(data, seed, w, step))
    -> wait until the emulated compute time has passed since the pull arrived -> push

``step`` counts the worker's pushes, as the replay counts them (``sim.events.walk``), so
gradient ``step`` uses the same minibatch in the live run and in its replay. The emulated
time of each cycle is the simulator's own draw for this worker and seed (configured
compute time over the worker's speed, plus configured network delays: ``cycle_times``),
times the time scale; when the real computation takes longer nothing is waited and
the overrun is recorded.
"""

from __future__ import annotations

import os
import signal
import time
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from sim.simulate import cycle_times
from sim import ClusterSpec

from scenarios.experiments.workers import COMPILATION_CACHE_ENV, use_compilation_cache
from scenarios.workloads.workload import workload

READY, PUSH, FAILED = "ready", "push", "failed"


class Push(NamedTuple):
    """What a worker sends back for one pull: its gradient and how long each part took
    (wall seconds; ``sent_at`` and ``pulled_at`` are ``time.time()`` stamps)."""

    step: int
    read_version: int
    grad: object  # pytree of numpy arrays
    pulled_at: float  # when the parameters arrived
    real: float  # the real gradient computation
    emulated: float  # the emulated cycle it was held to
    sent_at: float  # when the push left the worker


class Setup(NamedTuple):
    """Everything a worker needs, picklable (sent to a spawned process or a Ray actor)."""

    worker: int
    config: object  # the run's ExperimentConfig
    data_dir: Optional[str]
    seed: int
    spec: ClusterSpec  # the configured cluster: the emulated times are drawn from it
    time_scale: float  # wall seconds per simulated second
    cache_dir: Optional[str] = None  # JAX's compilation cache, where the server compiled the gradient already
    hang_after: Optional[int] = None  # testing: stop answering after this many pushes


class Worker:
    """The worker's state: its workload's jitted gradient, its step and its emulated cycle times."""

    def __init__(self, setup: Setup):
        self.setup = setup
        self.step = 0
        if setup.cache_dir:
            os.environ[COMPILATION_CACHE_ENV] = setup.cache_dir
        use_compilation_cache()
        wl = workload(setup.config, setup.data_dir)
        self.data = wl.data
        self.grad = gradient_function(wl)
        timing = np.random.SeedSequence(setup.seed).spawn(setup.spec.num_workers)[setup.worker].spawn(2)[0]
        self.cycles = cycle_times(setup.spec, setup.worker, timing)
        compile_gradient(self.grad, wl, setup.seed, setup.worker)

    def _gradient(self, params, step: int):
        return self.grad(params, jnp.int32(self.setup.seed), jnp.int32(self.setup.worker), jnp.int32(step), self.data)

    def compute(self, version: int, params, pulled_at: float) -> Push:
        """One cycle from the parameters of ``version`` that arrived at ``pulled_at``."""
        if self.setup.hang_after is not None and self.step >= self.setup.hang_after:
            time.sleep(3600)
        emulated = next(self.cycles) * self.setup.time_scale
        started = time.perf_counter()
        grad = jax.device_get(self._gradient(params, self.step))
        real = time.perf_counter() - started
        left = pulled_at + emulated - time.time()
        if left > 0:
            time.sleep(left)
        push = Push(self.step, version, grad, pulled_at, real, emulated, time.time())
        self.step += 1
        return push


_GRADIENTS: dict = {}


def gradient_function(wl):
    """The jitted ``grad(loss_fn)(params, batch_fn(data, seed, worker, step))`` of a workload, one
    per workload in a process (workers sharing a process compile it once)."""
    loss_fn, batch_fn = wl.loss_fn, wl.batch_fn
    if (loss_fn, batch_fn) not in _GRADIENTS:
        _GRADIENTS.clear()
        _GRADIENTS[loss_fn, batch_fn] = jax.jit(
            lambda params, seed, worker, step, data: jax.grad(loss_fn)(params, batch_fn(data, seed, worker, step)))
    return _GRADIENTS[loss_fn, batch_fn]


def compile_gradient(grad, wl, seed: int = 0, worker: int = 0) -> None:
    """Compile ``grad`` before the clock starts, on zeros of the parameters' shapes (the result is discarded)."""
    shapes = jax.eval_shape(wl.model.init, jax.random.PRNGKey(0))
    zeros = jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), shapes)
    jax.block_until_ready(grad(zeros, jnp.int32(seed), jnp.int32(worker), jnp.int32(0), wl.data))


def process_main(conn, setup: Setup) -> None:
    """A local worker process: build, report ready, then answer every pull with a push until
    the server closes the pipe. Ctrl-C is the server's to handle: the worker ignores it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        worker = Worker(setup)
        conn.send((READY, os.getpid()))
        while True:
            kind, version, params, _ = conn.recv()
            pulled_at = time.time()
            conn.send((PUSH, worker.compute(version, params, pulled_at)))
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return  # the server is done with this worker
    except Exception as e:  # noqa: BLE001 - reported to the server as one line
        try:
            conn.send((FAILED, f"{type(e).__name__}: {e}"))
        except OSError:
            pass
