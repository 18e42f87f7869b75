"""algorithms: server rules as pure JAX functions, their registry, and the replay engine.

Of ``sim`` it imports only the JAX-free trace contract (``sim.events``) and validation
helper (``sim.checks``): a trace reaches it as arrays.
"""

from types import ModuleType as _ModuleType

from sim.events import ReplayError

from .asgd import AsgdState, asgd
from .base import Rule, RuleError, base_init, base_step
from .buffered import BufferedState, buffered, ssgd
from .dcasgd import DcasgdState, dcasgd
from .declaration import BASES, Algorithm, Base, Hyperparameter
from .gsgm import GsgmState, gsgm
from .history import History, updates_per_second
from .registry import ALGORITHMS, make_rule
from .replaying import Problem, replay, replay_seeds
from .schedule import Schedule, compile_schedule
from .staleness import constant, hinge, inverse, polynomial, staleness_aware_asgd, staleness_weighted

# everything imported above, less the submodules importing bound here (``registry`` included)
__all__ = sorted(name for name, value in globals().items()
                 if not name.startswith("_") and not isinstance(value, _ModuleType))
