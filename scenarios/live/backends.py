"""Where live workers run and how parameters and gradients move: spawned local processes with pipes, or Ray actors.

Both backends offer the server the same four calls:

- ``launch()`` starts every worker, ``wait_ready()`` waits until each has built its
  workload and compiled its gradient (so the clock starts with every worker ready);
- ``pull(worker, version, params)``: hand a worker the parameters of ``version``; it
  answers with one ``Push``;
- ``receive(timeout)``: what arrived, as ``(kind, worker, payload)``: ``"push"`` with a
  ``Push``, ``"crash"`` when a worker's process died (payload: why), ``"failed"`` when
  its code raised (payload: the one-line error);
- ``close()``: stop every worker.

``local``: one process per worker (``multiprocessing``, spawn: JAX must not be forked),
one duplex ``Pipe`` each; a dead process is seen through its sentinel. ``ray``: one
actor per worker; each version's parameters are put once in Ray's object store and
every pull of it passes the reference.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import time
from multiprocessing.connection import wait
from typing import Optional

from scenarios.errors import ConfigError
from scenarios.live.worker import FAILED, PUSH, READY, Setup, Worker, process_main

BACKENDS = ("local", "ray")
START_TIMEOUT = 600.0  # seconds for every worker to build its workload and compile


class LocalBackend:
    """Worker processes started with ``spawn``, one ``Pipe`` each."""

    name = "local"

    def __init__(self, setups: list[Setup]):
        self.setups = setups
        self.processes: list = []
        self.conns: list = []
        self.alive: set[int] = set()
        self.context = None

    def launch(self) -> None:
        """Start the first worker: it compiles the gradient into the shared compilation cache,
        from which ``wait_ready`` has the others load it."""
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(["scenarios.live.worker"])  # imported once, then forked per worker
        self._start(self.setups[:1])

    def _start(self, setups) -> None:
        for setup in setups:
            parent, child = self.context.Pipe()
            process = self.context.Process(target=process_main, args=(child, setup), daemon=True,
                                           name=f"stalesim-live-worker-{setup.worker}")
            process.start()
            child.close()
            self.processes.append(process)
            self.conns.append(parent)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        self._wait({0}, deadline)
        self._start(self.setups[1:])
        self._wait(set(range(1, len(self.setups))), deadline)

    def _wait(self, waiting: set, deadline: float) -> None:
        total = len(self.setups)
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConfigError(f"--workers: {len(waiting)} of {total} worker processes were not ready after "
                                  f"{START_TIMEOUT:.0f} s (building the workload and compiling); use fewer workers")
            for kind, w, payload in self._events(set(waiting), left):
                if kind == READY:
                    waiting.discard(w)
                    self.alive.add(w)
                else:
                    raise ConfigError(f"live: worker {w} failed while starting: {payload}")

    def pull(self, worker: int, version: int, params) -> None:
        try:
            self.conns[worker].send(("pull", version, params, time.time()))
        except (BrokenPipeError, ConnectionResetError, EOFError):
            pass  # it died: its sentinel reports the crash

    def receive(self, timeout: float) -> list[tuple]:
        return self._events(self.alive, timeout)

    def _events(self, workers, timeout: float) -> list[tuple]:
        """Messages and deaths of ``workers``, waiting at most ``timeout`` for the first."""
        by_conn = {self.conns[w]: w for w in workers}
        by_sentinel = {self.processes[w].sentinel: w for w in workers}
        ready = wait(list(by_conn) + list(by_sentinel), timeout)
        events, dead = [], []
        for obj in ready:
            if obj in by_conn:
                w = by_conn[obj]
                try:
                    message = obj.recv()
                except (EOFError, OSError):
                    dead.append(w)
                    continue
                events.append((message[0], w, message[1]))
            else:
                dead.append(by_sentinel[obj])
        for w in dict.fromkeys(dead):
            conn = self.conns[w]
            while True:  # what it sent before it died still arrived
                try:
                    if not conn.poll():
                        break
                    message = conn.recv()
                except (EOFError, OSError):
                    break
                events.append((message[0], w, message[1]))
            self.alive.discard(w)
            code = self.processes[w].exitcode
            events.append(("crash", w, f"process {self.processes[w].pid} ended"
                           + (f" (signal {-code})" if code is not None and code < 0 else
                              f" (exit code {code})" if code is not None else "")))
        return events

    def kill(self, worker: int) -> None:
        """Kill a worker's process outright (what a crashed machine does)."""
        os.kill(self.processes[worker].pid, signal.SIGKILL)

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        for process in self.processes:
            process.join(timeout=2)
            if process.is_alive():
                process.terminate()
                process.join(timeout=2)
            if process.is_alive():
                process.kill()
                process.join()


