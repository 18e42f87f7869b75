"""One registry: every algorithm by name, collected from the declarations in their own files.

An algorithm declares itself once, in its own file, as an ``Algorithm``: its name, a
display name for tables and plots, how to build its rule from a base optimizer, its
default server policy, its hyperparameters (each a configuration field with a default
and a one-line meaning) and its paper. This module only collects them; the command
line's choices, the configuration's algorithm fields, and the order, colours and
labels of reports all derive from ``ALGORITHMS``.

Adding a rule is one file plus one line in ``_DECLARED`` below. Users' own rules run
without a fork, as ``package.module:function``: ``function(base)`` receives the base
optax optimizer and returns a ``Rule``; its server policy is ``fifo`` unless the
function has a ``policy`` attribute. An installed package can also register
``Algorithm`` objects (or such functions) under the entry-point group
``stalesim.algorithms``.
"""

from __future__ import annotations

import importlib
from typing import Callable, NamedTuple, Optional

import optax

from .base import Rule, RuleError
from .declaration import Algorithm, Hyperparameter

ENTRY_POINT_GROUP = "stalesim.algorithms"


from .asgd import ALGORITHMS as _ASGD  # noqa: E402 - the registry lines: one per rule file
from .buffered import ALGORITHMS as _BUFFERED  # noqa: E402
from .dcasgd import ALGORITHMS as _DCASGD  # noqa: E402
from .gsgm import ALGORITHMS as _GSGM  # noqa: E402
from .staleness import ALGORITHMS as _STALENESS  # noqa: E402

# in report order
ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in (*_ASGD, *_DCASGD, *_GSGM, *_STALENESS, *_BUFFERED)}
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
    when the module cannot be imported or has no such function."""
    module_name, _, function_name = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
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


_PLUGINS: Optional[dict] = None


def _entry_points() -> dict[str, Algorithm]:
    """Algorithms that installed packages register under ``stalesim.algorithms``."""
    global _PLUGINS
    if _PLUGINS is None:
        from importlib.metadata import entry_points

        _PLUGINS = {}
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                _PLUGINS[ep.name] = _wrap_function(ep.name, ep.load())
            except Exception as e:  # noqa: BLE001 - a broken plugin must not break the built-ins
                raise RuleError(f"algorithm {ep.name} (entry point {ep.value}): {e}") from None
    return _PLUGINS


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
