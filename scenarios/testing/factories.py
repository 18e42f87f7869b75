"""Resolving what the kit takes as a rule (a factory, an algorithm name, ``module:function``) and its base optimizer."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Union

import optax

from algorithms import Rule, RuleError
from algorithms.registry import get, import_function, make_rule

# The base optimizers a rule is checked on and cases are replayed with, by name.
BASE_OPTIMIZERS = {"sgd": "optax.sgd(0.05)", "momentum": "optax.sgd(0.005, momentum=0.9)", "adam": "optax.adam(0.01)"}

Factory = Union[Callable[[Any], Any], str]


def base_optimizer(base):
    """The optax optimizer called ``base`` (a key of ``BASE_OPTIMIZERS``), or ``base``
    itself when it already is one."""
    if hasattr(base, "init") and hasattr(base, "update"):
        return base
    if base not in BASE_OPTIMIZERS:

        raise RuleError(f"base: must be one of {', '.join(BASE_OPTIMIZERS)} or an optax optimizer, got {base!r}")

    if base == "sgd":
        return optax.sgd(0.05)
    if base == "momentum":
        return optax.sgd(0.005, momentum=0.9)
    return optax.adam(0.01)


def _base_label(base) -> str:
    return base if isinstance(base, str) else type(base).__name__


class _Factory(NamedTuple):
    build: Callable  # base -> Rule
    label: str  # for messages
    policy: object  # the declared server policy


def _resolve(factory: Factory) -> _Factory:
    """A factory, a built-in algorithm's name, or ``module:function``, as a ``_Factory``."""

    if isinstance(factory, _Factory):
        return factory
    if isinstance(factory, str):

        if ":" in factory:
            function = import_function(factory)
            return _Factory(function, factory, getattr(function, "policy", "fifo"))

        algorithm = get(factory)
        policy = algorithm.policy_for({h.name: h.default for h in algorithm.hyperparameters})
        return _Factory(lambda base: make_rule(factory, base), factory, policy)
    if not callable(factory):
        raise RuleError(f"factory: expected a function base -> Rule, an algorithm name or module:function, "
                        f"got {type(factory).__name__}")
    name = getattr(factory, "__qualname__", None) or type(factory).__name__
    module = getattr(factory, "__module__", None)
    label = f"{module}:{name}" if module and module != "__main__" else name
    return _Factory(factory, label, getattr(factory, "policy", "fifo"))


def _build(made: _Factory, base):

    try:
        rule = made.build(base_optimizer(base))
    except RuleError:
        raise
    except Exception as e:  # noqa: BLE001 - the user's factory
        raise RuleError(f"builds: {made.label}(base) raised {type(e).__name__}: {_first_line(e)}") from None
    if not isinstance(rule, Rule):
        raise RuleError(f"builds: {made.label}(base) returned {type(rule).__name__}, not an algorithms.Rule")
    return rule


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else ""
