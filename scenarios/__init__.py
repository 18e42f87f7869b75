"""scenarios: experiments on the simulator — data and models, named experiments, tuning, reports, the CLI and the testing kit.

The Python API (the command line's, from a notebook): ``run``, ``reproduce``, ``sweep``
and ``load`` return an ``Experiment`` (its table, tidy records, a pandas DataFrame,
its figures); ``EXPERIMENTS`` are the named experiments.
"""

from scenarios.numerics import use_consistent_math

# XLA:CPU's math the same on every x86-64 CPU: the flag goes into XLA_FLAGS here, before
# any of stalesim's code runs a JAX computation (scenarios/numerics.py, docs/reproducibility.md).
use_consistent_math()

from scenarios.api import Experiment, load, reproduce, run, sweep  # noqa: E402 - after the flag, on purpose
from scenarios.errors import ConfigError  # noqa: E402
from scenarios.experiments.catalogue import EXPERIMENTS  # noqa: E402
from scenarios.experiments.config import ExperimentConfig  # noqa: E402

__all__ = ["ConfigError", "Experiment", "ExperimentConfig", "EXPERIMENTS", "load", "reproduce", "run", "sweep"]
