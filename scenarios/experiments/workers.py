"""A command's worker processes: started once and kept for its batches of runs, sharing one JAX compilation cache, and gone with the command."""

from __future__ import annotations

import atexit
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import jax


def cores() -> int:
    """CPU cores this process may run on (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def accelerator() -> bool:
    """Whether JAX computes on a GPU or TPU here: then ``--jobs auto`` keeps one process,
    since each process would claim most of the device's memory."""

    return jax.default_backend() != "cpu"


COMPILATION_CACHE_ENV = "STALESIM_COMPILATION_CACHE"


_COMMAND_CACHE: list = []  # [folder] once this command has made its own


def command_cache() -> str:
    """The JAX compilation cache this command's worker processes share: ``$STALESIM_COMPILATION_CACHE``
    when set, else a temporary folder made once per command and removed when it ends. A
    program one worker compiled (a rule's replay, a gradient) the others, and the workers
    of the command's later batches, load instead of compiling again; the command's own
    process keeps its JAX settings (it compiles each program once anyway)."""
    folder = os.environ.get(COMPILATION_CACHE_ENV, "").strip()
    if folder:
        return folder
    if not _COMMAND_CACHE:
        _COMMAND_CACHE.append(tempfile.mkdtemp(prefix="stalesim-jax-cache-"))
        atexit.register(shutil.rmtree, _COMMAND_CACHE[0], True)
    return _COMMAND_CACHE[0]


def use_compilation_cache() -> Optional[str]:
    """With ``STALESIM_COMPILATION_CACHE=DIR`` in the environment, JAX keeps every compiled
    program in ``DIR`` (its persistent compilation cache), so later processes load it
    instead of compiling again; a command's worker processes get the command's cache
    (``command_cache``) this way. The numbers are the same either way. Returns the folder,
    or None when the variable is unset or empty."""
    folder = os.environ.get(COMPILATION_CACHE_ENV, "").strip()
    if not folder:
        return None

    folder = str(Path(folder).expanduser().resolve())
    if jax.config.jax_compilation_cache_dir != folder:
        jax.config.update("jax_compilation_cache_dir", folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder


def watch_parent(parent: int, *, getppid=os.getppid, exit_now=os._exit, interval: float = 1.0) -> None:
    """Exit this worker as soon as its parent ``parent`` is gone (killed rather than
    interrupted): a worker process must not go on computing, then wait forever, for a
    command that no longer exists."""
    while getppid() == parent:
        time.sleep(interval)
    exit_now(1)


def _worker_started(parent: int, cache: str) -> None:
    """A pool worker's start: watch the command's process, and share its compilation cache."""
    os.environ[COMPILATION_CACHE_ENV] = cache
    threading.Thread(target=watch_parent, args=(parent,), daemon=True).start()


_KEPT: dict = {}  # while workers are kept (kept_workers): "depth", and "pool", "processes" once started


@contextmanager
def kept_workers():
    """Within this block, the local pool's worker processes are started once, at the first
    batch that needs them, and kept for every later batch that needs no more of them: a command's
    tuning and its reported runs, and every part of ``claims --rerun``, instead of new
    processes for each batch (each start costs about 3 s per process: Python, JAX, the
    data, the workload). They are shut down when the outermost block ends. Blocks nest."""
    _KEPT["depth"] = _KEPT.get("depth", 0) + 1
    try:
        yield
    finally:
        _KEPT["depth"] -= 1
        if not _KEPT["depth"]:
            _shut_down_kept()


def _shut_down_kept() -> None:
    pool = _KEPT.pop("pool", None)
    _KEPT.pop("processes", None)
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


def _new_pool(processes: int) -> ProcessPoolExecutor:
    # JAX must not be forked once initialised: spawn fresh worker processes
    return ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_started, initargs=(os.getpid(), command_cache()))


@contextmanager
def workers(processes: int):
    """At least ``processes`` worker processes: the kept ones when a ``kept_workers`` block is open
    (started now if there are fewer), else new ones, shut down after the batch."""
    if not _KEPT.get("depth"):
        with _new_pool(processes) as pool:
            yield pool
        return
    if _KEPT.get("processes", 0) < processes:
        _shut_down_kept()
        _KEPT["pool"], _KEPT["processes"] = _new_pool(processes), processes
    try:
        yield _KEPT["pool"]
    except BaseException:
        _shut_down_kept()  # a failed or interrupted batch leaves no work running behind it
        raise
