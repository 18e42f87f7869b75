"""The live parameter server: apply real gradients in arrival order under the run's policy, and log every event.

The server is the simulator's ``sim.simulate.Server`` made real. It answers to the same
policy objects (``sim.policies``: fifo, whitelist-wait/-queue, barrier, buffered:K),
which call ``apply(worker, slot)`` and ``env.event()``; here ``apply`` runs the run's JAX
rule on the gradient at once, and an event's callbacks run once the message that
triggered it has been handled (as SimPy runs them after the current step), so the order
of events is the simulator's: PUSH, the applies it allows, the pusher's PULL, then the
PULLs its applies released.

Every event is logged with its wall-clock time in simulated seconds (wall seconds since
the start over the time scale), so the log is a ``sim.Trace`` of the same format as a
simulated one, and ``algorithms.replay`` of it with the same rule gives the same
parameters. Evaluation does not disturb the timing: the parameters at every
``eval_every`` updates are kept, and evaluated after the run.
"""

from __future__ import annotations

import time
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from algorithms import History
from algorithms.history import Recorder
from sim import APPLY, PULL, PUSH, Policy, Trace

from scenarios.errors import ConfigError
from scenarios.live.worker import FAILED, PUSH as PUSHED


class Gradient(NamedTuple):
    """One pushed gradient and what it cost, as the server measured it (wall seconds;
    ``pulled``, ``applied`` in simulated seconds since the start, ``applied`` NaN if never)."""

    worker: int
    step: int
    read_version: int
    pulled: float
    compute: float  # from the parameters' arrival to the push leaving the worker
    real: float  # the real gradient computation inside it
    overrun: float  # how much the real computation exceeded the emulated time (0 if not)
    pull_latency: float  # from the server handing out the parameters to their arrival
    push_latency: float  # from the push leaving the worker to the server reading it
    applied: float
    service: float  # the server's time to apply it (NaN if never applied)


class Crash(NamedTuple):
    worker: int
    time: float  # simulated seconds since the start
    applied: int  # updates applied when the server saw it
    reason: str


class Outcome(NamedTuple):
    """What a live run produced."""

    trace: Trace
    history: History
    params: object  # the final parameters
    gradients: list[Gradient]
    crashes: list[Crash]
    wall_time: float  # from the first pull to the last apply


class _Event:
    """What a policy waits on (``env.event()``): ``succeed()`` queues its callbacks, which
    the server runs when the message being handled is done."""

    def __init__(self, server: "LiveServer"):
        self.server = server
        self.callbacks: list[Callable] = []

    def succeed(self, value=None):
        self.server.triggered.append(self)
        return self


class _Env:
    def __init__(self, server: "LiveServer"):
        self.server = server

    def event(self) -> _Event:
        return _Event(self.server)


