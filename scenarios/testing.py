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
- ``scenarios.pytest_plugin``: the ``golden`` and ``stalesim_case`` fixtures and
  ``--update-golden``, active wherever stalesim is installed.
- ``stalesim check package.module:function``: the battery and every case, as a table.

Cases do not depend on the simulator: their traces and data ship as files
(``scenarios/cases/``), and minibatches are drawn by an integer hash, not by
``jax.random``, so a JAX upgrade that changes random bits does not change a case.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.resources
import json
import math
import os
import platform
import time
import warnings
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

import numpy as np

from algorithms.events import ReplayError
from algorithms.history import History

UPDATE_ENV = "STALESIM_UPDATE_GOLDEN"
GOLDEN_FORMAT = "stalesim-golden"
GOLDEN_FORMAT_VERSION = 1
DEFAULT_RTOL = 1e-5

# The base optimizers a rule is checked on and cases are replayed with, by name.
BASE_OPTIMIZERS = {"sgd": "optax.sgd(0.05)", "momentum": "optax.sgd(0.005, momentum=0.9)", "adam": "optax.adam(0.01)"}

Factory = Union[Callable[[Any], Any], str]


def base_optimizer(base):
    """The optax optimizer called ``base`` (a key of ``BASE_OPTIMIZERS``), or ``base``
    itself when it already is one."""
    if hasattr(base, "init") and hasattr(base, "update"):
        return base
    if base not in BASE_OPTIMIZERS:
        from algorithms import RuleError

        raise RuleError(f"base: must be one of {', '.join(BASE_OPTIMIZERS)} or an optax optimizer, got {base!r}")
    import optax

    if base == "sgd":
        return optax.sgd(0.05)
    if base == "momentum":
        return optax.sgd(0.005, momentum=0.9)
    return optax.adam(0.01)


def _base_label(base) -> str:
    return base if isinstance(base, str) else type(base).__name__


# ====================================================================== factories
class _Factory(NamedTuple):
    build: Callable  # base -> Rule
    label: str  # for messages
    policy: object  # the declared server policy


def _resolve(factory: Factory) -> _Factory:
    """A factory, a built-in algorithm's name, or ``module:function``, as a ``_Factory``."""
    from algorithms import RuleError

    if isinstance(factory, _Factory):
        return factory
    if isinstance(factory, str):
        if ":" in factory:
            module_name, _, function_name = factory.partition(":")
            try:
                module = importlib.import_module(module_name)
            except Exception as e:  # noqa: BLE001 - any import failure is the user's module
                raise RuleError(f"algorithm {factory}: cannot import {module_name!r} "
                                f"({type(e).__name__}: {e})") from None
            function = getattr(module, function_name, None)
            if not callable(function):
                raise RuleError(f"algorithm {factory}: {module_name} has no function {function_name!r}")
            return _Factory(function, factory, getattr(function, "policy", "fifo"))
        from algorithms.registry import get, make_rule

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


def _steps_per_policy(policy) -> tuple[bool, Optional[int], str]:
    """(known, the gradients_per_step a rule needs under ``policy``, its name)."""
    from sim import make_policy

    try:
        made = make_policy(policy)
    except Exception:  # noqa: BLE001 - reported by the caller
        return False, None, repr(policy)
    five, seven = made.gradients_per_version(5), made.gradients_per_version(7)
    return True, (None if (five, seven) == (5, 7) else int(five)), made.name


def _describe_steps(k: Optional[int]) -> str:
    return "one step per worker (gradients_per_step None)" if k is None else (
        f"one step per {k} gradients (gradients_per_step {k})")


# ================================================================= the battery
PROPERTIES = {
    "builds": "factory(base) returns an algorithms.Rule",
    "policy": "gradients_per_step agrees with the policy (fifo/whitelist: 1, barrier: None, buffered:K: K)",
    "runs": "init(params, num_workers) and update(...) run, op by op and under jax.jit",
    "structure": "update keeps the tree structure and shapes of the parameters and the state",
    "dtypes": "update keeps the dtypes of the parameters and the state",
    "finite": "parameters stay finite and the state free of NaN on the canonical inputs",
    "jit": "update under jax.jit equals update under jax.disable_jit() from the same inputs (bit for bit, or "
           "within XLA's rounding: 1e-4 of the change the update makes)",
    "no-retrace": "the jitted update traces once across calls with new values",
    "deterministic": "two calls with the same inputs give the same outputs, bit for bit",
    "worker-isolation": "an update for worker i leaves the other workers' rows of per-worker state unchanged",
    "backup": "a rule with uses_backup=False does not read backup",
    "moves": "the parameters change over the updates",
}
_NUM_WORKERS, _OTHER_NUM_WORKERS = 5, 7  # neither is a dimension of the canonical parameters


class Outcome(NamedTuple):
    """One property's result: ``passed`` (``None``: not checked, because a property it
    needs failed), the seconds it took, and what failed (one line)."""

    passed: Optional[bool]
    seconds: float
    detail: str = ""


def canonical_params():
    """The parameters ``check_rule`` updates: a nested dict of float32 arrays, shapes
    (3, 2), (2,) and () (no dimension is 5 or 7, the worker counts it uses)."""
    import jax.numpy as jnp

    rng = np.random.default_rng(7)
    return {"layer": {"b": jnp.zeros((2,), jnp.float32),
                      "w": jnp.asarray(rng.normal(size=(3, 2)), jnp.float32)},
            "scale": jnp.ones((), jnp.float32)}


def _inputs(params, num_steps: int, num_workers: int):
    """Per step: (worker, staleness, grad, backup). Workers come in rounds, each a
    permutation of all workers (what a barrier expects)."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(11)
    workers = np.concatenate([rng.permutation(num_workers) for _ in range(-(-num_steps // num_workers))])
    out = []
    for t in range(num_steps):
        grad = jax.tree_util.tree_map(lambda x: jnp.asarray(rng.normal(size=x.shape), x.dtype), params)
        shift = jax.tree_util.tree_map(lambda x: jnp.asarray(0.01 * rng.normal(size=x.shape), x.dtype), params)
        out.append((int(workers[t]), int(rng.integers(0, 4)), grad, shift))
    return out


def _paths(tree, prefix: str):
    import jax

    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    return [prefix + jax.tree_util.keystr(p) for p, _ in leaves], [x for _, x in leaves], treedef


def _same(a, b) -> bool:
    """Bit for bit: dtype, shape and bytes."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _same_tree(a, b) -> Optional[str]:
    """None if ``a`` and ``b`` are the same pytree bit for bit, else the first differing leaf."""
    names, xs, ta = _paths(a, "")
    _, ys, tb = _paths(b, "")
    if ta != tb:
        return "(tree structure)"
    for name, x, y in zip(names, xs, ys):
        if not _same(x, y):
            return name or "(leaf)"
    return None


