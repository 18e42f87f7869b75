"""One registry: every algorithm by name, collected from the declarations in their own files.

An algorithm declares itself once, in its own file, as an ``Algorithm``: its name, a
display name for tables and plots, how to build its rule from a base optimizer, its
default server policy, its hyperparameters (each a configuration field with a default
and a one-line meaning) and its paper. This module only collects them; the command
line's choices, the configuration's algorithm fields, and the order, colours and
labels of reports all derive from ``ALGORITHMS``.

Adding a rule is one file (ending with its ``ALGORITHMS`` tuple) plus one line: its
module's name in ``RULE_MODULES`` below. Users' own rules run without a fork, as
``package.module:function``: ``function(base)`` receives the base optax optimizer and
returns a ``Rule``; its server policy is ``fifo`` unless the function has a ``policy``
attribute. An installed package can also register ``Algorithm`` objects (or such
functions) under the entry-point group ``stalesim.algorithms``.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Callable, NamedTuple

import optax

from .base import Rule, RuleError
from .declaration import Algorithm, Hyperparameter

ENTRY_POINT_GROUP = "stalesim.algorithms"

# The rule files of this package, in report order: one line per rule file.
RULE_MODULES = (
    "asgd",
    "dcasgd",
    "gsgm",
    "staleness",
    "buffered",
)

ALGORITHMS: dict[str, Algorithm] = {
    algorithm.name: algorithm
    for module in RULE_MODULES
    for algorithm in importlib.import_module(f"{__package__}.{module}").ALGORITHMS
}
_ALIASES = {alias: a.name for a in ALGORITHMS.values() for alias in a.aliases}


def hyperparameters() -> dict[str, Hyperparameter]:
    """Every built-in algorithm's hyperparameters by field name (shared names declared alike)."""
    out: dict[str, Hyperparameter] = {}
    for algorithm in ALGORITHMS.values():
        for h in algorithm.hyperparameters:
            if h.name in out and out[h.name] != h:
                raise RuleError(f"{algorithm.name}: hyperparameter {h.name} is declared twice, differently")
            out[h.name] = h
    return out


def is_reference(name: str) -> bool:
    return ":" in name


def get(name: str) -> Algorithm:
    """A built-in algorithm by name or alias, an entry-point rule, or a user's
    ``package.module:function``; ``RuleError`` (one line) when none fits."""
    if name in ALGORITHMS:
        return ALGORITHMS[name]
    if name in _ALIASES:
        return ALGORITHMS[_ALIASES[name]]
    if is_reference(name):
        return _from_reference(name)
    plugins = _entry_points()
    if name in plugins:
        return plugins[name]
    allowed = ", ".join([*ALGORITHMS, *plugins])
    raise RuleError(f"algorithm: unknown {name!r}; allowed: {allowed}, or package.module:function")


def canonical(name: str) -> str:
    """The registry's name for ``name`` (aliases resolved; references kept as given)."""
    return _ALIASES.get(name, name)


def display_name(name: str) -> str:
    """The name tables and plots show: the display name, or the reference as given."""
    try:
        return get(name).display
    except RuleError:
        return name


def order(name: str) -> int:
    """Position in reports: registry order, then users' rules."""
    names = list(ALGORITHMS)
    name = canonical(name)
    return names.index(name) if name in names else len(names)


def import_function(reference: str) -> Callable:
    """The function a ``package.module:function`` reference names; one ``RuleError`` line
    when the module cannot be imported or has no such function.

    The working folder is importable, as under ``python -m``: ``myrules:half`` finds a
    ``myrules.py`` there (the ``stalesim`` script alone would search only its own folder
    and the installed packages); it is put at the front of ``sys.path`` once."""
    module_name, _, function_name = reference.partition(":")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name is not None and (module_name == e.name or module_name.startswith(e.name + ".")):
            tried = Path(cwd, *module_name.split("."))
            raise RuleError(f"algorithm {reference}: cannot import {module_name!r}: no such module; looked for "
                            f"{tried}.py (or the package {tried}/) in the current folder, and on Python's path "
                            f"({len(sys.path)} folders, the installed packages included); run from the folder that "
                            "holds it, add its folder to PYTHONPATH, or install it") from None
        raise RuleError(f"algorithm {reference}: importing {module_name!r} failed ({type(e).__name__}: {e})") from None
    except Exception as e:  # noqa: BLE001 - any import failure is the user's module
        raise RuleError(f"algorithm {reference}: cannot import {module_name!r} ({type(e).__name__}: {e})") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise RuleError(f"algorithm {reference}: {module_name} has no function {function_name!r}")
    return function


def _from_reference(reference: str) -> Algorithm:
    return _wrap_function(reference, import_function(reference))


def _wrap_function(reference: str, function: Callable) -> Algorithm:
    if isinstance(function, Algorithm):
        return function
    try:
        rule = function(optax.sgd(0.01))
    except Exception as e:  # noqa: BLE001 - the user's function failed
        raise RuleError(f"algorithm {reference}: calling it with a base optimizer raised "
                        f"{type(e).__name__}: {e}") from None
    if not isinstance(rule, Rule):
        raise RuleError(f"algorithm {reference}: must return an algorithms.Rule, returned {type(rule).__name__}")
    policy = getattr(function, "policy", "fifo")
    if not isinstance(policy, str):
        raise RuleError(f"algorithm {reference}: its policy attribute must be a policy name, got {policy!r}")
    return Algorithm(name=reference, display=reference, build=lambda base, workers: function(base.optimizer()),
                     policy=policy, summary=(function.__doc__ or "").strip().split("\n")[0], reference=reference)


@functools.cache
def _entry_points() -> dict[str, Algorithm]:
    """Algorithms that installed packages register under ``stalesim.algorithms`` (read once)."""
    plugins = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            plugins[ep.name] = _wrap_function(ep.name, ep.load())
        except Exception as e:  # noqa: BLE001 - a broken plugin must not break the built-ins
            raise RuleError(f"algorithm {ep.name} (entry point {ep.value}): {e}") from None
    return plugins


def make_rule(name: str, base: optax.GradientTransformation, **options) -> Rule:
    """The rule called ``name`` on the optax optimizer ``base``, for library use and
    conformance tests; ``options`` go to the rule's factory."""
    algorithm = get(name)
    if algorithm.reference is not None:
        return _from_reference(name).build(_Given(base), 0)
    values = {h.name: h.default for h in algorithm.hyperparameters}
    values.update(options)
    return algorithm.build(_Given(base), None, **values)


class _Given(NamedTuple):
    """A base that is already an optax optimizer (``make_rule``)."""

    given: optax.GradientTransformation
    name: str = "given"

    def optimizer(self):
        return self.given
