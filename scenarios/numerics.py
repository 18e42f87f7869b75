"""The one place stalesim sets an XLA flag: CPU math that rounds the same on every x86-64 CPU.

XLA:CPU by default allows *platform-dependent math* (its own help: "faster code at the
expense of consistent results across CPUs"): a division by a square root becomes an
approximate reciprocal square root refined by Newton steps, whose first approximation
is the CPU's own instruction (``vrsqrtps`` on AVX2, ``vrsqrt14ps`` on AVX-512), and
matrix products go to YNNPACK kernels chosen for the CPU's vector extensions, which
may sum in another order. Both change the last bits of results from one x86-64 CPU to
another (DC-ASGD-a's ``lam0 / sqrt(ms + eps)``; the evaluation's 1000 x 784 x 200
product). ``--xla_cpu_enable_platform_dependent_math=false`` turns both off: exact
square roots and divisions, and YNNPACK's ``YNN_FLAG_CONSISTENT_ARITHMETIC`` ("the
same results on all hardware the same build runs on").

``use_consistent_math()`` adds the flag to ``XLA_FLAGS``; XLA reads that variable
once, when JAX starts its backend (the first computation, not ``import jax``), so the
package ``scenarios`` calls it in its ``__init__``, before anything computes. A flag
the user already put in ``XLA_FLAGS`` (either value) is kept. docs/reproducibility.md
says what this buys and what it costs.
"""

from __future__ import annotations

import os
import sys

FLAG = "--xla_cpu_enable_platform_dependent_math"
CONSISTENT = "consistent"
PLATFORM_DEPENDENT = "platform-dependent"

_STARTED_EARLY = False  # JAX's backend was running before use_consistent_math(): the flag came too late


def _backend_started() -> bool:
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # another JAX: assume not started
        return False


def use_consistent_math() -> None:
    """Add ``--xla_cpu_enable_platform_dependent_math=false`` to ``XLA_FLAGS`` unless the
    variable already sets that flag; remember whether JAX's backend had already started
    (then the flag has no effect in this process, and ``math_mode()`` says so)."""
    global _STARTED_EARLY
    flags = os.environ.get("XLA_FLAGS", "")
    if FLAG in flags:
        return
    _STARTED_EARLY = _backend_started()
    os.environ["XLA_FLAGS"] = f"{flags} {FLAG}=false".strip()


def math_mode() -> str:
    """``"consistent"`` when XLA computes with the flag off (set before the backend
    started), else ``"platform-dependent"``."""
    value = None
    for token in os.environ.get("XLA_FLAGS", "").split():
        if token.startswith(FLAG + "="):
            value = token.split("=", 1)[1].strip().lower()
    if value in ("false", "0") and not _STARTED_EARLY:
        return CONSISTENT
    return PLATFORM_DEPENDENT
