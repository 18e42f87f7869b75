"""Where a result came from: the versions of Python, the libraries and stalesim (with its git commit), and the machine."""

from __future__ import annotations

import platform
import subprocess
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import jax
import jaxlib
import numpy as np
import optax
import simpy

from scenarios.experiments.machine import cpu


def versions() -> dict:
    """The versions that made a result: Python, the libraries, stalesim and its git commit
    (``+uncommitted`` when tracked files differ from it). Read once per process."""
    return dict(_versions())


@cache
def _versions() -> tuple:
    try:
        stalesim = version("stalesim")
    except PackageNotFoundError:
        stalesim = None
    return tuple(dict(python=platform.python_version(), jax=jax.__version__, jaxlib=jaxlib.__version__,
                      numpy=np.__version__, simpy=simpy.__version__, optax=optax.__version__, stalesim=stalesim,
                      git_commit=git_commit()).items())


def git_commit():
    """The checkout's commit, with ``+uncommitted`` when tracked files differ; None outside a git checkout."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+uncommitted" if dirty.stdout.strip() else "")


def machine() -> dict:
    """The platform, the CPU (model, vector extensions, XLA's math mode: ``scenarios.experiments.machine.cpu``)
    and the JAX device the numbers were computed on."""
    device = jax.devices()[0]
    return {"platform": platform.platform(), "processor": platform.machine(), "cpu": cpu(),
            "jax_backend": jax.default_backend(), "jax_device": f"{device.platform}:{getattr(device, 'device_kind', '')}"}

