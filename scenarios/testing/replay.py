"""``replay_case``: a rule replayed on a canonical case, with the parameters' norm and digest at every evaluation."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, fields

import jax
import numpy as np

from algorithms import replay
from algorithms.history import History
from scenarios.testing.case_files import CaseError, _split, case_trace, cases
from scenarios.testing.factories import Factory, _base_label, _build, _resolve
from scenarios.testing.problems import case_problem


def params_digest(params) -> str:
    """A short sha256 digest of a parameter pytree: every leaf's dtype, shape and bytes."""

    h = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(params):
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def _params_norm(params) -> float:

    return float(math.sqrt(sum(float(np.sum(np.square(np.asarray(x, np.float64))))
                               for x in jax.tree_util.tree_leaves(params))))


def _fit(rule, name: str, label: str) -> None:
    if not _steps_fit(rule, name):
        trace = case_trace(name)
        fitting = [c for c in cases() if _steps_fit(rule, c)]
        raise CaseError(
            f"case {name}: its policy {trace.policy!r} makes one step per {trace.gradients_per_version} "
            f"gradient(s), but rule {label} has gradients_per_version {rule.gradients_per_version!r}; cases that fit "
            f"this rule: {', '.join(fitting) or 'none'}")


def _steps_fit(rule, name: str) -> bool:
    trace = case_trace(name)
    needs = rule.gradients_per_version if rule.gradients_per_version is not None else trace.num_workers
    return needs == trace.gradients_per_version


def fits(factory: Factory, name: str, base="sgd") -> bool:
    """Whether case ``name``'s policy fits the rule ``factory(base)`` builds (a barrier
    needs ``gradients_per_version=None``, ``buffered:K`` needs K, the others 1)."""
    _split(name)
    return _steps_fit(_build(_resolve(factory), base), name)


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
