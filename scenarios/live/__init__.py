"""Live runs: real asynchronous parameter-server training in separate processes, recorded as a trace, and the simulator validated against it.

``stalesim live EXPERIMENT`` (``session.run_live``) trains with one server (this process)
and one process per worker (``backends``: spawned local processes, or Ray actors); the
server (``server.LiveServer``) applies the run's own rule under its own policy and logs a
``sim.Trace``. ``stalesim validate DIR`` (``validate``) replays that trace, simulates the
same cluster as configured and as calibrated from the measurements, and compares.
"""

from scenarios.live.session import DEFAULT_TIME_SCALE, LiveResult, run_live

__all__ = ["DEFAULT_TIME_SCALE", "LiveResult", "run_live"]
