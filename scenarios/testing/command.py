"""The ``stalesim check`` command: the conformance battery and every canonical case, as a table."""

from __future__ import annotations

import time

from algorithms import RuleError
from scenarios.testing.case_files import _split, case_trace, cases
from scenarios.testing.conformance import check_rule
from scenarios.testing.factories import BASE_OPTIMIZERS, _build, _first_line, _resolve
from scenarios.testing.replay import _steps_fit, replay_case


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
            row(name, "skip", None, f"policy {case_trace(name).policy} does not fit gradients_per_version "
                                    f"{rule.gradients_per_version!r}")
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
