"""Server scheduling policies: when a pushed gradient is applied, and when its worker may pull again.

A policy is one small class. The server calls ``receive(worker, slot)`` when a gradient
arrives; the policy either applies it (``self.server.apply(worker, slot)``) or holds it,
and returns ``None`` if the worker may pull at once, or a SimPy event the worker waits
for before its pull is served.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections import deque

from .checks import check
from .cluster import SpecError


class Policy(ABC):
    """Base class. Subclasses set ``names`` (what ``make_policy`` accepts) and implement
    ``receive``; one whose name carries a parameter overrides ``from_name``."""

    name = "policy"
    names: tuple = ()

    @classmethod
    def from_name(cls, name: str):
        """The policy called ``name``, or None if this class does not answer to it."""
        return cls() if name in cls.names else None

    def reset(self, server) -> None:
        """Bind to a fresh server at the start of a simulation and clear any state."""
        self.server = server

    def gradients_per_version(self, num_workers: int) -> int:
        """Applied gradients that make one server version."""
        return 1

    @abstractmethod
    def receive(self, worker: int, slot: int):
        """A gradient from ``worker`` sits in ``slot``: apply or hold it; return None or an event."""

    def worker_down(self, worker: int) -> None:
        """A worker crashed (only called when failures are enabled)."""

    def worker_up(self, worker: int) -> None:
        """A crashed worker is back."""

    def __repr__(self) -> str:
        return self.name


class Fifo(Policy):
    """Apply every gradient in arrival order (ASGD, DC-ASGD). The worker's pull is
    served once its own gradient has been applied (push-then-pull on one channel)."""

    name = "fifo"
    names = ("fifo",)

    def receive(self, worker, slot):
        return self.server.apply(worker, slot)


class Whitelist(Policy):
    """GSGM's gradient scheduling (reconstructed, see docs/gsgm.md).

    The server keeps a white list W, initially every worker. A gradient from a worker in
    W is applied and the worker leaves W. A gradient from a worker outside W waits; when
    W empties it is refilled with every (live) worker and the waiting gradients are
    applied in arrival order, each again only if its worker is in W. So per-worker
    applied counts never differ by more than one.

    ``mode="wait"``: the server delays a waiting worker's pull until its gradient is
    applied, so the worker idles. ``mode="queue"``: the worker pulls at once and keeps
    computing; its gradients queue up, at most ``max_pending`` per worker (then it
    blocks, as a full send buffer would).
    """

    names = ("whitelist-wait", "whitelist-queue")

    @classmethod
    def from_name(cls, name):
        return cls(name.rpartition("-")[2]) if name in cls.names or name == "whitelist" else None

    def __init__(self, mode: str = "wait", max_pending: int = 4):
        check("policy: whitelist mode", mode, SpecError, kind=str, choices=("wait", "queue"))
        check("policy: whitelist max_pending", max_pending, SpecError, kind=int, low=1)
        self.mode = mode
        self.max_pending = max_pending
        self.name = f"whitelist-{mode}"

    def reset(self, server):
        super().reset(server)
        self.whitelist = set(range(server.num_workers))
        self.live = set(range(server.num_workers))
        self.waiting: deque = deque()  # (worker, slot, event) in arrival order
        self.pending_count = [0] * server.num_workers
        self.unblock = {}  # worker -> event fired when one of its queued gradients is applied

    def receive(self, worker, slot):
        if worker in self.whitelist:
            self.whitelist.discard(worker)
            done = self.server.apply(worker, slot)
            self._refill_if_empty()
            return done
        event = self.server.env.event()
        self.waiting.append((worker, slot, event))
        self.pending_count[worker] += 1
        if self.mode == "wait":
            return event
        if self.pending_count[worker] >= self.max_pending:
            self.unblock[worker] = event
            return event
        return None

    def _refill_if_empty(self):
        while not self.whitelist and self.live:
            self.whitelist = set(self.live)
            still_waiting = deque()
            for worker, slot, event in self.waiting:
                if worker in self.whitelist:
                    self.whitelist.discard(worker)
                    self.pending_count[worker] -= 1
                    done = self.server.apply(worker, slot)
                    self._release(worker, event, done)
                else:
                    still_waiting.append((worker, slot, event))
            self.waiting = still_waiting
            if not self.waiting:
                break

    def _release(self, worker, event, done):
        if self.mode == "queue":
            event = self.unblock.pop(worker, None)
            if event is None:
                return
        if done is None:
            event.succeed()
        else:
            done.callbacks.append(lambda _: event.succeed())

    def worker_down(self, worker):
        self.live.discard(worker)
        self.whitelist.discard(worker)
        self._refill_if_empty()

    def worker_up(self, worker):
        self.live.add(worker)
        self._refill_if_empty()  # the list may have emptied while every worker was down


class Barrier(Policy):
    """Synchronous SGD: wait for one gradient from every worker, apply all of them as one
    version, then release every worker."""

    name = "barrier"
    names = ("barrier",)

    def reset(self, server):
        super().reset(server)
        self.held = []

    def gradients_per_version(self, num_workers):
        return num_workers

    def receive(self, worker, slot):
        event = self.server.env.event()
        self.held.append((worker, slot, event))
        if len(self.held) == self.server.num_workers:
            held, self.held = self.held, []
            done = None
            for w, s, _ in held:
                done = self.server.apply(w, s)
            for _, _, e in held:
                if done is None:
                    e.succeed()
                else:
                    done.callbacks.append(lambda _, e=e: e.succeed())
        return event


class Buffered(Policy):
    """Buffered aggregation (FedBuff): every gradient goes to the rule at once, in
    arrival order, and the worker pulls without waiting; the rule applies the mean of
    each ``buffer_size`` (K) gradients, so the server version advances every K applied
    gradients. Its name is ``buffered:K``."""

    names = ("buffered:K",)

    @classmethod
    def from_name(cls, name):
        if not name.startswith("buffered"):
            return None
        _, _, buffer_size = name.partition(":")
        try:
            return cls(int(buffer_size))
        except ValueError:
            raise SpecError(f"policy: buffered needs an integer K >= 1 as buffered:K, got {name!r}") from None

    def __init__(self, buffer_size: int | None = None, *, k: int | None = None):
        if k is not None:
            warnings.warn("Buffered(k=...) is deprecated: use Buffered(buffer_size=...)", DeprecationWarning, 2)
            buffer_size = k if buffer_size is None else buffer_size
        check("policy: buffered K", buffer_size, SpecError, kind=int, low=1)
        self.buffer_size = buffer_size
        self.name = f"buffered:{buffer_size}"

    def gradients_per_version(self, num_workers):
        return self.buffer_size

    def receive(self, worker, slot):
        self.server.apply(worker, slot)
        return None


POLICIES = (Fifo, Whitelist, Barrier, Buffered)
POLICY_NAMES = tuple(name for cls in POLICIES for name in cls.names)


def make_policy(policy) -> Policy:
    """A policy from its name (one of ``POLICY_NAMES``) or a Policy instance."""
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, str):
        for cls in POLICIES:
            made = cls.from_name(policy)
            if made is not None:
                return made
    raise SpecError(f"policy: unknown policy {policy!r}; allowed: {', '.join(POLICY_NAMES)}")