def check_address(address: Optional[str]) -> None:
    """Refuse, in one line and in seconds, a Ray address where nothing answers (``ray.init``
    would otherwise wait a long time for it)."""
    if not address or address == "auto" or address.startswith("ray://"):
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"--address: expected HOST:PORT of a Ray cluster's head (e.g. 127.0.0.1:6379), "
                          f"got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as e:
        raise ConfigError(f"--address {address}: no Ray cluster answers there ({e.strerror or e}); start one with "
                          "'ray start --head' or give the head node's HOST:PORT") from None


class RayBackend:
    """One Ray actor per worker; parameters through the object store."""

    name = "ray"

    def __init__(self, setups: list[Setup], address: Optional[str] = None):
        self.setups = setups
        self.address = address
        self.actors: list = []
        self.inflight: dict = {}  # result ref -> worker
        self.puts: dict = {}  # version -> (object ref of its parameters, pulls in flight)
        self.alive: set[int] = set()
        self.started_here = False

    def launch(self) -> None:
        ray = _ray()
        check_address(self.address)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.ERROR)
            except Exception as e:  # noqa: BLE001 - Ray raises many kinds; each becomes one line
                raise ConfigError(_ray_error(self.address, e)) from None
            self.started_here = True
        actor = ray.remote(max_restarts=0)(_RayWorker)
        self.actors = [actor.remote(setup) for setup in self.setups]

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        ray = _ray()
        refs = {a.ready.remote(): w for w, a in enumerate(self.actors)}
        try:
            ready, missing = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
        except Exception as e:  # noqa: BLE001
            raise ConfigError(_ray_error(self.address, e)) from None
        if missing:
            raise ConfigError(f"--workers: {len(missing)} of {len(self.setups)} Ray workers were not ready after "
                              f"{timeout:.0f} s; does the cluster have room for {len(self.setups)} actors?")
        for ref in ready:
            try:
                ray.get(ref)
            except Exception as e:  # noqa: BLE001
                raise ConfigError(f"live: worker {refs[ref]} failed while starting: {_one_line(e)}") from None
        self.alive = set(range(len(self.setups)))

    def pull(self, worker: int, version: int, params) -> None:
        ray = _ray()
        if version not in self.puts:
            self.puts[version] = [ray.put(params), 0]
        entry = self.puts[version]
        entry[1] += 1
        self.inflight[self.actors[worker].compute.remote(version, entry[0])] = (worker, version)

    def receive(self, timeout: float) -> list[tuple]:
        ray = _ray()
        if not self.inflight:
            time.sleep(min(timeout, 0.01))
            return []
        ready, _ = ray.wait(list(self.inflight), num_returns=1, timeout=timeout)
        events = []
        for ref in ready:
            worker, version = self.inflight.pop(ref)
            entry = self.puts[version]
            entry[1] -= 1
            if entry[1] == 0:
                del self.puts[version]
            try:
                events.append((PUSH, worker, ray.get(ref)))
            except ray.exceptions.RayActorError as e:
                self.alive.discard(worker)
                events.append(("crash", worker, f"Ray actor died ({_one_line(e)[:120]})"))
            except ray.exceptions.RayTaskError as e:
                events.append((FAILED, worker, _one_line(e)))
        return events

    def kill(self, worker: int) -> None:
        _ray().kill(self.actors[worker], no_restart=True)

    def close(self) -> None:
        ray = _ray()
        for a in self.actors:
            try:
                ray.kill(a, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.actors, self.inflight, self.puts = [], {}, {}
        if self.started_here:
            ray.shutdown()


class _RayWorker:
    """A ``Worker`` as a Ray actor: ``compute`` is one pull answered with one push."""

    def __init__(self, setup: Setup):
        self.worker = Worker(setup)

    def ready(self) -> int:
        return os.getpid()

    def compute(self, version: int, params):
        return self.worker.compute(version, params, time.time())


def _ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray: Ray is not installed; install it with pip install 'stalesim[ray]' "
                          "(or pip install ray)") from None
    return ray


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[-1] if text else type(e).__name__


def _ray_error(address: Optional[str], e: BaseException) -> str:
    """One line for a failed connection to Ray, saying what to set."""
    text = str(e).lower()
    where = f"--address {address}" if address else "--backend ray"
    token = ("set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN to the cluster's token (or RAY_AUTH_TOKEN_PATH to a file "
             "holding it; 'ray get-auth-token' on the head node prints it)")
    if "auth" in text or "token" in text or type(e).__name__ == "AuthenticationError":
        return f"{where}: the Ray cluster refused this client's token; {token}"
    if address and "failed to connect" in text:  # it answered (check_address), then would not let this client in
        return (f"{where}: the Ray cluster there refused this client ({_one_line(e)[:120]}); with token "
                f"authentication (Ray's default), {token}")
    return f"{where}: cannot connect to Ray ({_one_line(e)[:200]})"


def make_backend(name: str, setups: list[Setup], address: Optional[str] = None):
    if name not in BACKENDS:
        raise ConfigError(f"--backend: must be one of {', '.join(BACKENDS)}, got {name!r}")
    if name == "local":
        if address:
            raise ConfigError("--address: only with --backend ray")
        return LocalBackend(setups)
    return RayBackend(setups, address)
