"""algorithms: server rules as pure JAX functions, and the replay engine.

Never imports ``sim`` or ``simpy``: a trace reaches it as arrays.
"""

from .asgd import AsgdState, asgd
from .base import Rule, RuleError, base_init, base_step
from .buffered import BufferedState, buffered, ssgd
from .dcasgd import DcasgdState, dcasgd
from .gsgm import GsgmState, gsgm
from .registry import RULES, make_rule
from .replay import History, ReplayError, Schedule, compile_schedule, replay, replay_seeds, updates_per_second
from .staleness import (WEIGHTS, constant, hinge, inverse, polynomial, staleness_aware_asgd,
                        staleness_weighted)

__all__ = [
    "AsgdState", "BufferedState", "DcasgdState", "GsgmState", "History", "RULES", "ReplayError", "Rule",
    "RuleError", "Schedule", "WEIGHTS", "asgd", "base_init", "base_step", "buffered", "compile_schedule",
    "constant", "dcasgd", "gsgm", "hinge", "inverse", "make_rule", "polynomial", "replay", "replay_seeds",
    "ssgd", "staleness_aware_asgd", "staleness_weighted", "updates_per_second",
]