def _battery_for_base(made: _Factory, base_name: str, record: Callable) -> None:
    """Run every property on one base; ``record(property, passed, seconds, detail)``."""
    import jax
    import jax.numpy as jnp

    from algorithms import Rule

    failed: set[str] = set()

    def note(prop, passed, seconds, detail=""):
        if passed is False:
            failed.add(prop)
        record(prop, passed, seconds, detail)

    def skip_rest(props):
        for p in props:
            note(p, None, 0.0)

    start = time.perf_counter()
    try:
        rule = made.build(base_optimizer(base_name))
    except Exception as e:  # noqa: BLE001 - the user's factory failed
        note("builds", False, time.perf_counter() - start,
             f"factory(base) raised {type(e).__name__}: {_first_line(e)}")
        return skip_rest([p for p in PROPERTIES if p != "builds"])
    if not isinstance(rule, Rule):
        note("builds", False, time.perf_counter() - start,
             f"factory(base) returned {type(rule).__name__}, not an algorithms.Rule")
        return skip_rest([p for p in PROPERTIES if p != "builds"])
    note("builds", True, time.perf_counter() - start)

    # ---- policy
    start = time.perf_counter()
    known, expected, policy_name = _steps_per_policy(made.policy)
    if not known:
        note("policy", False, 0.0, f"the factory's policy attribute {made.policy!r} is not a policy name "
                                   f"(fifo, whitelist-wait, whitelist-queue, barrier, buffered:K)")
    elif rule.gradients_per_step != expected:
        note("policy", False, time.perf_counter() - start,
             f"policy {policy_name!r} makes {_describe_steps(expected)}, but the rule has gradients_per_step "
             f"{rule.gradients_per_step!r}; set the factory's policy attribute or the rule's gradients_per_step")
    else:
        note("policy", True, time.perf_counter() - start)

    k = rule.gradients_per_step or _NUM_WORKERS
    num_steps = max(3 * _NUM_WORKERS, 2 * k)
    params0 = canonical_params()
    inputs = _inputs(params0, num_steps, _NUM_WORKERS)

    def args_of(state, params, t, backup=None):
        worker, staleness, grad, shift = inputs[t]
        if backup is None:
            backup = jax.tree_util.tree_map(lambda p, s: (p - s).astype(p.dtype), params, shift)
        return (state, params, grad, jnp.int32(worker), jnp.int32(staleness), backup)

    def update(state, params, grad, worker, staleness, backup):
        return rule.update(state, params, grad, worker=worker, staleness=staleness, backup=backup)

    def op_by_op(*args):
        with jax.disable_jit():
            return update(*args)

    # ---- runs: op by op (jax.disable_jit), outputs fed back as the replay does
    start = time.perf_counter()
    steps = []  # (args, (params out, state out))
    state0 = None
    try:
        state0 = rule.init(params0, _NUM_WORKERS)
        jax.tree_util.tree_map(jnp.asarray, state0)  # leaves must be arrays
        state, params = state0, params0
        for t in range(num_steps):
            args = args_of(state, params, t)
            params, state = op_by_op(*args)
            steps.append((args, (params, state)))
    except Exception as e:  # noqa: BLE001 - the user's rule failed
        what = "init(params, 5)" if state0 is None else f"update {len(steps) + 1} (op by op)"
        note("runs", False, time.perf_counter() - start, f"{what} raised {type(e).__name__}: {_first_line(e)}")
        return skip_rest([p for p in PROPERTIES if p not in ("builds", "policy", "runs")])
    eager_seconds = time.perf_counter() - start

    # ---- runs: under jax.jit, outputs fed back (tracing is counted)
    start = time.perf_counter()
    traces = []

    def counted(*args):
        traces.append(1)
        return update(*args)

    jitted = jax.jit(counted)
    jit_outputs = []
    try:
        state, params = state0, params0
        for t in range(num_steps):
            params, state = jitted(*args_of(state, params, t))
            jit_outputs.append((params, state))
    except Exception as e:  # noqa: BLE001
        note("runs", False, eager_seconds + time.perf_counter() - start,
             f"update {len(jit_outputs) + 1} under jax.jit raised {type(e).__name__}: {_first_line(e)}")
        jit_outputs = None
    if jit_outputs is not None:
        note("runs", True, eager_seconds + time.perf_counter() - start)

    # ---- structure, dtypes, finite: on the op-by-op steps
    start = time.perf_counter()
    structure = dtypes = finite = None
    for t, (args, (p_out, s_out)) in enumerate(steps):
        where = f"update {t + 1} (worker {inputs[t][0]})"
        for kind, before, after_ in (("params", args[1], p_out), ("state", args[0], s_out)):
            names, xs, tx = _paths(before, kind)
            _, ys, ty = _paths(after_, kind)
            if tx != ty:
                structure = structure or f"{kind} tree changed at {where}: {tx} became {ty}"
                continue
            for name, x, y in zip(names, xs, ys):
                x, y = jnp.asarray(x), jnp.asarray(y)
                if structure is None and x.shape != y.shape:
                    structure = f"{name} shape {x.shape} became {y.shape} at {where}"
                if dtypes is None and x.dtype != y.dtype:
                    dtypes = f"{name} dtype {x.dtype} became {y.dtype} at {where}"
                if finite is None and jnp.issubdtype(y.dtype, jnp.inexact):
                    if bool(jnp.any(jnp.isnan(y))):
                        finite = f"{name} is NaN after {where}"
                    elif kind == "params" and not bool(jnp.all(jnp.isfinite(y))):
                        finite = f"{name} is infinite after {where}"
    seconds = (time.perf_counter() - start) / 3
    note("structure", structure is None, seconds, structure or "")
    note("dtypes", dtypes is None, seconds, dtypes or "")
    note("finite", finite is None, seconds, finite or "")

    # ---- jit equals op by op, from the same inputs at every step
    retraces = len(traces)
    start = time.perf_counter()
    if jit_outputs is None:
        note("jit", None, 0.0)
    else:
        detail, worst = "", 0.0
        try:
            for t, (args, expected) in enumerate(steps):
                got = jitted(*args)
                for kind, e_tree, g_tree, ref in (("params", expected[0], got[0], args[1]),
                                                  ("state", expected[1], got[1], args[0])):
                    leaf, distance = _compare_trees(e_tree, g_tree, ref)
                    worst = max(worst, distance)
                    if leaf is not None:
                        detail = (f"{kind}{leaf} differs after update {t + 1} (worker {inputs[t][0]}) by "
                                  f"{_distance_text(distance)}: jitted and op by op compute different things (Python "
                                  f"control flow, state or numpy on values?)")
                        break
                if detail:
                    break
        except Exception as e:  # noqa: BLE001
            detail = f"calling the jitted update on update {t + 1}'s inputs raised {type(e).__name__}: {_first_line(e)}"
        note("jit", not detail, time.perf_counter() - start,
             detail or ("bit for bit" if worst == 0 else f"equal up to rounding ({worst:.2g} of the update's change)"))

    # ---- no retrace (meaningful only when the outputs keep their types)
    if jit_outputs is None or structure is not None or dtypes is not None:
        note("no-retrace", None, 0.0)
    else:
        note("no-retrace", retraces == 1, 0.0,
             "" if retraces == 1 else f"traced {retraces} times in {num_steps} calls with new values "
                                        f"(weak types in the state, or a Python value that changes?)")

    # ---- deterministic: the same inputs again
    start = time.perf_counter()
    t = num_steps // 2
    args, expected = steps[t]
    detail = ""
    try:
        leaf = _same_tree(expected, op_by_op(*args))
        if leaf is not None:
            detail = f"op by op, update {t + 1} called twice gave different {leaf}"
        elif jit_outputs is not None:
            leaf = _same_tree(jitted(*args), jitted(*args))
            if leaf is not None:
                detail = f"under jit, update {t + 1} called twice gave different {leaf}"
    except Exception as e:  # noqa: BLE001
        detail = f"calling update {t + 1} again raised {type(e).__name__}: {_first_line(e)}"
    note("deterministic", not detail, time.perf_counter() - start, detail)

    # ---- worker isolation
    start = time.perf_counter()
    detail = "" if structure else _isolation(rule, params0, state0, steps, inputs)
    note("worker-isolation", None if structure else not detail, time.perf_counter() - start, detail)

    # ---- backup (meaningful only when the same inputs give the same outputs)
    start = time.perf_counter()
    detail = ""
    if "deterministic" in failed:
        note("backup", None, 0.0)
    elif not rule.uses_backup:
        args, expected = steps[num_steps // 2]
        other = jax.tree_util.tree_map(lambda p: (p + 1.0).astype(p.dtype), args[1])
        try:
            leaf = _same_tree(expected, op_by_op(*args[:5], other))
        except Exception as e:  # noqa: BLE001
            leaf = f" (update raised {type(e).__name__} with another backup)"
        if leaf is not None:
            detail = (f"the result depends on backup ({leaf.strip()}) but the rule declares uses_backup=False, "
                      f"so a replay passes the current parameters as backup; declare Rule(..., uses_backup=True)")
    if "deterministic" not in failed:
        note("backup", not detail, time.perf_counter() - start, detail)

    # ---- moves
    moved = _same_tree(params0, steps[-1][1][0]) is not None
    note("moves", moved, 0.0, "" if moved else f"the parameters are unchanged after {num_steps} updates")


JIT_RTOL = 1e-4  # how far jit may be from op by op, relative to the change an update makes


def _distance(a, b, before=None) -> float:
    """How far ``b`` is from ``a`` (a leaf after one update, jitted and op by op;
    ``before`` the leaf before it): 0 if bit for bit equal; else the largest absolute
    difference relative to the largest change the update made (``|a - before|``), with
    4 units of the last place of the leaf's magnitude forgiven; ``inf`` for another
    dtype, shape, NaN or inf pattern, or any difference in an integer leaf."""
    import jax.numpy as jnp

    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return math.inf
    if a.tobytes() == b.tobytes():
        return 0.0
    if not jnp.issubdtype(a.dtype, jnp.floating):
        return math.inf
    x, y = a.astype(np.float64), b.astype(np.float64)
    if not (np.array_equal(np.isnan(x), np.isnan(y)) and np.array_equal(np.isinf(x), np.isinf(y))
            and np.array_equal(x[np.isinf(x)], y[np.isinf(y)])):
        return math.inf
    ok = np.isfinite(x)
    r = np.zeros_like(x)
    if before is not None and np.shape(before) == a.shape:
        r = np.asarray(before, np.float64)
        r = np.where(np.isfinite(r), r, 0.0)
    x, y, r = x[ok], y[ok], r[ok]
    diff = np.max(np.abs(x - y), initial=0.0)
    magnitude = max(np.max(np.abs(x), initial=0.0), np.max(np.abs(y), initial=0.0), np.max(np.abs(r), initial=0.0))
    diff = max(0.0, diff - 4 * float(jnp.finfo(a.dtype).eps) * magnitude)
    if diff == 0:
        return 0.0
    change = max(np.max(np.abs(x - r), initial=0.0), np.max(np.abs(y - r), initial=0.0))
    return math.inf if change == 0 else float(diff / change)


def _compare_trees(expected, got, before) -> tuple[Optional[str], float]:
    """(first leaf further than ``JIT_RTOL`` from ``expected``, or None; the largest distance)."""
    names, xs, tx = _paths(expected, "")
    _, ys, ty = _paths(got, "")
    if tx != ty:
        return "(tree structure)", math.inf
    _, rs, tr = _paths(before, "")
    rs = rs if tr == tx else [None] * len(xs)
    worst = 0.0
    for name, x, y, r in zip(names, xs, ys, rs):
        d = _distance(x, y, r)
        worst = max(worst, d)
        if d > JIT_RTOL:
            return name or "(leaf)", d
    return None, worst


def _distance_text(d: float) -> str:
    return "type, shape, NaN/inf pattern or integer value" if math.isinf(d) else f"{d:.3g} of the update's change"


def _isolation(rule, params0, state0, steps, inputs) -> str:
    """Per-worker state: a leaf whose leading dimension follows ``num_workers`` (5 with
    ``init(params, 5)`` and 7 with ``init(params, 7)``). Row j of it belongs to worker j;
    an update for worker i must leave every row j != i unchanged, bit for bit."""
    import jax

    try:
        other = jax.eval_shape(lambda p: rule.init(p, _OTHER_NUM_WORKERS), params0)
    except Exception:  # noqa: BLE001 - a rule that needs at most 5 workers: compare no leaves
        return ""
    names, xs, treedef = _paths(state0, "state")
    _, ys, other_def = _paths(other, "state")
    if treedef != other_def:
        return ""  # the state's layout depends on the number of workers: no leaf can be matched
    per_worker = [i for i, (x, y) in enumerate(zip(xs, ys))
                  if np.ndim(x) >= 1 and np.shape(x)[0] == _NUM_WORKERS and np.shape(y)[0] == _OTHER_NUM_WORKERS]
    for t, (args, (_, s_out)) in enumerate(steps):
        worker = inputs[t][0]
        _, before, d_in = _paths(args[0], "")
        _, after_, d_out = _paths(s_out, "")
        if d_in != treedef or d_out != treedef:
            continue  # reported by structure
        for i in per_worker:
            a, b = np.asarray(before[i]), np.asarray(after_[i])
            if a.shape != b.shape:
                continue
            for j in range(_NUM_WORKERS):
                if j != worker and a[j].tobytes() != b[j].tobytes():
                    return (f"{names[i]} (per worker: leading dimension = num_workers) row {j} changed on "
                            f"update {t + 1}, which was worker {worker}'s")
    return ""


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else ""


class Report(NamedTuple):
    """What ``check_rule`` found: ``outcomes`` maps each property (``PROPERTIES``) to
    its ``Outcome`` over all bases; ``failed`` lists the failed properties."""

    factory: str
    bases: tuple
    outcomes: dict

    @property
    def failed(self) -> list[str]:
        return [p for p, o in self.outcomes.items() if o.passed is False]

    @property
    def passed(self) -> bool:
        return not self.failed

    def lines(self) -> list[str]:
        """One line per failed property, naming it, the bases it failed on, and the first failure."""
        return [f"{p}: {self.outcomes[p].detail}" for p in self.failed]


def check_rule(factory: Factory, bases: Sequence = ("sgd", "momentum", "adam"), *, raise_on_failure: bool = True
               ) -> Report:
    """Check the properties every server rule must have (``PROPERTIES``), on each base.

    ``factory(base) -> Rule`` (or an algorithm name, or ``"module:function"``) is built
    on every base optimizer in ``bases`` (names of ``BASE_OPTIMIZERS`` or optax
    optimizers); each rule is initialised for 5 workers and updated 15 times (more for
    a buffer larger than 7) on ``canonical_params()`` with fixed random gradients,
    workers, staleness and backups, op by op and under ``jax.jit``.

    Per-worker state is any state leaf whose leading dimension follows the number of
    workers (it is 5 for ``init(params, 5)`` and 7 for ``init(params, 7)``); its row j
    is worker j's, and an update for worker i must not change another row.

    Returns a ``Report`` (property -> ``Outcome(passed, seconds, detail)``). Raises
    ``AssertionError`` listing every failed property, one line each, unless
    ``raise_on_failure=False``. A property that needs a failed one is not checked
    (``passed=None``): a factory that raises fails ``builds`` alone.
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not the kit's
    made = _resolve(factory)
    bases = tuple(bases)
    if not bases:
        from algorithms import RuleError

        raise RuleError("bases: give at least one base optimizer")
    per_prop: dict[str, list] = {p: [] for p in PROPERTIES}  # (base, passed, seconds, detail)
    for base in bases:
        label = _base_label(base)

        def record(prop, passed, seconds, detail, label=label):
            per_prop[prop].append((label, passed, seconds, detail))
        _battery_for_base(made, base, record)
    outcomes = {}
    for prop, results in per_prop.items():
        seconds = sum(r[2] for r in results)
        failed = [r for r in results if r[1] is False]
        if failed:
            where = ", ".join(r[0] for r in failed)
            outcomes[prop] = Outcome(False, seconds, f"[{where}] {failed[0][3]}")
        elif results and all(r[1] is None for r in results):
            outcomes[prop] = Outcome(None, seconds, "not checked")
        else:
            outcomes[prop] = Outcome(True, seconds, "")
    report = Report(made.label, tuple(_base_label(b) for b in bases), outcomes)
    if raise_on_failure and report.failed:
        unchecked = [p for p, o in outcomes.items() if o.passed is None]
        lines = [f"check_rule({made.label}): {len(report.failed)} of {len(PROPERTIES)} properties failed "
                 f"(bases {', '.join(report.bases)})", *("  " + line for line in report.lines())]
        if unchecked:
            lines.append(f"  not checked, as they need a failed property: {', '.join(unchecked)}")
        raise AssertionError("\n".join(lines))
    return report


# ===================================================================== cases
class _TraceCase(NamedTuple):
    description: str
    spec: Callable  # () -> sim.ClusterSpec
    policy: str
    num_updates: int
    seed: int = 0


def _spec(num_workers: int, speeds=(), mttf: float = 0.0, downtime: float = 1.0):
    def make():
        from sim import ClusterSpec, ComputeModel, FailureModel

        return ClusterSpec(num_workers=num_workers, compute=ComputeModel("exponential"), speeds=tuple(speeds),
                           failures=FailureModel(mttf, downtime))
    return make


_TRACES: dict[str, _TraceCase] = {
    "fifo-4": _TraceCase("4 equal workers, exponential compute times, fifo", _spec(4), "fifo", 80),
    "fifo-hetero-8": _TraceCase("8 workers with speeds log-spaced over 4x, exponential, fifo",
                                _spec(8, speeds=tuple(float(x) for x in np.geomspace(0.25, 1.0, 8))), "fifo", 96),
    "whitelist-4": _TraceCase("4 workers with speeds 1, 1, 2, 4, GSGM's white list (whitelist-wait)",
                              _spec(4, speeds=(1.0, 1.0, 2.0, 4.0)), "whitelist-wait", 80),
    "barrier-4": _TraceCase("4 equal workers, synchronous (barrier): one step per 4 gradients", _spec(4),
                            "barrier", 80),
    "buffered-4": _TraceCase("4 equal workers, buffered:2 (FedBuff): one step per 2 gradients", _spec(4),
                             "buffered:2", 80),
    "crash-4": _TraceCase("4 equal workers, fifo; workers crash (mean time to failure 8 s) and come back after "
                          "2 s, losing their gradient", _spec(4, mttf=8.0, downtime=2.0), "fifo", 80),
}
_WORKLOADS = {"": "least squares, 6 weights, 64 samples, batch 8",
              "-mlp": "MLP 8-16-3 (tanh), softmax cross-entropy, 128 samples, batch 16"}
CASES_PACKAGE = "scenarios"
CASES_FOLDER = "cases"
WORKLOAD_FILE = "workloads.npz"


def cases() -> dict[str, str]:
    """Every canonical case's name, with a line saying what it is: each trace on least
    squares (``"fifo-4"``) and on a small MLP (``"fifo-4-mlp"``)."""
    return {f"{trace}{suffix}": f"{case.description}, {case.num_updates} updates; {workload}"
            for suffix, workload in _WORKLOADS.items() for trace, case in _TRACES.items()}


class CaseError(ReplayError):
    """A case name is unknown, or the case's policy does not fit the rule."""


def _split(name: str) -> tuple[str, str]:
    if not isinstance(name, str) or name not in cases():
        raise CaseError(f"case: unknown {name!r}; allowed: {', '.join(cases())}")
    return (name[:-4], "-mlp") if name.endswith("-mlp") else (name, "")


def _cases_dir() -> Path:
    return Path(str(importlib.resources.files(CASES_PACKAGE) / CASES_FOLDER))


def simulate_case(name: str):
    """The trace of case ``name`` made afresh by the simulator (the shipped file was made so)."""
    from sim import simulate

    case = _TRACES[_split(name)[0]]
    return simulate(case.spec(), policy=case.policy, num_updates=case.num_updates, seed=case.seed)


@lru_cache(maxsize=None)
def case_trace(name: str):
    """The shipped trace of case ``name`` (a ``sim.Trace``), as the simulator made it once."""
    from sim import Trace

    return Trace.load(_cases_dir() / f"{_split(name)[0]}.npz")


def make_workload_arrays() -> dict[str, np.ndarray]:
    """The workloads' data and initial MLP weights, from numpy's PCG64 (seed 2026); the
    shipped ``workloads.npz`` was made so."""
    rng = np.random.default_rng(2026)
    x = rng.normal(size=(64, 6)).astype(np.float32)
    w_true = np.linspace(-1.0, 1.5, 6).astype(np.float32)
    y = (x @ w_true + 0.1 * rng.normal(size=64)).astype(np.float32)
    mx = rng.normal(size=(128, 8)).astype(np.float32)
    teacher = rng.normal(size=(8, 3)).astype(np.float32)
    my = np.argmax(np.tanh(mx @ teacher) + 0.3 * rng.normal(size=(128, 3)), axis=1).astype(np.int32)
    return {"lsq_x": x, "lsq_y": y, "mlp_x": mx, "mlp_y": my,
            "mlp_w1": (rng.normal(size=(8, 16)) / np.sqrt(8)).astype(np.float32),
            "mlp_b1": np.zeros(16, np.float32),
            "mlp_w2": (rng.normal(size=(16, 3)) / 4.0).astype(np.float32),
            "mlp_b2": np.zeros(3, np.float32)}


def write_case_files(folder=None) -> list[Path]:
    """(Re)write the case traces and ``workloads.npz`` into ``folder`` (default the
    shipped ``scenarios/cases/``). Only for maintainers: shipped cases must not change."""
    folder = Path(folder) if folder is not None else _cases_dir()
    folder.mkdir(parents=True, exist_ok=True)
    written = [simulate_case(trace).save(folder / f"{trace}.npz") for trace in _TRACES]
    path = folder / WORKLOAD_FILE
    np.savez_compressed(path, **make_workload_arrays())
    return [*written, path]


@lru_cache(maxsize=None)
def _workload_arrays() -> dict:
    with np.load(_cases_dir() / WORKLOAD_FILE, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _hash_indices(seed, worker, step, batch: int, n: int):
    """``batch`` sample indices in [0, n), a pure integer hash of (seed, worker, step):
    the same on every JAX version (no ``jax.random``)."""
    import jax.numpy as jnp

    u = jnp.uint32
    h = (jnp.asarray(seed).astype(u) * u(0x9E3779B1) ^ jnp.asarray(worker).astype(u) * u(0x85EBCA77)
         ^ jnp.asarray(step).astype(u) * u(0xC2B2AE3D))
    x = h + jnp.arange(batch, dtype=u) * u(0x27D4EB2F)
    x = x ^ (x >> 16)
    x = x * u(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * u(0x846CA68B)
    x = x ^ (x >> 16)
    return (x % u(n)).astype(jnp.int32)


def _lsq_loss(w, batch):
    import jax.numpy as jnp

    x, y = batch
    return jnp.mean((x @ w - y) ** 2)


def _lsq_batch(data, seed, worker, step):
    i = _hash_indices(seed, worker, step, 8, 64)
    return data[0][i], data[1][i]


def _mlp_logits(params, x):
    import jax.numpy as jnp

    return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def _mlp_loss(params, batch):
    import optax

    x, y = batch
    return optax.softmax_cross_entropy_with_integer_labels(_mlp_logits(params, x), y).mean()


def _mlp_batch(data, seed, worker, step):
    i = _hash_indices(seed, worker, step, 16, 128)
    return data[0][i], data[1][i]


@lru_cache(maxsize=None)
def case_problem(workload: str):
    """The ``algorithms.Problem`` of a workload (``""``: least squares, ``"-mlp"``)."""
    import jax
    import jax.numpy as jnp

    from algorithms import Problem

    a = {k: jnp.asarray(v) for k, v in _workload_arrays().items()}
    if workload == "":
        data = (a["lsq_x"], a["lsq_y"])

        @jax.jit
        def eval_fn(w):
            residual = data[0] @ w - data[1]
            return {"loss": jnp.mean(residual ** 2), "accuracy": jnp.mean(jnp.abs(residual) < 0.5)}
        return Problem(_lsq_loss, _lsq_batch, eval_fn, data, jnp.zeros(6, jnp.float32))
    data = (a["mlp_x"], a["mlp_y"])

    @jax.jit
    def eval_mlp(params):
        logits = _mlp_logits(params, data[0])
        import optax
        return {"loss": optax.softmax_cross_entropy_with_integer_labels(logits, data[1]).mean(),
                "accuracy": jnp.mean(jnp.argmax(logits, axis=1) == data[1])}
    params0 = {k: a[f"mlp_{k}"] for k in ("w1", "b1", "w2", "b2")}
    return Problem(_mlp_loss, _mlp_batch, eval_mlp, data, params0)


def params_digest(params) -> str:
    """A short sha256 digest of a parameter pytree: every leaf's dtype, shape and bytes."""
    import jax

    h = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(params):
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def _params_norm(params) -> float:
    import jax

    return float(math.sqrt(sum(float(np.sum(np.square(np.asarray(x, np.float64))))
                               for x in jax.tree_util.tree_leaves(params))))


def _fit(rule, name: str, label: str) -> None:
    trace = case_trace(name)
    needs = rule.gradients_per_step if rule.gradients_per_step is not None else trace.num_workers
    if needs != trace.gradients_per_version:
        fitting = [c for c in cases() if _steps_fit(rule, c)]
        raise CaseError(
            f"case {name}: its policy {trace.policy!r} makes one step per {trace.gradients_per_version} "
            f"gradient(s), but rule {label} has gradients_per_step {rule.gradients_per_step!r}; cases that fit "
            f"this rule: {', '.join(fitting) or 'none'}")


def _steps_fit(rule, name: str) -> bool:
    trace = case_trace(name)
    needs = rule.gradients_per_step if rule.gradients_per_step is not None else trace.num_workers
    return needs == trace.gradients_per_version


def fits(factory: Factory, name: str, base="sgd") -> bool:
    """Whether case ``name``'s policy fits the rule ``factory(base)`` builds (a barrier
    needs ``gradients_per_step=None``, ``buffered:K`` needs K, the others 1)."""
    _split(name)
    return _steps_fit(_build(_resolve(factory), base), name)


def _build(made: _Factory, base):
    from algorithms import Rule, RuleError

    try:
        rule = made.build(base_optimizer(base))
    except RuleError:
        raise
    except Exception as e:  # noqa: BLE001 - the user's factory
        raise RuleError(f"builds: {made.label}(base) raised {type(e).__name__}: {_first_line(e)}") from None
    if not isinstance(rule, Rule):
        raise RuleError(f"builds: {made.label}(base) returned {type(rule).__name__}, not an algorithms.Rule")
    return rule


@dataclass
class CaseHistory(History):
    """A case's replay: an ``algorithms.History`` (evaluated after every applied
    gradient, with the final ``params``) plus, per evaluation, ``param_norm`` (the L2
    norm of all parameters) and ``digest`` (``params_digest``), and which ``case``,
    ``base`` and ``rule`` made it."""

    case: str = ""
    base: str = ""
    rule: str = ""
    param_norm: np.ndarray = field(default=None, repr=False)
    digest: tuple = field(default=(), repr=False)


def replay_case(factory: Factory, name: str = "fifo-4", base="sgd", *, seed: int = 0) -> CaseHistory:
    """Replay case ``name`` (``cases()``) with the rule ``factory(base)``; evaluates after
    every applied gradient. ``base`` is a name of ``BASE_OPTIMIZERS`` or an optax
    optimizer; ``seed`` the replay's minibatch seed. A policy that does not fit the rule
    raises ``CaseError`` listing the cases that do."""
    trace_name, workload = _split(name)
    made = _resolve(factory)
    rule = _build(made, base)
    _fit(rule, name, made.label)
    from algorithms import replay

    problem = case_problem(workload)
    norms, digests = [], []
    evaluate = problem.eval_fn

    def eval_fn(params):
        metrics = evaluate(params)
        norms.append(_params_norm(params))
        digests.append(params_digest(params))
        return metrics
    history = replay(case_trace(name), rule, problem._replace(eval_fn=eval_fn), eval_every=1, seed=seed,
                     keep_params=True)
    n = len(history.update)
    return CaseHistory(**{f.name: getattr(history, f.name) for f in fields(History)}, case=name,
                       base=_base_label(base), rule=made.label, param_norm=np.asarray(norms[:n]),
                       digest=tuple(digests[:n]))


# ===================================================================== comparing
_METRICS = ("update", "sim_time", "loss", "accuracy", "param_norm", "digest")


def _rows(history) -> tuple[list[str], list[list]]:
    """The evaluations of a ``CaseHistory`` or an ``algorithms.History`` as rows."""
    inner = history
    columns = [("update", [int(u) for u in inner.update]), ("sim_time", [float(x) for x in inner.sim_time]),
               ("loss", [float(x) for x in inner.loss]), ("accuracy", [float(x) for x in inner.accuracy])]
    if isinstance(history, CaseHistory):
        columns += [("param_norm", [float(x) for x in history.param_norm]), ("digest", list(history.digest))]
    names = [c[0] for c in columns]
    return names, [list(row) for row in zip(*(c[1] for c in columns))]


class Difference(NamedTuple):
    """Where two histories first differ: at evaluation ``update`` (applied gradients so
    far), in ``metric``, values ``a`` and ``b``; ``largest`` maps each numeric metric to
    its largest absolute difference over the evaluations both have."""

    update: int
    metric: str
    a: Any
    b: Any
    largest: dict


def _first_difference(names, rows_a, rows_b, close=None):
    """(index, metric, a, b) of the first difference, or None; ``close(a, b)`` for floats."""
    for i in range(max(len(rows_a), len(rows_b))):
        if i >= len(rows_a) or i >= len(rows_b):
            return i, "evaluations", len(rows_a), len(rows_b)
        for j, metric in enumerate(names):
            a, b = rows_a[i][j], rows_b[i][j]
            if isinstance(a, float) and isinstance(b, float) and close is not None:
                if not close(a, b):
                    return i, metric, a, b
            elif a != b:
                return i, metric, a, b
    return None


def compare(factory_a: Factory, factory_b: Factory, name: str = "fifo-4", base="sgd") -> Optional[Difference]:
    """``None`` if the two rules give identical histories on case ``name`` (every
    evaluation's loss, accuracy and parameter digest, bit for bit), else a
    ``Difference`` at the first update where they differ."""
    a = replay_case(factory_a, name, base)
    b = replay_case(factory_b, name, base)
    names, rows_a = _rows(a)
    _, rows_b = _rows(b)
    first = _first_difference(names, rows_a, rows_b)
    if first is None and a.diverged == b.diverged:
        return None
    largest = {}
    for j, metric in enumerate(names):
        if metric in ("update", "sim_time", "digest"):
            continue
        diffs = [abs(ra[j] - rb[j]) for ra, rb in zip(rows_a, rows_b)]
        largest[metric] = max(diffs) if diffs else 0.0
    if first is None:
        return Difference(int(rows_a[-1][0]) if rows_a else 0, "diverged", a.diverged, b.diverged, largest)
    i, metric, va, vb = first
    rows = rows_a if i < len(rows_a) else rows_b
    update = int(rows[i][0]) if i < len(rows) else int(rows[-1][0])
    return Difference(update, metric, va, vb, largest)


# ===================================================================== golden
class GoldenError(AssertionError):
    """A golden file is corrupt or not a stalesim golden history."""


class GoldenFallbackWarning(UserWarning):
    """A golden history was compared within a tolerance, not bit for bit, because it was
    recorded on another platform or JAX version."""


class GoldenCheck(NamedTuple):
    """What ``assert_golden`` did: ``mode`` is ``"recorded"``, ``"exact"`` (bit for bit)
    or ``"rtol"`` (within ``rtol``, recorded elsewhere)."""

    path: Path
    mode: str
    rtol: Optional[float] = None


RECORDED: list[Path] = []  # golden files written in this process (the pytest plugin lists them)


def versions() -> dict:
    """What made a history: jax, jaxlib, numpy, stalesim versions and the platform
    (OS, machine, JAX backend and device kind)."""
    import jax

    try:
        import jaxlib

        jaxlib_version = getattr(jaxlib, "__version__", None) or jaxlib.version.__version__
    except Exception:  # noqa: BLE001
        jaxlib_version = "unknown"
    try:
        from importlib.metadata import version

        stalesim_version = version("stalesim")
    except Exception:  # noqa: BLE001
        stalesim_version = "unknown"
    device = jax.devices()[0]
    return {"jax": jax.__version__, "jaxlib": jaxlib_version, "numpy": np.__version__,
            "stalesim": stalesim_version,
            "platform": f"{platform.system()} {platform.machine()}, {jax.default_backend()} "
                        f"({getattr(device, 'device_kind', device.platform)})"}


def _updating() -> bool:
    return os.environ.get(UPDATE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _describe_versions(v: dict) -> str:
    return (f"jax {v.get('jax')}, jaxlib {v.get('jaxlib')}, numpy {v.get('numpy')}, stalesim {v.get('stalesim')} "
            f"on {v.get('platform')}")


_HOW = f"re-record it with {UPDATE_ENV}=1 (or pytest --update-golden) if the change is intended"


def _write_golden(history, path: Path) -> None:
    names, rows = _rows(history)
    inner = history
    header = {"format": GOLDEN_FORMAT, "format_version": GOLDEN_FORMAT_VERSION, "recorded_with": versions()}
    if isinstance(history, CaseHistory):
        header.update(case=history.case, base=history.base, rule=history.rule)
    elif getattr(inner, "params", None) is not None:
        header["final_digest"] = params_digest(inner.params)
    header.update(diverged=bool(inner.diverged), diverged_at=inner.diverged_at, metrics=names,
                  evaluations="@ROWS@")
    body = ",\n".join("    " + json.dumps(row) for row in rows)
    text = json.dumps(header, indent=2).replace('"@ROWS@"', "[\n" + body + "\n  ]") + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text)
    tmp.replace(path)
    RECORDED.append(path)


def _read_golden(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise GoldenError(f"golden {path}: not readable JSON ({type(e).__name__}: {_first_line(e)}); delete it "
                          f"or re-record it with {UPDATE_ENV}=1 (or pytest --update-golden)") from None
    if not isinstance(data, dict) or data.get("format") != GOLDEN_FORMAT:
        raise GoldenError(f"golden {path}: not a stalesim golden history (no \"format\": \"{GOLDEN_FORMAT}\"); "
                          f"delete it or re-record it with {UPDATE_ENV}=1 (or pytest --update-golden)")
    if data.get("format_version") != GOLDEN_FORMAT_VERSION:
        raise GoldenError(f"golden {path}: format version {data.get('format_version')!r}, this stalesim reads "
                          f"{GOLDEN_FORMAT_VERSION}; re-record it with {UPDATE_ENV}=1 (or pytest --update-golden)")
    ok = (isinstance(data.get("metrics"), list) and isinstance(data.get("evaluations"), list)
          and isinstance(data.get("recorded_with"), dict)
          and all(isinstance(r, list) and len(r) == len(data["metrics"]) for r in data["evaluations"]))
    if not ok:
        raise GoldenError(f"golden {path}: corrupt (metrics, evaluations or recorded_with missing or malformed); "
                          f"delete it or re-record it with {UPDATE_ENV}=1 (or pytest --update-golden)")
    return data


def assert_golden(history, path, rtol: Optional[float] = None) -> GoldenCheck:
    """Record ``history`` at ``path`` (JSON) the first time, or when
    ``STALESIM_UPDATE_GOLDEN=1`` (``pytest --update-golden``); else compare with it.

    ``history`` is a ``replay_case`` result (per evaluation: update, simulated time,
    loss, accuracy, parameter norm and digest) or any ``algorithms.History`` (the same
    without norm and digest; the final parameters' digest when it kept them). The file
    also records the versions of jax, jaxlib, numpy and stalesim and the platform.

    The comparison is bit for bit when the platform and the jax and jaxlib versions
    match the recorded ones; otherwise it falls back to ``rtol`` (default 1e-5) on the
    numbers, skips the digests, and warns ``GoldenFallbackWarning``. A mismatch raises
    ``AssertionError`` naming the first differing update and metric, both values, and
    both sets of versions. Only ``path`` is written (through ``path`` + ``.part``,
    renamed).
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not the kit's
    path = Path(path)
    if path.suffix != ".json":
        raise GoldenError(f"golden {path}: the path must end in .json")
    if _updating() or not path.exists():
        _write_golden(history, path)
        return GoldenCheck(path, "recorded")
    data = _read_golden(path)
    names, rows = _rows(history)
    inner = history
    recorded, now = data["recorded_with"], versions()
    exact = all(recorded.get(k) == now[k] for k in ("platform", "jax", "jaxlib"))
    tolerance = DEFAULT_RTOL if rtol is None else float(rtol)
    where = (f"recorded with {_describe_versions(recorded)}; now {_describe_versions(now)}")
    if data["metrics"] != names:
        raise AssertionError(f"golden {path}: records {', '.join(data['metrics'])} per evaluation, this history "
                             f"has {', '.join(names)} (a replay_case history against a plain History?); {_HOW}")
    if exact:
        first = _first_difference(names, data["evaluations"], rows)
        how = "bit for bit"
    else:
        keep = [j for j, m in enumerate(names) if m != "digest"]
        first = _first_difference([names[j] for j in keep], [[r[j] for j in keep] for r in data["evaluations"]],
                                  [[r[j] for j in keep] for r in rows],
                                  close=lambda a, b: math.isclose(a, b, rel_tol=tolerance, abs_tol=0.0))
        how = f"within rtol {tolerance:g} (fell back from bit for bit: platform or JAX version differs)"
    if first is not None:
        i, metric, a, b = first
        rows_at = data["evaluations"] if i < len(data["evaluations"]) else rows
        update = rows_at[i][0] if i < len(rows_at) else "end"
        if metric == "evaluations":
            what = f"the recorded history has {a} evaluations, this one {b} (first missing at update {update})"
        else:
            what = f"first difference at update {update}, {metric}: recorded {a!r}, now {b!r}"
        raise AssertionError(f"golden {path}: {what}; compared {how}; {where}; {_HOW}")
    if bool(data.get("diverged")) != bool(inner.diverged):
        raise AssertionError(f"golden {path}: recorded diverged={data.get('diverged')}, now {inner.diverged}; "
                             f"{where}; {_HOW}")
    final = data.get("final_digest")
    if exact and final is not None and getattr(inner, "params", None) is not None:
        if params_digest(inner.params) != final:
            raise AssertionError(f"golden {path}: first difference at the end, final parameters' digest: recorded "
                                 f"{final!r}, now {params_digest(inner.params)!r}; compared bit for bit; {where}; "
                                 f"{_HOW}")
    if not exact:
        warnings.warn(GoldenFallbackWarning(f"golden {path}: compared within rtol {tolerance:g}, not bit for bit "
                                            f"({where})"), stacklevel=2)
        return GoldenCheck(path, "rtol", tolerance)
    return GoldenCheck(path, "exact")


# ===================================================================== command line
def add_subcommand(sub) -> None:
    """Add ``check`` to an argparse subparsers object (the ``stalesim`` command's)."""
    p = sub.add_parser(
        "check", help="check a rule: the conformance battery and every canonical case",
        description="Run the conformance battery (scenarios.testing.PROPERTIES) on each base optimizer, then "
                    "replay every canonical case whose policy fits the rule, and print a table. Exit code 1 "
                    "if anything failed.")
    p.add_argument("algorithm", help="package.module:function (function(base) -> Rule, policy from its policy "
                                     "attribute), or a built-in algorithm's name")
    p.add_argument("--base", default="sgd,momentum,adam",
                   help="base optimizers for the battery, comma-separated (default: sgd,momentum,adam); the "
                        "cases replay on the first")
    p.add_argument("--cases", default="all", help="comma-separated case names, or all (default), or none")
    p.set_defaults(func=cmd_check)


def cmd_check(args) -> int:
    from algorithms import RuleError

    bases = [b.strip() for b in args.base.split(",") if b.strip()]
    for b in bases:
        if b not in BASE_OPTIMIZERS:
            raise RuleError(f"base: must be one of {', '.join(BASE_OPTIMIZERS)}, got {b!r}")
    if not bases:
        raise RuleError("base: give at least one of " + ", ".join(BASE_OPTIMIZERS))
    names = list(cases()) if args.cases == "all" else (
        [] if args.cases == "none" else [c.strip() for c in args.cases.split(",") if c.strip()])
    for c in names:
        _split(c)
    made = _resolve(args.algorithm)
    print(f"stalesim check {made.label}  (policy {made.policy}; battery on {', '.join(bases)}; "
          f"cases on {bases[0]})", flush=True)
    print(f"{'property / case':24s} {'result':6s} {'time':>8s}")
    failures = 0

    def row(name, result, seconds, detail=""):
        time_text = f"{seconds:7.2f}s" if seconds is not None else f"{'-':>8s}"
        print(f"{name:24s} {result:6s} {time_text}" + (f"  {detail}" if detail else ""), flush=True)

    report = check_rule(made, bases, raise_on_failure=False)
    for prop, outcome in report.outcomes.items():
        result = {True: "pass", False: "FAIL", None: "skip"}[outcome.passed]
        failures += outcome.passed is False
        row(prop, result, outcome.seconds, outcome.detail if outcome.passed is not True else "")
    rule = None
    if names and report.outcomes["builds"].passed:
        rule = _build(made, bases[0])
    for name in names:
        if rule is None:
            row(name, "skip", None, "the factory does not build a rule")
            continue
        if not _steps_fit(rule, name):
            row(name, "skip", None, f"policy {case_trace(name).policy} does not fit gradients_per_step "
                                    f"{rule.gradients_per_step!r}")
            continue
        start = time.perf_counter()
        try:
            h = replay_case(made, name, bases[0])
            ok = not h.diverged
            detail = "" if ok else f"diverged at update {h.diverged_at}"
        except Exception as e:  # noqa: BLE001 - reported in the table
            ok, detail = False, f"{type(e).__name__}: {_first_line(e)}"
        failures += not ok
        row(name, "pass" if ok else "FAIL", time.perf_counter() - start,
            detail if not ok else f"final loss {h.loss[-1]:.4g}")
    print(f"{'all passed' if not failures else f'{failures} failed'}")
    return 0 if not failures else 1


__all__ = [
    "BASE_OPTIMIZERS", "CaseError", "CaseHistory", "Difference", "GoldenCheck", "GoldenError",
    "GoldenFallbackWarning", "Outcome", "PROPERTIES", "Report", "add_subcommand", "assert_golden", "base_optimizer",
    "canonical_params", "case_problem", "case_trace", "cases", "check_rule", "cmd_check", "compare", "fits",
    "params_digest", "replay_case", "simulate_case", "versions", "write_case_files",
]
