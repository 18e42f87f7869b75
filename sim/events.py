"""The trace contract: the event kinds, reading a trace's arrays, and the one walk over its events.

A trace is the server's log, one row per event, in server order:

- ``PULL``  worker ``w`` reads the parameters (server version ``version``).
- ``PUSH``  worker ``w``'s gradient, computed on what it last pulled, waits in ``slot``.
- ``APPLY`` the gradient in ``slot`` is handed to the server rule (``version``: the
  server version just before).

``sim`` writes traces with these kinds and the replay compiles them
(``algorithms.schedule``), so this is their one definition, and ``walk`` is the one
pass that works out what each event means: which gradient an apply applies, the
minibatch step of that gradient, the version it was computed on.

Pure Python and numpy, like the rest of ``sim``: ``algorithms`` imports this module
(and ``sim.checks``) and nothing else of ``sim``, and ``sim`` never imports JAX.
"""

from __future__ import annotations

from functools import cached_property
from typing import Mapping, NamedTuple, Optional

import numpy as np

PULL, PUSH, APPLY = 0, 1, 2


class ReplayError(ValueError):
    """The trace and the rule or arguments do not fit together."""


class EventLog:
    """A trace's events as plain Python lists (what the compilers loop over), its sizes,
    and, computed once, its ``walk``."""

    def __init__(self, trace):
        if isinstance(trace, Mapping):
            arrays = dict(trace)
        elif hasattr(trace, "arrays"):
            arrays = trace.arrays()
        else:
            raise ReplayError(f"trace: expected a sim.Trace or a mapping of arrays, got {type(trace).__name__}")
        for key in ("kind", "worker", "slot", "time", "num_workers", "num_slots"):
            if key not in arrays:
                raise ReplayError(f"trace: missing {key!r}")
        self.kind: list[int] = np.asarray(arrays["kind"]).tolist()
        self.worker: list[int] = np.asarray(arrays["worker"]).tolist()
        self.slot: list[int] = np.asarray(arrays["slot"]).tolist()
        self.time: list[float] = np.asarray(arrays["time"], dtype=np.float64).tolist()
        self.num_workers = int(arrays["num_workers"])
        self.num_slots = max(int(arrays["num_slots"]), 1)
        self.gradients_per_version = int(arrays.get("gradients_per_version", 1))
        self.recorded: Optional[list[int]] = np.asarray(arrays["version"]).tolist() if "version" in arrays else None

    @cached_property
    def version_clock(self) -> list[int]:
        """The server version at each event, as the trace recorded it, or else counted
        (one version per ``gradients_per_version`` applies)."""
        if self.recorded is not None:
            return self.recorded
        is_apply = np.asarray(self.kind, dtype=np.int64) == APPLY
        applies_before = np.cumsum(is_apply) - is_apply
        return (applies_before // self.gradients_per_version).tolist()

    @cached_property
    def walk(self) -> "Walk":
        return walk(self)

    @cached_property
    def ring_size(self) -> int:
        """Rows a ring of recent parameter versions needs: one more than the largest number
        of applies between a worker's pull and the apply of the gradient it computed from it."""
        is_apply = np.asarray(self.kind, dtype=np.int64) == APPLY
        read_applies = np.asarray(self.walk.read_applies, dtype=np.int64)[is_apply]
        return max(1, int(np.max(np.arange(len(read_applies)) - read_applies, initial=0)) + 1)


class Walk(NamedTuple):
    """What each event means, one list entry per event (see ``walk``). ``version`` is the
    server version at every event; the other fields describe the gradient a PUSH or an
    APPLY is about (at a PULL they hold placeholders: the worker, -1, 0, 0, False)."""

    version: list[int]  # the server version at the event
    origin: list[int]  # the gradient's worker
    step: list[int]  # the gradient's index among its worker's gradients: its minibatch
    read: list[int]  # the version the gradient was computed on
    read_applies: list[int]  # applies made when that version was read (its row in a ring of versions)
    eager: list[bool]  # the worker pulls again before the gradient is applied


def walk(log: EventLog) -> Walk:
    """The one pass over a trace's events, tracking each worker's read version and step
    and each slot's gradient. An APPLY gets the values of the PUSH that filled its slot;
    a PUSH is marked ``eager`` (and so its APPLY) when its worker pulls before the
    gradient is applied: the worker's snapshot then no longer holds what it was
    computed on."""
    kind, worker, slot = log.kind, log.worker, log.slot
    events, num_workers = len(kind), log.num_workers
    version = log.version_clock
    origin, step, read = list(worker), [-1] * events, [0] * events
    read_applies, eager = [0] * events, [False] * events
    read_now, applies_now, steps = [0] * num_workers, [0] * num_workers, [0] * num_workers
    unapplied: list[list[int]] = [[] for _ in range(num_workers)]  # each worker's pushes not yet applied
    push_of_slot = [-1] * log.num_slots
    applies = 0
    for i, (k, w, s) in enumerate(zip(kind, worker, slot)):
        if k == PULL:
            read_now[w] = version[i]
            applies_now[w] = applies
            if unapplied[w]:
                for j in unapplied[w]:
                    eager[j] = True
        elif k == PUSH:
            step[i] = steps[w]
            steps[w] += 1
            read[i] = read_now[w]
            read_applies[i] = applies_now[w]
            unapplied[w].append(i)
            push_of_slot[s] = i
        else:  # APPLY
            j = push_of_slot[s]
            w = origin[i] = worker[j]
            unapplied[w].remove(j)
            step[i] = step[j]
            read[i] = read[j]
            read_applies[i] = read_applies[j]
            eager[i] = eager[j]
            applies += 1
    return Walk(version, origin, step, read, read_applies, eager)
