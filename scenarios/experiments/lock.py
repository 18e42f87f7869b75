"""One command per output folder at a time: a lock file, released on exit and on a crash."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from scenarios.errors import ConfigError


class FolderLock:
    """``with FolderLock(out):`` holds an exclusive ``flock`` on ``out/.lock``. The kernel
    drops it when the process ends, however it ends, so a crash never leaves a stale lock."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / ".lock"
        self.fd = None

    def __enter__(self):
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise ConfigError(f"--out {self.path.parent}: cannot write there ({e.strerror})") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            raise ConfigError(f"--out {self.path.parent}: another stalesim command is writing there; wait for it "
                              "or choose another --out") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
        return False
