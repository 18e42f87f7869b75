"""The conformance properties (``PROPERTIES``), checked on the rule that one base optimizer builds."""

from __future__ import annotations

import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from algorithms import Rule
from scenarios.testing.factories import _Factory, _first_line, base_optimizer
from scenarios.testing.inputs import (
    _NUM_WORKERS,
    _OTHER_NUM_WORKERS,
    _inputs,
    canonical_params,
)
from scenarios.testing.trees import _compare_trees, _distance_text, _paths, _same_tree
from sim import make_policy

PROPERTIES = {
    "builds": "factory(base) returns an algorithms.Rule",
    "policy": "gradients_per_version agrees with the policy (fifo/whitelist: 1, barrier: None, buffered:K: K)",
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


def _steps_per_policy(policy) -> tuple[bool, Optional[int], str]:
    """(known, the gradients_per_version a rule needs under ``policy``, its name)."""

    try:
        made = make_policy(policy)
    except Exception:  # noqa: BLE001 - reported by the caller
        return False, None, repr(policy)
    five, seven = made.gradients_per_version(5), made.gradients_per_version(7)
    return True, (None if (five, seven) == (5, 7) else int(five)), made.name


def _describe_steps(k: Optional[int]) -> str:
    return "one step per worker (gradients_per_version None)" if k is None else (
        f"one step per {k} gradients (gradients_per_version {k})")


def _battery_for_base(made: _Factory, base_name: str, record: Callable) -> None:
    """Run every property on one base; ``record(property, passed, seconds, detail)``."""


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
    elif rule.gradients_per_version != expected:
        note("policy", False, time.perf_counter() - start,
             f"policy {policy_name!r} makes {_describe_steps(expected)}, but the rule has gradients_per_version "
             f"{rule.gradients_per_version!r}; set the factory's policy attribute or the rule's gradients_per_version")
    else:
        note("policy", True, time.perf_counter() - start)

    k = rule.gradients_per_version or _NUM_WORKERS
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


def _isolation(rule, params0, state0, steps, inputs) -> str:
    """Per-worker state: a leaf whose leading dimension follows ``num_workers`` (5 with
    ``init(params, 5)`` and 7 with ``init(params, 7)``). Row j of it belongs to worker j;
    an update for worker i must leave every row j != i unchanged, bit for bit."""

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
