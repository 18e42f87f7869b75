"""What an algorithm declares about itself: ``Algorithm``, its ``Hyperparameter``s, and the ``Base`` it runs on.

Each rule file ends with a tuple ``ALGORITHMS`` of these; ``algorithms.registry``
collects them.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Callable, Mapping, NamedTuple, Optional, Union

import optax

from sim.checks import Spec

from .base import Rule, RuleError


class Hyperparameter(NamedTuple):
    """A configuration field an algorithm reads: ``--set NAME=VALUE``."""

    name: str  # the configuration field, e.g. "gsgm_k"
    default: object
    meaning: str  # one line, for docs/configuration.md and --help
    spec: Spec  # what it allows


def learning_rate_in_state(factory: Callable[..., optax.GradientTransformation]) -> Callable[..., optax.GradientTransformation]:
    """``factory`` (``optax.sgd``, ``optax.adam``) with its learning rate held in the optimizer's
    state (``optax.inject_hyperparams``) and its other arguments constants of the program.

    The step is the same, ``updates = -lr * direction``, in float32 either way; but a
    replay's compiled program no longer depends on the rate, so a cell's learning-rate
    candidates and its reported runs share one program (compiled once per command, see
    ``scenarios.experiments.workers.command_cache``) instead of one per rate."""
    static = tuple(name for name in inspect.signature(factory).parameters if name != "learning_rate")
    return optax.inject_hyperparams(factory, static_args=static)


class Base(NamedTuple):
    """A base optimizer by name, with the configured learning rate and momentum."""

    name: str  # one of BASES
    learning_rate: float
    momentum: float = 0.9

    def optimizer(self) -> optax.GradientTransformation:
        """``sgd``: ``optax.sgd(lr)``; ``momentum``: ``optax.sgd(lr, momentum)`` (heavy ball,
        ``v = beta * v + g; w = w - lr * v``); ``adam``: ``optax.adam(lr)``; each with its
        learning rate a value of its state (``learning_rate_in_state``)."""
        if self.name == "sgd":
            return learning_rate_in_state(optax.sgd)(self.learning_rate)
        if self.name == "momentum":
            return learning_rate_in_state(optax.sgd)(self.learning_rate, self.momentum)
        if self.name == "adam":
            return learning_rate_in_state(optax.adam)(self.learning_rate)
        raise RuleError(f"base: must be one of {', '.join(BASES)}, got {self.name!r}")


BASES = ("sgd", "momentum", "adam")


@dataclass(frozen=True)
class Algorithm:
    """An algorithm as stalesim's experiments see it.

    ``build(base, workers, **hyperparameters) -> Rule``, where ``base`` is a ``Base`` and
    the keywords are the declared hyperparameters' configured values. ``policy`` is the
    default server policy, or a function of the hyperparameters' values (GSGM's
    scheduling can be switched off; FedBuff's buffer size is its policy's K).
    """

    name: str
    display: str
    build: Callable[..., Rule]
    policy: Union[str, Callable[[Mapping], str]] = "fifo"
    hyperparameters: tuple = ()
    paper: str = ""
    summary: str = ""
    aliases: tuple = ()
    same_as: tuple = ()  # ((base, other algorithm), ...): bit-identical to the other on that base
    reference: Optional[str] = field(default=None, compare=False)  # module:function of a user's rule

    def policy_for(self, values: Mapping) -> str:
        return self.policy(values) if callable(self.policy) else self.policy

    def rule(self, base: Base, workers: int, values: Mapping) -> Rule:
        """The rule on ``base`` with the hyperparameters' values taken from ``values``: one
        rule per algorithm, base, workers and hyperparameters' values (``built``), so that
        every replay of it shares one compiled engine (``algorithms.engine.engine_for``)."""
        chosen = tuple((h.name, values[h.name]) for h in self.hyperparameters)
        try:
            hash((self, base, workers, chosen))
        except TypeError:  # an unhashable value: nothing to cache it under
            return self.build(base, workers, **dict(chosen))
        return built(self, base, workers, chosen)


@functools.lru_cache(maxsize=64)
def built(algorithm: Algorithm, base: Base, workers: int, hyperparameters: tuple) -> Rule:
    """``algorithm``'s rule, cached on the values it is built from (``Algorithm.rule``)."""
    return algorithm.build(base, workers, **dict(hyperparameters))
