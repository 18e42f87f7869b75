"""The pytest plugin of stalesim's testing kit: golden-file paths, ``--update-golden``, the canonical cases.

Registered as the ``pytest11`` entry point ``stalesim``, so it is active in every
pytest run once stalesim is installed; ``-p no:stalesim`` switches it off. It gives

- ``golden``: a path for the test's golden history,
  ``<rootdir>/tests/golden/<test file name>/<test name>.json``, for
  ``scenarios.testing.assert_golden`` (nothing is written until that is called);
- ``--update-golden``: re-record every golden history the run touches (the same as
  ``STALESIM_UPDATE_GOLDEN=1``);
- ``stalesim_case``: a fixture parametrised over every canonical case name
  (``scenarios.testing.cases()``), and ``stalesim_cases``: the names with their lines.

Importing this module imports neither JAX nor the simulator.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

_UPDATE_ENV = "STALESIM_UPDATE_GOLDEN"


def pytest_addoption(parser):
    group = parser.getgroup("stalesim", "stalesim testing kit")
    group.addoption("--update-golden", action="store_true", default=False,
                    help="re-record the golden histories the tests compare with (scenarios.testing.assert_golden); "
                         "the same as STALESIM_UPDATE_GOLDEN=1")


def pytest_configure(config):
    if config.getoption("update_golden", default=False):
        config._stalesim_previous_update = os.environ.get(_UPDATE_ENV)  # noqa: SLF001
        os.environ[_UPDATE_ENV] = "1"


def pytest_unconfigure(config):
    if hasattr(config, "_stalesim_previous_update"):
        previous = config._stalesim_previous_update  # noqa: SLF001
        if previous is None:
            os.environ.pop(_UPDATE_ENV, None)
        else:
            os.environ[_UPDATE_ENV] = previous


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", name).strip("_") or "test"


@pytest.fixture
def golden(request) -> Path:
    """The test's golden file: ``<rootdir>/tests/golden/<test file name>/<test name>.json``
    (parametrised tests get one file per parameter set)."""
    module = Path(str(request.node.path)).stem if hasattr(request.node, "path") else "tests"
    return Path(request.config.rootpath) / "tests" / "golden" / _safe(module) / f"{_safe(request.node.name)}.json"


def _case_names() -> list[str]:
    from scenarios.testing import cases

    return list(cases())


@pytest.fixture(params=_case_names())
def stalesim_case(request) -> str:
    """Each canonical case's name in turn (``scenarios.testing.cases()``); skip those
    whose policy does not fit a rule with ``scenarios.testing.fits``."""
    return request.param


@pytest.fixture
def stalesim_cases() -> dict:
    """Every canonical case's name with a line saying what it is."""
    from scenarios.testing import cases

    return cases()


def pytest_terminal_summary(terminalreporter, config):
    """Name the golden files this run recorded under the rootdir (they should be committed)."""
    from scenarios.testing import RECORDED

    root = Path(config.rootpath).resolve()
    paths = [p for p in dict.fromkeys(RECORDED) if Path(p).resolve().is_relative_to(root)]
    if paths:
        terminalreporter.write_line(f"stalesim: recorded {len(paths)} golden file(s): "
                                    + ", ".join(str(p) for p in paths))
