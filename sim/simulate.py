"""The SimPy model: workers pull, compute, push; the server applies by its policy.

One worker's cycle, as a plain SimPy generator (``worker_process``):

    pull (served at the server at version v)
    -> parameters travel down (pull network delay)
    -> compute one gradient (compute time / speed)
    -> gradient travels up (push network delay)
    -> PUSH at the server; the policy applies it or holds it
    -> the next pull is served when the policy lets it

Every random draw comes from a generator spawned for one worker and one stream
(compute, pull, push, failures) from ``numpy.random.SeedSequence(seed)``, so the same
spec, policy and seed give the same trace, bit for bit, in any process.
"""

from __future__ import annotations

import numpy as np
import simpy

from .checks import check
from .cluster import ClusterSpec, SpecError, _check_int
from .policies import Barrier, Policy, make_policy
from .trace import APPLY, PULL, PUSH, Trace

_BLOCK = 512  # draws per refill of a worker's random streams


class Server:
    """The parameter server's bookkeeping: version, pending slots and the log."""

    def __init__(self, env: simpy.Environment, num_workers: int, policy: Policy, service_time: float,
                 num_updates: int):
        self.env = env
        self.num_workers = num_workers
        self.policy = policy
        self.service_time = service_time
        self.num_updates = num_updates
        self.version = 0
        self.applied = 0
        self.free_slots: list[int] = []
        self.num_slots = 0
        self.log: list[tuple[int, int, int, float, int]] = []
        self.finished = env.event()
        policy.reset(self)
        self.gradients_per_version = policy.gradients_per_version(num_workers)
        if service_time > 0:
            self.queue = simpy.Store(env)
            env.process(self._serve())

    # ---------------------------------------------------------------- worker facing
    def pull(self, worker: int) -> None:
        self.log.append((PULL, worker, -1, self.env.now, self.version))

    def push(self, worker: int):
        """A gradient arrives; returns None or an event to wait for before pulling."""
        slot = self.free_slots.pop() if self.free_slots else self._new_slot()
        self.log.append((PUSH, worker, slot, self.env.now, self.version))
        return self.policy.receive(worker, slot)

    def _new_slot(self) -> int:
        self.num_slots += 1
        return self.num_slots - 1

    # ---------------------------------------------------------------- policy facing
    def apply(self, worker: int, slot: int):
        """Hand a held gradient to the rule: now (returns None) or after the service
        time, in FIFO order (returns an event that fires once it is applied)."""
        if self.service_time == 0:
            self._apply_now(worker, slot)
            return None
        done = self.env.event()
        self.queue.put((worker, slot, done))
        return done

    def _serve(self):
        while True:
            worker, slot, done = yield self.queue.get()
            yield self.env.timeout(self.service_time)
            self._apply_now(worker, slot)
            done.succeed()

    def _apply_now(self, worker: int, slot: int) -> None:
        if self.applied >= self.num_updates:
            return
        self.log.append((APPLY, worker, slot, self.env.now, self.version))
        self.free_slots.append(slot)
        self.applied += 1
        self.version = self.applied // self.gradients_per_version  # one version per gradients_per_version applies
        if self.applied == self.num_updates:
            self.finished.succeed()


def cycle_times(spec: ClusterSpec, worker: int, seed_seq: np.random.SeedSequence):
    """Endless durations of worker ``worker``'s cycles (pull transfer + compute / speed + push
    transfer), drawn from its own streams of ``seed_seq``: what ``simulate`` gives each worker,
    and what a live worker (``scenarios.live``) waits, so both draw the same times."""
    compute_ss, pull_ss, push_ss = seed_seq.spawn(3)
    compute_rng = np.random.default_rng(compute_ss)
    pull_rng = np.random.default_rng(pull_ss)
    push_rng = np.random.default_rng(push_ss)
    speed = spec.worker_speeds[worker]
    durations, offset = spec.compute.replay_for(worker) if spec.compute.kind == "replay" else (None, 0)
    step = 0
    while True:
        if durations is not None:
            compute = durations[(np.arange(step, step + _BLOCK) + offset) % len(durations)]
        else:
            compute = spec.compute.sample(compute_rng, _BLOCK)
        total = spec.pull.sample(pull_rng, _BLOCK) + compute / speed + spec.push.sample(push_rng, _BLOCK)
        step += _BLOCK
        yield from total.tolist()


