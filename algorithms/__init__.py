"""algorithms: server rules as pure JAX functions, and the replay engine.

Never imports ``sim`` or ``simpy``: a trace reaches it as arrays.
"""

import importlib
import sys
import types

# Each exported name loads its module on first use (PEP 562), so importing a pure-Python
# module of this package (``algorithms.events``, as ``sim`` does) does not import JAX.
_EXPORTS = {
    "asgd": ("AsgdState", "asgd"),
    "base": ("Rule", "RuleError", "base_init", "base_step"),
    "buffered": ("BufferedState", "buffered", "ssgd"),
    "dcasgd": ("DcasgdState", "dcasgd"),
    "gsgm": ("GsgmState", "gsgm"),
    "declaration": ("BASES", "Algorithm", "Base", "Hyperparameter"),
    "registry": ("ALGORITHMS", "make_rule"),
    "events": ("ReplayError",),
    "schedule": ("Schedule", "compile_schedule"),
    "history": ("History", "updates_per_second"),
    "replaying": ("Problem", "replay", "replay_seeds"),
    "staleness": ("constant", "hinge", "inverse", "polynomial", "staleness_aware_asgd", "staleness_weighted"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "ALGORITHMS", "Algorithm", "AsgdState", "BASES", "Base", "BufferedState", "DcasgdState", "GsgmState",
    "History", "Hyperparameter", "Problem", "ReplayError", "Rule", "RuleError", "Schedule", "asgd", "base_init", "base_step", "buffered", "compile_schedule",
    "constant", "dcasgd", "gsgm", "hinge", "inverse", "make_rule", "polynomial", "replay", "replay_seeds",
    "ssgd", "staleness_aware_asgd", "staleness_weighted", "updates_per_second",
]


def __getattr__(name):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *_MODULE_OF})


class _Package(types.ModuleType):
    """Importing a submodule binds it on the package; where the submodule is named like
    what it exports (``asgd``, ``buffered``, ...), the package's name stays the export."""

    def __setattr__(self, name, value):
        if name in _MODULE_OF and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
