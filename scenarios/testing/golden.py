"""``assert_golden``: a history recorded as a JSON golden file the first time, compared with it after."""

from __future__ import annotations

import json
import math
import os
import platform
import warnings
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np

from .comparing import _first_difference, _rows
from .factories import _first_line
from .replay import CaseHistory, params_digest


UPDATE_ENV = "STALESIM_UPDATE_GOLDEN"
GOLDEN_FORMAT = "stalesim-golden"
GOLDEN_FORMAT_VERSION = 1
DEFAULT_RTOL = 1e-5


class GoldenError(AssertionError):
    """A golden file is corrupt or not a stalesim golden history."""


class GoldenFallbackWarning(UserWarning):
    """A golden history was compared within a tolerance, not bit for bit, because it was
    recorded on another platform or JAX version."""


class GoldenCheck(NamedTuple):
    """What ``assert_golden`` did: ``mode`` is ``"recorded"``, ``"exact"`` (bit for bit)
    or ``"rtol"`` (within ``rtol``, recorded elsewhere)."""

    path: Path
    mode: str
    rtol: Optional[float] = None


RECORDED: list[Path] = []  # golden files written in this process (the pytest plugin lists them)


def versions() -> dict:
    """What made a history: jax, jaxlib, numpy, stalesim versions and the platform
    (OS, machine, JAX backend and device kind)."""
    import jax

    try:
        import jaxlib

        jaxlib_version = getattr(jaxlib, "__version__", None) or jaxlib.version.__version__
    except Exception:  # noqa: BLE001
        jaxlib_version = "unknown"
    try:
        from importlib.metadata import version

        stalesim_version = version("stalesim")
    except Exception:  # noqa: BLE001
        stalesim_version = "unknown"
    device = jax.devices()[0]
    return {"jax": jax.__version__, "jaxlib": jaxlib_version, "numpy": np.__version__,
            "stalesim": stalesim_version,
            "platform": f"{platform.system()} {platform.machine()}, {jax.default_backend()} "
                        f"({getattr(device, 'device_kind', device.platform)})"}


def _updating() -> bool:
    return os.environ.get(UPDATE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _describe_versions(v: dict) -> str:
    return (f"jax {v.get('jax')}, jaxlib {v.get('jaxlib')}, numpy {v.get('numpy')}, stalesim {v.get('stalesim')} "
            f"on {v.get('platform')}")


_HOW = f"re-record it with {UPDATE_ENV}=1 (or pytest --update-golden) if the change is intended"


def _write_golden(history, path: Path) -> None:
    names, rows = _rows(history)
    inner = history
    header = {"format": GOLDEN_FORMAT, "format_version": GOLDEN_FORMAT_VERSION, "recorded_with": versions()}
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
    ``STALESIM_UPDATE_GOLDEN=1`` (``pytest --update-golden``); else compare with it.

    ``history`` is a ``replay_case`` result (per evaluation: update, simulated time,
    loss, accuracy, parameter norm and digest) or any ``algorithms.History`` (the same
    without norm and digest; the final parameters' digest when it kept them). The file
    also records the versions of jax, jaxlib, numpy and stalesim and the platform.

    The comparison is bit for bit when the platform and the jax and jaxlib versions
    match the recorded ones; otherwise it falls back to ``rtol`` (default 1e-5) on the
    numbers, skips the digests, and warns ``GoldenFallbackWarning``. A mismatch raises
    ``AssertionError`` naming the first differing update and metric, both values, and
    both sets of versions. Only ``path`` is written (through ``path`` + ``.part``,
    renamed).
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not the kit's
    path = Path(path)
    if path.suffix != ".json":
        raise GoldenError(f"golden {path}: the path must end in .json")
    if _updating() or not path.exists():
        _write_golden(history, path)
        return GoldenCheck(path, "recorded")
    data = _read_golden(path)
    names, rows = _rows(history)
    inner = history
    recorded, now = data["recorded_with"], versions()
    exact = all(recorded.get(k) == now[k] for k in ("platform", "jax", "jaxlib"))
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
        how = f"within rtol {tolerance:g} (fell back from bit for bit: platform or JAX version differs)"
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
        warnings.warn(GoldenFallbackWarning(f"golden {path}: compared within rtol {tolerance:g}, not bit for bit "
                                            f"({where})"), stacklevel=2)
        return GoldenCheck(path, "rtol", tolerance)
    return GoldenCheck(path, "exact")