def worker_process(env: simpy.Environment, server: Server, worker: int, cycle_times, failure_times=None,
                   downtime: float = 0.0):
    """One worker: pull, compute, push, forever; crashes lose the gradient in flight."""
    server.pull(worker)
    fail_at = next(failure_times) if failure_times is not None else float("inf")
    for cycle in cycle_times:
        if env.now + cycle >= fail_at:
            # crash: the gradient in flight is lost (a crash due while the worker was
            # waiting on the server happens as soon as the wait ends)
            yield env.timeout(max(0.0, fail_at - env.now))
            server.policy.worker_down(worker)
            yield env.timeout(downtime)
            server.policy.worker_up(worker)
            fail_at = env.now + next(failure_times)
            server.pull(worker)
            continue
        yield env.timeout(cycle)
        wait = server.push(worker)
        if wait is not None:
            yield wait
        server.pull(worker)


def _failure_gaps(mean: float, seed_seq: np.random.SeedSequence):
    rng = np.random.default_rng(seed_seq)
    while True:
        yield from rng.exponential(mean, _BLOCK).tolist()


def simulate(spec: ClusterSpec, policy="fifo", num_updates: int = 1000, seed: int = 0,
             time_budget: float = 0.0) -> Trace:
    """Simulate until ``num_updates`` gradients have been applied, or, with a ``time_budget``
    > 0, until the simulated clock passes it, whichever comes first; return the Trace.

    ``policy`` is a name (``fifo``, ``whitelist-wait``, ``whitelist-queue``, ``barrier``,
    ``buffered:K``) or a ``Policy`` instance. Same arguments, same trace, bit for bit. A
    budget only stops the clock: the trace is the prefix, up to its last gradient applied
    at or before ``time_budget``, of the trace without it.
    """
    if not isinstance(spec, ClusterSpec):
        raise SpecError(f"spec: expected a ClusterSpec, got {type(spec).__name__}")
    num_updates = _check_int("updates", num_updates, minimum=1)
    seed = _check_int("seed", seed, minimum=0)
    time_budget = check("time_budget", time_budget, SpecError, low=0)
    policy = make_policy(policy)
    if isinstance(policy, Barrier) and spec.failures.enabled:
        raise SpecError("failures: the barrier policy does not support worker failures (it would wait forever)")

    env = simpy.Environment()
    server = Server(env, spec.num_workers, policy, spec.service_time, num_updates)
    worker_seeds = np.random.SeedSequence(seed).spawn(spec.num_workers)
    for w, ss in enumerate(worker_seeds):
        timing_ss, failure_ss = ss.spawn(2)
        failures = _failure_gaps(spec.failures.mean_time_to_failure, failure_ss) if spec.failures.enabled else None
        env.process(worker_process(env, server, w, cycle_times(spec, w, timing_ss), failures,
                                   spec.failures.downtime))
    try:
        env.run(until=server.finished if not time_budget else simpy.AnyOf(env, [server.finished,
                                                                                env.timeout(time_budget)]))
    except RuntimeError as e:  # no events left: the policy deadlocked
        raise SpecError(f"policy: {policy.name} stopped making progress after "
                        f"{server.applied} of {num_updates} updates ({e})") from None

    log = server.log
    # the run ends at the last applied gradient: drop what happened after it at that instant
    last = len(log) - 1
    while last >= 0 and (log[last][0] != APPLY or (time_budget and log[last][3] > time_budget)):
        last -= 1
    log = log[: last + 1]
    columns = list(zip(*log)) if log else [(), (), (), (), ()]
    return Trace(
        kind=np.asarray(columns[0], dtype=np.int8),
        worker=np.asarray(columns[1], dtype=np.int32),
        slot=np.asarray(columns[2], dtype=np.int32),
        time=np.asarray(columns[3], dtype=np.float64),
        version=np.asarray(columns[4], dtype=np.int64),
        num_workers=spec.num_workers,
        num_slots=int(max((row[2] for row in log), default=0)) + 1,
        policy=policy.name,
        gradients_per_version=server.gradients_per_version,
        seed=seed,
        spec=spec.to_dict(),
    )
