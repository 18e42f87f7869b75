"""The CPU a result was computed on: model, vector extensions and XLA's math mode, and whether two records match.

``cpu()`` is recorded in every run's provenance (``scenarios.experiments.provenance.machine``) and in
every golden history (``scenarios.testing.golden``). Results are promised bit for bit
only between equal records (``same_cpu``); elsewhere the README check and the golden
comparison fall back to a tolerance and say so (docs/reproducibility.md).

Imports neither JAX nor the simulator.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Optional

from scenarios.numerics import math_mode

# The flags of /proc/cpuinfo that change which code XLA and its kernel libraries run.
VECTOR_EXTENSIONS = (
    "sse4_2", "avx", "f16c", "fma", "avx2", "avx_vnni",
    "avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl", "avx512ifma", "avx512vbmi", "avx512_vnni",
    "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8",
    "asimd", "asimdhp", "asimddp", "sve", "sve2", "bf16", "i8mm", "sme",  # Arm
)
IDENTITY = ("model", "vector_extensions", "xla_cpu_math")  # the fields two records must share to be "the same CPU"


def _cpuinfo(text: str) -> tuple[Optional[str], list[str]]:
    """The model name and the recorded vector extensions of a /proc/cpuinfo text (its first processor)."""
    model, flags = None, []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if model is None and key in ("model name", "cpu model", "hardware"):
            model = value.strip() or None
        elif not flags and key in ("flags", "features"):
            have = set(value.split())
            flags = [f for f in VECTOR_EXTENSIONS if f in have]
    return model, flags


def cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict:
    """This machine's CPU record: ``model`` (e.g. ``"AMD EPYC"``), ``architecture``
    (``x86_64``), ``vector_extensions`` (those of ``VECTOR_EXTENSIONS`` present) and
    ``xla_cpu_math`` (``"consistent"`` or ``"platform-dependent"``,
    ``scenarios.numerics``). Off Linux the model is ``platform.processor()`` and the
    extensions are not known (``None``)."""
    model, flags = None, None
    try:
        model, flags = _cpuinfo(cpuinfo.read_text())
    except OSError:
        pass
    return {"model": model or platform.processor() or "unknown", "architecture": platform.machine(),
            "vector_extensions": flags, "xla_cpu_math": math_mode()}


def describe(record: Optional[dict]) -> str:
    """One line: ``AMD EPYC (x86_64; avx avx2 fma ...; XLA math consistent)``."""
    if not record:
        return "an unrecorded CPU"
    flags = record.get("vector_extensions")
    flags = "extensions unknown" if flags is None else (" ".join(flags) or "no vector extensions")
    return (f"{record.get('model')} ({record.get('architecture')}; {flags}; "
            f"XLA math {record.get('xla_cpu_math')})")


def same_cpu(recorded: Optional[dict], now: Optional[dict]) -> bool:
    """Whether two CPU records promise the same numbers bit for bit: the same model,
    vector extensions and XLA math mode. A missing record matches nothing."""
    if not recorded or not now:
        return False
    return all(recorded.get(k) == now.get(k) for k in IDENTITY)
