"""Regression tests for server-rule variants: a conformance battery, canonical cases, golden histories.

A *factory* is what ``stalesim run --algorithms package.module:function`` takes: a
function ``factory(base) -> algorithms.Rule`` of an optax optimizer ``base``, whose
server policy is its ``policy`` attribute (default ``"fifo"``). Every function here
also takes a built-in algorithm's name (``"dcasgd-a"``) or a ``"module:function"``
reference instead. A test file for a variant::

    import algorithms
    from scenarios.testing import assert_golden, check_rule, compare, replay_case

    def my_rule(base):
        return algorithms.dcasgd(base=base, lam=1.0, adaptive=True)

    def test_conformance():
        check_rule(my_rule)                              # the battery, on sgd, momentum, adam

    def test_golden(golden):                             # golden: the pytest plugin's file path
        assert_golden(replay_case(my_rule, "fifo-hetero-8"), golden)

    def test_lam_matters():
        assert compare("dcasgd-a", my_rule, "fifo-4") is not None

The pieces:

- ``check_rule(factory)``: properties every rule must have (``PROPERTIES``); raises
  ``AssertionError`` with one line per failed property. Its ``jit`` property allows
  the last bits XLA changes under ``jax.jit`` (a * b + c contracted into a fused
  multiply-add, division by a broadcast turned into multiplication by a reciprocal):
  bit for bit equality with op-by-op execution does not hold on the CPU even for
  ``optax.sgd``.
- ``replay_case(factory, name, base)``: a replay of a shipped trace (``cases()``) on a
  tiny workload, evaluated after every applied gradient, with a digest of the
  parameters at each evaluation. It takes a second or two, most of it compiling.
- ``assert_golden(history, path)``: records the history as JSON the first time (or
  with ``STALESIM_UPDATE_GOLDEN=1`` / ``pytest --update-golden``), compares later.
- ``compare(factory_a, factory_b, name)``: where two rules' histories first differ.
- ``scenarios.testing.pytest_plugin``: the ``golden`` and ``stalesim_case`` fixtures and
  ``--update-golden``, active wherever stalesim is installed.
- ``stalesim check package.module:function``: the battery and every case, as a table.

Cases do not depend on the simulator: their traces and data ship as files
(``scenarios/cases/``), and minibatches are drawn by an integer hash, not by
``jax.random``, so a JAX upgrade that changes random bits does not change a case.
"""

from scenarios.testing.battery import PROPERTIES
from scenarios.testing.case_files import (
                         CASES_FOLDER,
                         CASES_PACKAGE,
                         WORKLOAD_FILE,
                         CaseError,
                         case_trace,
                         cases,
                         make_workload_arrays,
                         simulate_case,
                         write_case_files,
)
from scenarios.testing.command import add_subcommand, cmd_check
from scenarios.testing.comparing import Difference, compare
from scenarios.testing.conformance import Outcome, Report, check_rule
from scenarios.testing.factories import BASE_OPTIMIZERS, Factory, base_optimizer
from scenarios.testing.golden import (
                         DEFAULT_RTOL,
                         GOLDEN_FORMAT,
                         GOLDEN_FORMAT_VERSION,
                         RECORDED,
                         UPDATE_ENV,
                         GoldenCheck,
                         GoldenError,
                         GoldenFallbackWarning,
                         assert_golden,
                         recorded_with,
                         versions,
)
from scenarios.testing.inputs import canonical_params
from scenarios.testing.problems import case_problem
from scenarios.testing.replay import CaseHistory, fits, params_digest, replay_case
from scenarios.testing.trees import JIT_RTOL

__all__ = [
    "BASE_OPTIMIZERS", "CaseError", "CaseHistory", "Difference", "GoldenCheck", "GoldenError",
    "GoldenFallbackWarning", "Outcome", "PROPERTIES", "Report", "add_subcommand", "assert_golden", "base_optimizer",
    "canonical_params", "case_problem", "case_trace", "cases", "check_rule", "cmd_check", "compare", "fits",
    "params_digest", "recorded_with", "replay_case", "simulate_case", "versions", "write_case_files",
]
