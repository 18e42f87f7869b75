"""Every rule by name, built from a base optimizer: what the CLI and the conformance
tests iterate over."""

from __future__ import annotations

from typing import Callable

import optax

from .asgd import asgd
from .base import Rule, RuleError
from .buffered import buffered, ssgd
from .dcasgd import dcasgd
from .gsgm import gsgm
from .staleness import hinge, polynomial, staleness_aware_asgd, staleness_weighted

# name -> (factory(base, **options) -> Rule, policy it is meant for)
RULES: dict[str, tuple[Callable[..., Rule], str]] = {
    "asgd": (lambda base, **kw: asgd(base=base, **kw), "fifo"),
    "dcasgd-c": (lambda base, **kw: dcasgd(base=base, adaptive=False, **kw), "fifo"),
    "dcasgd-a": (lambda base, **kw: dcasgd(base=base, adaptive=True, **kw), "fifo"),
    "gsgm": (lambda base, **kw: gsgm(base=base, **kw), "whitelist-wait"),
    "sasgd": (lambda base, **kw: staleness_aware_asgd(base=base, **kw), "fifo"),
    "asgd-poly": (lambda base, **kw: staleness_weighted(asgd(base=base, **kw), polynomial(0.5)), "fifo"),
    "asgd-hinge": (lambda base, **kw: staleness_weighted(asgd(base=base, **kw), hinge(10.0, 4.0)), "fifo"),
    "ssgd": (lambda base, **kw: ssgd(base=base, **kw), "barrier"),
    "fedbuff": (lambda base, buffer_size=4, **kw: buffered(base=base, buffer_size=buffer_size,
                                                           weight=polynomial(0.5), **kw), "buffered:4"),
}


def make_rule(name: str, base: optax.GradientTransformation, **options) -> Rule:
    """The rule called ``name`` on base optimizer ``base``."""
    if name not in RULES:
        raise RuleError(f"algorithm: unknown rule {name!r}; allowed: {', '.join(RULES)}")
    return RULES[name][0](base, **options)
