"""``check_rule``: the conformance battery on every base optimizer, summed up in a ``Report``."""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

from algorithms import RuleError
from scenarios.testing.battery import PROPERTIES, _battery_for_base
from scenarios.testing.factories import Factory, _base_label, _resolve


class Outcome(NamedTuple):
    """One property's result: ``passed`` (``None``: not checked, because a property it
    needs failed), the seconds it took, and what failed (one line)."""

    passed: Optional[bool]
    seconds: float
    detail: str = ""


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
