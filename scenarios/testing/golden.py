"""``assert_golden``: a history recorded as a JSON golden file the first time, compared with it after."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import NamedTuple, Optional

import jax
import jaxlib
import numpy as np

from scenarios.experiments.machine import cpu, describe, same_cpu
from scenarios.testing.comparing import _first_difference, _rows
from scenarios.testing.factories import _first_line
from scenarios.testing.replay import CaseHistory, params_digest

UPDATE_ENV = "STALESIM_UPDATE_GOLDEN"
MISSING_ENV = "STALESIM_GOLDEN_MISSING"  # "record" or "fail": what a missing golden file does (pytest --golden-missing)
MISSING_CHOICES = ("record", "fail")
GOLDEN_FORMAT = "stalesim-golden"
GOLDEN_FORMAT_VERSION = 1
DEFAULT_RTOL = 1e-5


class GoldenError(AssertionError):
    """A golden file is corrupt or not a stalesim golden history."""


class GoldenFallbackWarning(UserWarning):
    """A golden history was compared within a tolerance, not bit for bit, because it was
    recorded on another CPU, platform or JAX version."""


class GoldenCheck(NamedTuple):
    """What ``assert_golden`` did: ``mode`` is ``"recorded"``, ``"exact"`` (bit for bit)
    or ``"rtol"`` (within ``rtol``, recorded elsewhere); for ``"rtol"``, ``largest`` is
    the largest relative difference found (0.0: the numbers were in fact identical)."""

    path: Path
    mode: str
    rtol: Optional[float] = None
    largest: Optional[float] = None


RECORDED: list[Path] = []  # golden files written in this process (the pytest plugin lists them)
FALLBACKS: list[tuple[Path, str]] = []  # (path, line) per comparison that fell back to a tolerance (for the plugin)


def recorded_with() -> dict:
    """What made a history (a golden file's ``recorded_with``): jax, jaxlib, numpy, stalesim versions, the platform (OS,
    machine, JAX backend and device kind) and the CPU (``scenarios.experiments.machine.cpu``: model,
    vector extensions, XLA's math mode)."""

    try:

        jaxlib_version = getattr(jaxlib, "__version__", None) or jaxlib.version.__version__
    except Exception:  # noqa: BLE001
        jaxlib_version = "unknown"
    try:

        stalesim_version = version("stalesim")
    except Exception:  # noqa: BLE001
        stalesim_version = "unknown"
    device = jax.devices()[0]
    return {"jax": jax.__version__, "jaxlib": jaxlib_version, "numpy": np.__version__,
            "stalesim": stalesim_version,
            "platform": f"{platform.system()} {platform.machine()}, {jax.default_backend()} "
                        f"({getattr(device, 'device_kind', device.platform)})",
            "cpu": cpu()}


def versions() -> dict:
    """Deprecated: ``recorded_with`` (``versions`` is a result's provenance, scenarios.experiments.provenance)."""
    warnings.warn("scenarios.testing.versions is renamed recorded_with (what a golden file records); the old "
                  "name will be removed", DeprecationWarning, stacklevel=2)
    return recorded_with()


def _updating() -> bool:
    return os.environ.get(UPDATE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def on_ci() -> bool:
    """Whether the ``CI`` environment variable is set (to anything but ``0``, ``false``, ``no``, ``off``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


def missing_mode() -> str:
    """What a missing golden file does: ``$STALESIM_GOLDEN_MISSING`` (``record`` or
    ``fail``; pytest's ``--golden-missing`` sets it), else ``fail`` on CI (``on_ci``), else
    ``record``."""
    mode = os.environ.get(MISSING_ENV, "").strip().lower()
    if mode and mode not in MISSING_CHOICES:
        raise GoldenError(f"{MISSING_ENV}: must be one of {', '.join(MISSING_CHOICES)}, got {mode!r}")
    return mode or ("fail" if on_ci() else "record")


def _describe_versions(v: dict) -> str:
    return (f"jax {v.get('jax')}, jaxlib {v.get('jaxlib')}, numpy {v.get('numpy')}, stalesim {v.get('stalesim')} "
            f"on {v.get('platform')}, {describe(v.get('cpu'))}")


def _why_not_exact(recorded: dict, now: dict) -> list[str]:
    """What differs between the recorded and the present set of versions, among those
    that must match for a bit-for-bit comparison (empty: compare bit for bit)."""
    why = [f"{k} differs" for k in ("platform", "jax", "jaxlib") if recorded.get(k) != now[k]]
    if not recorded.get("cpu"):
        why.append("the CPU is not recorded")
    elif not same_cpu(recorded.get("cpu"), now["cpu"]):
        why.append("the CPU differs")
    return why


def _largest_difference(names, recorded_rows, rows) -> tuple[float, str]:
    """The largest relative difference of the numbers the evaluations share, and where."""
    largest, where = 0.0, "none"
    for a_row, b_row in zip(recorded_rows, rows):
        for j, metric in enumerate(names):
            a, b = a_row[j], b_row[j]
            if metric == "digest" or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
                continue
            relative = 0.0 if a == b else abs(a - b) / max(abs(a), abs(b))
            if relative > largest:
                largest, where = relative, f"{metric} at update {a_row[0]}: recorded {a!r}, now {b!r}"
    return largest, where


_HOW = f"re-record it with {UPDATE_ENV}=1 (or pytest --update-golden) if the change is intended"


def _write_golden(history, path: Path) -> None:
    names, rows = _rows(history)
    inner = history
    header = {"format": GOLDEN_FORMAT, "format_version": GOLDEN_FORMAT_VERSION, "recorded_with": recorded_with()}
    if isinstance(history, CaseHistory):
        header.update(case=history.case, base=history.base, rule=history.rule)
    elif getattr(inner, "params", None) is not None:
        header["final_digest"] = params_digest(inner.params)
    header.update(diverged=bool(inner.diverged), diverged_at=inner.diverged_at, metrics=names,
                  evaluations="@ROWS@")
    body = ",\n".join("    " + json.dumps(row) for row in rows)
    text = json.dumps(header, indent=2).replace('"@ROWS@"', "[\n" + body + "\n  ]") + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text)
    tmp.replace(path)
    RECORDED.append(path)


def _read_golden(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise GoldenError(f"golden {path}: not readable JSON ({type(e).__name__}: {_first_line(e)}); delete it "
                          f"or re-record it with {UPDATE_ENV}=1 (or pytest --update-golden)") from None
    if not isinstance(data, dict) or data.get("format") != GOLDEN_FORMAT:
        raise GoldenError(f"golden {path}: not a stalesim golden history (no \"format\": \"{GOLDEN_FORMAT}\"); "
                          f"delete it or re-record it with {UPDATE_ENV}=1 (or pytest --update-golden)")
    if data.get("format_version") != GOLDEN_FORMAT_VERSION:
        raise GoldenError(f"golden {path}: format version {data.get('format_version')!r}, this stalesim reads "
                          f"{GOLDEN_FORMAT_VERSION}; re-record it with {UPDATE_ENV}=1 (or pytest --update-golden)")
    ok = (isinstance(data.get("metrics"), list) and isinstance(data.get("evaluations"), list)
          and isinstance(data.get("recorded_with"), dict)
          and all(isinstance(r, list) and len(r) == len(data["metrics"]) for r in data["evaluations"]))
    if not ok:
        raise GoldenError(f"golden {path}: corrupt (metrics, evaluations or recorded_with missing or malformed); "
                          f"delete it or re-record it with {UPDATE_ENV}=1 (or pytest --update-golden)")
    return data


def assert_golden(history, path, rtol: Optional[float] = None) -> GoldenCheck:
    """Record ``history`` at ``path`` (JSON) the first time, or when
    ``STALESIM_UPDATE_GOLDEN=1`` (``pytest --update-golden``); else compare with it. A
    missing file fails instead of being recorded where ``missing_mode()`` is ``fail``
    (``pytest --golden-missing=fail``, the default when ``CI`` is set).

    ``history`` is a ``replay_case`` result (per evaluation: update, simulated time,
    loss, accuracy, parameter norm and digest) or any ``algorithms.History`` (the same
    without norm and digest; the final parameters' digest when it kept them). The file
    also records the versions of jax, jaxlib, numpy and stalesim and the platform.

    The comparison is bit for bit when the platform, the jax and jaxlib versions and the
    CPU (model, vector extensions, XLA's math mode; ``scenarios.experiments.machine``) match the
    recorded ones; otherwise it falls back to ``rtol`` (default 1e-5) on the numbers,
    skips the digests, and says so in one line (printed to stderr, warned as
    ``GoldenFallbackWarning`` and repeated by the pytest plugin's summary): what differs,
    the tolerance and the largest relative difference found. A mismatch raises
    ``AssertionError`` naming the first differing update and metric, both values, and
    both sets of versions. Only ``path`` is written (through ``path`` + ``.part``,
    renamed).
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not the kit's
    path = Path(path)
    if path.suffix != ".json":
        raise GoldenError(f"golden {path}: the path must end in .json")
    if not _updating() and not path.exists() and missing_mode() == "fail":
        raise AssertionError(f"golden {path}: missing, and missing goldens fail here (--golden-missing=fail, the "
                             f"default when CI is set); record it where CI is unset (or with --update-golden) and "
                             f"commit it")
    if _updating() or not path.exists():
        _write_golden(history, path)
        return GoldenCheck(path, "recorded")
    data = _read_golden(path)
    names, rows = _rows(history)
    inner = history
    recorded, now = data["recorded_with"], recorded_with()
    why = _why_not_exact(recorded, now)
    exact = not why
    tolerance = DEFAULT_RTOL if rtol is None else float(rtol)
    where = (f"recorded with {_describe_versions(recorded)}; now {_describe_versions(now)}")
    if data["metrics"] != names:
        raise AssertionError(f"golden {path}: records {', '.join(data['metrics'])} per evaluation, this history "
                             f"has {', '.join(names)} (a replay_case history against a plain History?); {_HOW}")
    if exact:
        first = _first_difference(names, data["evaluations"], rows)
        how = "bit for bit"
    else:
        keep = [j for j, m in enumerate(names) if m != "digest"]
        first = _first_difference([names[j] for j in keep], [[r[j] for j in keep] for r in data["evaluations"]],
                                  [[r[j] for j in keep] for r in rows],
                                  close=lambda a, b: math.isclose(a, b, rel_tol=tolerance, abs_tol=0.0))
        how = f"within rtol {tolerance:g} (fell back from bit for bit: {', '.join(why)})"
    if first is not None:
        i, metric, a, b = first
        rows_at = data["evaluations"] if i < len(data["evaluations"]) else rows
        update = rows_at[i][0] if i < len(rows_at) else "end"
        if metric == "evaluations":
            what = f"the recorded history has {a} evaluations, this one {b} (first missing at update {update})"
        else:
            what = f"first difference at update {update}, {metric}: recorded {a!r}, now {b!r}"
        raise AssertionError(f"golden {path}: {what}; compared {how}; {where}; {_HOW}")
    if bool(data.get("diverged")) != bool(inner.diverged):
        raise AssertionError(f"golden {path}: recorded diverged={data.get('diverged')}, now {inner.diverged}; "
                             f"{where}; {_HOW}")
    final = data.get("final_digest")
    if exact and final is not None and getattr(inner, "params", None) is not None:
        if params_digest(inner.params) != final:
            raise AssertionError(f"golden {path}: first difference at the end, final parameters' digest: recorded "
                                 f"{final!r}, now {params_digest(inner.params)!r}; compared bit for bit; {where}; "
                                 f"{_HOW}")
    if not exact:
        largest, at = _largest_difference(names, data["evaluations"], rows)
        line = (f"golden {path}: {', '.join(why)}; compared within rtol {tolerance:g}, not bit for bit; largest "
                f"relative difference {largest:.3g}" + (f" ({at})" if largest else "") + f"; {where}")
        FALLBACKS.append((path, line))
        print(f"stalesim: {line}", file=sys.stderr)
        warnings.warn(GoldenFallbackWarning(line), stacklevel=2)
        return GoldenCheck(path, "rtol", tolerance, largest)
    return GoldenCheck(path, "exact")
