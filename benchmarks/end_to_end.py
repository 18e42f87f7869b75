"""The child process of the ``end_to_end`` figure: one ``stalesim`` command, then where its time went, as JSON.

    python -m benchmarks.end_to_end reproduce fmnist --seeds 1 --jobs 1 --out DIR

Runs the command as the ``stalesim`` script does (``scenarios.cli.command``, nothing
replaced), then prints one JSON line: when the process started, when the command
started and ended (``time.time()``), its exit code (also this process's), and ``parts``, the seconds of each
part of the work done in this process:

- ``compile``: XLA compilation, from JAX's monitoring events
  (``scenarios.experiments.estimate.compile_seconds``);
- every duration stalesim reports to ``jax.monitoring`` as ``/stalesim/time/<part>``
  (``training`` waited for before each evaluation, ``evaluation``, ``trace simulation``,
  ``data and workload``, ``report and plots``), summed per part, in the order first seen.
  A stalesim that reports none gives ``compile`` alone (the rest is "other" in the figure).
"""

from __future__ import annotations

import time

STARTED = time.time()  # before the imports: they are part of the process's start

import json
import sys

import jax.monitoring

from scenarios.cli import main as stalesim
from scenarios.experiments.estimate import compile_seconds

TIMING_EVENTS = "/stalesim/time/"  # the prefix of stalesim's timing events; the rest names the part


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    compile_seconds()  # counting starts
    parts = {"compile": 0.0}  # filled in at the end; listed first, as the split reads

    def on_event(event: str, duration: float, **kwargs) -> None:
        if event.startswith(TIMING_EVENTS):
            part = event[len(TIMING_EVENTS):]
            parts[part] = parts.get(part, 0.0) + duration

    jax.monitoring.register_event_duration_secs_listener(on_event)
    main_at = time.time()
    code = stalesim(argv)
    parts["compile"] = compile_seconds()
    print(json.dumps({"started": STARTED, "main": main_at, "ended": time.time(), "parts": parts, "code": code}))
    return code


if __name__ == "__main__":
    sys.exit(main())