class LiveServer:
    """Serve ``num_workers`` workers of ``backend`` until ``num_updates`` gradients are applied."""

    def __init__(self, backend, policy: Policy, rule, params0, *, num_workers: int, num_updates: int,
                 eval_every: int, eval_fn: Callable, time_scale: float, service_time: float = 0.0,
                 worker_timeout: float = 60.0, seed: int = 0, spec: Optional[dict] = None,
                 kill: Optional[tuple[int, int]] = None):
        self.backend, self.policy, self.rule = backend, policy, rule
        self.num_workers, self.num_updates, self.eval_every = num_workers, num_updates, eval_every
        self.eval_fn, self.time_scale, self.seed, self.spec = eval_fn, time_scale, seed, spec or {}
        self.service_wall = service_time * time_scale
        self.worker_timeout = worker_timeout
        self.kill = kill  # testing: (worker, after this many updates) is killed
        self.env = _Env(self)
        self.update = jax.jit(lambda state, params, grad, worker, staleness, backup: rule.update(
            state, params, grad, worker=worker, staleness=staleness, backup=backup))
        self.params = self.params0 = params0
        self.state = rule.init(params0, num_workers)
        # compile the update before the clock starts (the result is discarded)
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params0)
        jax.block_until_ready(self.update(self.state, params0, zeros, jnp.int32(0), jnp.int32(0), params0))
        self.version = self.applied = 0
        self.free_slots: list[int] = []
        self.num_slots = 0
        self.slots: dict[int, tuple] = {}  # slot -> (grad, read version, read params, gradient row)
        self.log: list[tuple] = []
        self.triggered: list[_Event] = []
        self.sent: dict[int, tuple] = {}  # worker -> (version, params, handed out at) of its last pull
        self.busy: set[int] = set()  # workers computing (pulled, not pushed yet)
        self.crashed: set[int] = set()
        self.crashes: list[Crash] = []
        self.gradients: list[dict] = []
        self.snapshots: list[tuple] = []  # (update, time, params) to evaluate
        self._host: tuple = (-1, None)  # (applied, the parameters as numpy) handed out last
        policy.reset(self)
        self.gradients_per_version = policy.gradients_per_version(num_workers)

    # ------------------------------------------------------------------ the clock
    def now(self) -> float:
        """Simulated seconds since the start (wall seconds over the time scale)."""
        return (time.time() - self.t0) / self.time_scale

    def _log(self, kind: int, worker: int, slot: int) -> float:
        t = max(self.now(), self.log[-1][3] if self.log else 0.0)
        self.log.append((kind, worker, slot, t, self.version))
        return t

    # ------------------------------------------------------------------ the loop
    def run(self) -> Outcome:
        self.t0 = time.time()
        for w in range(self.num_workers):
            self._serve_pull(w)
        while self.applied < self.num_updates:
            self._run_triggered()
            if self.applied >= self.num_updates:
                break
            if not self.busy:
                down = ", ".join(map(str, sorted(self.crashed))) or "none"
                raise ConfigError(f"live: the {self.policy.name} policy cannot go on after {self.applied} of "
                                  f"{self.num_updates} updates: no worker is computing (crashed: {down})")
            for kind, w, payload in self.backend.receive(timeout=0.5):
                if kind == PUSHED:
                    self._push(w, payload)
                elif kind == FAILED:
                    raise ConfigError(f"live: worker {w} failed: {payload}")
                else:
                    self._crash(w, payload)
                self._run_triggered()
            self._check_hung()
            if self.kill and self.applied >= self.kill[1] and self.kill[0] not in self.crashed:
                self.backend.kill(self.kill[0])
                self.kill = None
        wall = time.time() - self.t0
        return self._outcome(wall)

    def _run_triggered(self) -> None:
        while self.triggered:
            event = self.triggered.pop(0)
            for callback in event.callbacks:
                callback(event)

    def _check_hung(self) -> None:
        now = time.time()
        for w in sorted(self.busy):
            waited = now - self.sent[w][2]
            if waited > self.worker_timeout:
                raise ConfigError(f"--worker-timeout: worker {w} sent nothing for {waited:.0f} s after its pull "
                                  f"(limit {self.worker_timeout:g} s); it hangs, or its steps are that slow")

    def _serve_pull(self, worker: int) -> None:
        if worker in self.crashed or self.applied >= self.num_updates:
            return
        self._log(PULL, worker, -1)
        if self._host[0] != self.applied:
            self._host = (self.applied, jax.device_get(self.params))
        self.sent[worker] = (self.version, self.params, time.time())
        self.busy.add(worker)
        self.backend.pull(worker, self.version, self._host[1])

    def _push(self, worker: int, push) -> None:
        received = time.time()
        self.busy.discard(worker)
        read_version, read_params, handed_out = self.sent[worker]
        if push.read_version != read_version:
            raise ConfigError(f"live: worker {worker} pushed a gradient of version {push.read_version}, but was "
                              f"last handed version {read_version}")
        slot = self.free_slots.pop() if self.free_slots else self._new_slot()
        self._log(PUSH, worker, slot)
        row = {"worker": worker, "step": push.step, "read_version": read_version,
               "pulled": (push.pulled_at - self.t0) / self.time_scale, "compute": push.sent_at - push.pulled_at,
               "real": push.real, "overrun": max(0.0, push.real - push.emulated),
               "pull_latency": push.pulled_at - handed_out, "push_latency": received - push.sent_at,
               "applied": float("nan"), "service": float("nan")}
        self.gradients.append(row)
        self.slots[slot] = (push.grad, read_version, read_params, row)
        wait = self.policy.receive(worker, slot)
        if wait is None:
            self._serve_pull(worker)
        else:
            wait.callbacks.append(lambda _event, w=worker: self._serve_pull(w))

    def _new_slot(self) -> int:
        self.num_slots += 1
        return self.num_slots - 1

    def _crash(self, worker: int, reason: str) -> None:
        if worker in self.crashed:
            return
        self.crashed.add(worker)
        self.busy.discard(worker)
        self.crashes.append(Crash(worker, self.now(), self.applied, reason))
        self.policy.worker_down(worker)

    # ------------------------------------------------------------------ policy facing
    def apply(self, worker: int, slot: int):
        """Apply the gradient in ``slot`` with the rule now (the policies' call); returns None."""
        if self.applied >= self.num_updates:
            return None
        grad, read_version, read_params, row = self.slots.pop(slot)
        t = self._log(APPLY, worker, slot)
        started = time.perf_counter()
        self.params, self.state = self.update(self.state, self.params, grad, jnp.int32(worker),
                                              jnp.int32(self.version - read_version), read_params)
        jax.block_until_ready(self.params)
        service = time.perf_counter() - started
        if self.service_wall > service:  # the configured service time, emulated
            time.sleep(self.service_wall - service)
            service = time.perf_counter() - started
        row["applied"], row["service"] = t, service
        self.free_slots.append(slot)
        self.applied += 1
        self.version = self.applied // self.gradients_per_version  # one version per gradients_per_version applies
        if self.applied % self.eval_every == 0 or self.applied == self.num_updates:
            self.snapshots.append((self.applied, t, self.params))
        return None

    # ------------------------------------------------------------------ the result
    def trace(self) -> Trace:
        """The log as a ``sim.Trace``, ending at the last applied gradient (as ``sim.simulate``'s)."""
        log = self.log
        last = len(log) - 1
        while last >= 0 and log[last][0] != APPLY:
            last -= 1
        log = log[: last + 1]
        columns = list(zip(*log)) if log else [(), (), (), (), ()]
        return Trace(kind=np.asarray(columns[0], dtype=np.int8), worker=np.asarray(columns[1], dtype=np.int32),
                     slot=np.asarray(columns[2], dtype=np.int32), time=np.asarray(columns[3], dtype=np.float64),
                     version=np.asarray(columns[4], dtype=np.int64), num_workers=self.num_workers,
                     num_slots=int(max((row[2] for row in log), default=0)) + 1, policy=self.policy.name,
                     gradients_per_version=self.gradients_per_version, seed=self.seed, spec=self.spec)

    def _outcome(self, wall: float) -> Outcome:
        trace = self.trace()
        recorder = Recorder(self.eval_fn, 1)
        recorder.evaluate(lambda r: self.params0, 0, 0.0)
        for update, t, params in self.snapshots:
            recorder.evaluate(lambda r, p=params: p, update, t)
        history = recorder.histories(trace.staleness, trace.applied_worker, wall, self.applied, [self.params])[0]
        gradients = [Gradient(**row) for row in self.gradients]
        return Outcome(trace, history, self.params, gradients, list(self.crashes), wall)
