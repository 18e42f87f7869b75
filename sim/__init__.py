"""sim: the timing half of stalesim (SimPy + numpy, no JAX), and the trace contract algorithms shares.

    >>> from sim import ClusterSpec, simulate
    >>> trace = simulate(ClusterSpec(num_workers=3), policy="fifo", num_updates=9, seed=0)
    >>> trace.staleness.tolist()
    [0, 1, 2, 2, 2, 2, 2, 2, 2]
"""

from .cluster import (COMPUTE_KINDS, ClusterSpec, ComputeModel, FailureModel, NetworkModel, SpecError,
                      as_durations, network, straggler_speeds)
from .policies import POLICY_NAMES, Barrier, Buffered, Fifo, Policy, Whitelist, make_policy
from .simulate import simulate
from .summary import format_summary, idle_time, staleness_histogram, summarize
from .trace import APPLY, PULL, PUSH, Trace, TraceError

__all__ = [
    "APPLY", "COMPUTE_KINDS", "POLICY_NAMES", "PULL", "PUSH", "Barrier", "Buffered",
    "ClusterSpec", "ComputeModel", "FailureModel", "Fifo", "NetworkModel", "Policy",
    "SpecError", "Trace", "TraceError", "Whitelist", "as_durations", "format_summary", "idle_time",
    "make_policy", "network", "simulate", "staleness_histogram", "straggler_speeds", "summarize",
]  # the simulator's internals (Server, worker_process) live in sim.simulate
