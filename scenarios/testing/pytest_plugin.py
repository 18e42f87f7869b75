"""The pytest plugin of stalesim's testing kit: golden-file paths and options, the canonical cases.

Registered as the ``pytest11`` entry point ``stalesim``, so it is active in every
pytest run once stalesim is installed; ``-p no:stalesim`` switches it off. It gives

- ``golden``: a path for the test's golden history, next to the test file:
  ``<test file's folder>/golden/<test file name>/<test name>.json`` (whatever folder
  pytest runs from), for ``scenarios.testing.assert_golden`` (nothing is written until
  that is called);
- ``--update-golden``: re-record every golden history the run touches (the same as
  ``STALESIM_UPDATE_GOLDEN=1``);
- ``--golden-missing=record|fail``: what a missing golden file does; ``fail`` by
  default when the ``CI`` environment variable is set, else ``record`` (the same as
  ``STALESIM_GOLDEN_MISSING``);
- a summary line per golden file recorded, and per comparison that fell back from bit
  for bit to a tolerance (another CPU, platform or JAX version; docs/reproducibility.md);
- ``stalesim_case``: a fixture parametrised over every canonical case name
  (``scenarios.testing.cases()``), and ``stalesim_cases``: the names with their lines.

Importing this module imports neither JAX nor the simulator.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from scenarios.testing import cases
from scenarios.testing.golden import FALLBACKS, RECORDED

_UPDATE_ENV = "STALESIM_UPDATE_GOLDEN"
_MISSING_ENV = "STALESIM_GOLDEN_MISSING"


def pytest_addoption(parser):
    group = parser.getgroup("stalesim", "stalesim testing kit")
    group.addoption("--update-golden", action="store_true", default=False,
                    help="re-record the golden histories the tests compare with (scenarios.testing.assert_golden); "
                         "the same as STALESIM_UPDATE_GOLDEN=1")
    group.addoption("--golden-missing", choices=("record", "fail"), default=None,
                    help="what a missing golden file does: record it, or fail the test; default: fail when the CI "
                         "environment variable is set, else record (the same as STALESIM_GOLDEN_MISSING)")


def _set_env(config, name: str, value: str) -> None:
    """Set ``name`` for this pytest run; ``pytest_unconfigure`` puts back what was there."""
    config._stalesim_previous_env.setdefault(name, os.environ.get(name))  # noqa: SLF001
    os.environ[name] = value


def pytest_configure(config):
    config._stalesim_previous_env = {}  # noqa: SLF001
    if config.getoption("update_golden", default=False):
        _set_env(config, _UPDATE_ENV, "1")
    missing = config.getoption("golden_missing", default=None)
    if missing is not None:
        _set_env(config, _MISSING_ENV, missing)


def pytest_unconfigure(config):
    for name, previous in getattr(config, "_stalesim_previous_env", {}).items():
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", name).strip("_") or "test"


@pytest.fixture
def golden(request) -> Path:
    """The test's golden file: ``<test file's folder>/golden/<test file name>/<test name>.json``
    (parametrised tests get one file per parameter set); relative to the test file, so
    the same file whatever folder pytest runs from."""
    test_file = Path(str(request.node.path)).resolve()
    return test_file.parent / "golden" / _safe(test_file.stem) / f"{_safe(request.node.name)}.json"


def _case_names() -> list[str]:

    return list(cases())


@pytest.fixture(params=_case_names())
def stalesim_case(request) -> str:
    """Each canonical case's name in turn (``scenarios.testing.cases()``); skip those
    whose policy does not fit a rule with ``scenarios.testing.fits``."""
    return request.param


@pytest.fixture
def stalesim_cases() -> dict:
    """Every canonical case's name with a line saying what it is."""

    return cases()


def pytest_terminal_summary(terminalreporter, config):
    """Name the golden files under the rootdir that this run recorded (they should be
    committed) or compared within a tolerance, not bit for bit (one line each: why, and
    the largest difference)."""

    root = Path(config.rootpath).resolve()
    paths = [p for p in dict.fromkeys(RECORDED) if Path(p).resolve().is_relative_to(root)]
    if paths:
        terminalreporter.write_line(f"stalesim: recorded {len(paths)} golden file(s): "
                                    + ", ".join(str(p) for p in paths))
    for path, line in dict.fromkeys(FALLBACKS):
        if Path(path).resolve().is_relative_to(root):
            terminalreporter.write_line(f"stalesim: {line}")
