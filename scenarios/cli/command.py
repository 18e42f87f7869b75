"""The ``stalesim`` command.

    stalesim simulate ...     simulate a cluster and print its trace statistics
    stalesim list             the named experiments
    stalesim run EXPERIMENT     run one experiment's grid of runs, save results
    stalesim reproduce SCEN   run a whole experiment: table, CSV, Markdown, plots
    stalesim sweep FILE       run a sweep over configuration fields
    stalesim report DIR       redraw table and plots from saved results
    stalesim claims           judge the paper's claims from saved results
    stalesim check MOD:FUNC   conformance battery and canonical cases for a rule
    stalesim data fetch NAME  download CIFAR-10/100 (explicit, opt-in)
    stalesim live EXPERIMENT    real asynchronous training in processes, recorded as a trace
    stalesim validate DIR     the simulator against live runs: staleness, shares, replay

Every error is one line on stderr naming the option and what is allowed, and a
non-zero exit; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace

from algorithms import ReplayError, RuleError
from scenarios import testing
from scenarios.cli import commands
from scenarios.errors import ConfigError, notice
from scenarios.experiments.cluster import cluster_spec
from scenarios.experiments.config import from_dict
from scenarios.experiments.results import check_writable
from scenarios.live import command as live_command
from scenarios.workloads import fetch
from scenarios.workloads.data import DataError
from scenarios.workloads.partition import PartitionError
from sim import (
    COMPUTE_KINDS,
    POLICY_NAMES,
    SpecError,
    TraceError,
    format_summary,
    make_policy,
    simulate,
    summarize,
)

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input: printed as one line, exit code 2."""


class _Renamed(argparse.Action):
    """An option's old name: still accepted, with a one-line notice naming the new one."""

    def __init__(self, option_strings, dest, new: str, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None):
        notice(f"{option_string} is renamed {self.new} (the configuration field's name); the old name still works "
               "for now")
        setattr(namespace, self.dest, values)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise UsageError(message)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _bounded(parse, low, strict: bool = False):
    """An argparse type: ``parse`` the text, then require ``> low`` (strict) or ``>= low``."""
    def check(text: str):
        value = parse(text)
        if value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {low}, got {text}")
        return value
    return check


_positive_int = _bounded(_int, 1)
_non_negative_int = _bounded(_int, 0)
_positive_float = _bounded(_float, 0, strict=True)
_non_negative_float = _bounded(_float, 0)


def _speeds(text):
    parts = [p for p in text.replace(",", " ").split() if p]
    out = [_positive_float(p) for p in parts]
    if not out:
        raise argparse.ArgumentTypeError("expected a comma-separated list of positive numbers")
    return tuple(out)


def _add_simulate(sub):

    p = sub.add_parser("simulate", help="simulate a cluster and print trace statistics",
                       description="Simulate asynchronous parameter-server training and print the "
                                   "staleness and fairness of the resulting server log (trace).")
    p.add_argument("--workers", type=_positive_int, required=True, help="number of workers (>= 1)")
    p.add_argument("--compute", choices=list(COMPUTE_KINDS), default="constant",
                   help="compute-time model of one gradient (default: constant); replay: the recorded times "
                        "of --compute-trace")
    p.add_argument("--compute-mean", type=_positive_float, default=None,
                   help="mean compute time in simulated seconds (default: 1; not with replay)")
    p.add_argument("--compute-trace", default=None, metavar="FILE.csv",
                   help="recorded compute times for --compute replay: one column shared by all workers or one "
                        "per worker (format: docs/timing.md); the configuration field compute_trace")
    p.add_argument("--durations", dest="compute_trace", action=_Renamed, new="--compute-trace",
                   help=argparse.SUPPRESS)
    p.add_argument("--compute-sigma", type=_non_negative_float, default=0.5,
                   help="log-space std of the lognormal model (default: 0.5)")
    p.add_argument("--speeds", type=_speeds, default=None,
                   help="per-worker speed factors, comma-separated (a worker with speed 2 is twice as fast)")
    p.add_argument("--spread", type=_positive_float, default=None,
                   help="alternative to --speeds: speeds log-spaced so the slowest worker is SPREAD times "
                        "slower than the fastest (>= 1)")
    p.add_argument("--latency", type=_non_negative_float, default=0.0,
                   help="network latency of each push and pull, seconds (default: 0)")
    p.add_argument("--bandwidth", type=_non_negative_float, default=0.0,
                   help="network bandwidth in bytes/s (default: 0 = infinite)")
    p.add_argument("--model-bytes", type=_non_negative_float, default=0.0,
                   help="size of the parameters (and of a gradient) in bytes (default: 0)")
    p.add_argument("--jitter", type=_non_negative_float, default=0.0,
                   help="mean of an exponential extra delay per transfer, seconds (default: 0)")
    p.add_argument("--service-time", type=_non_negative_float, default=0.0,
                   help="server time to apply one gradient, seconds (default: 0)")
    p.add_argument("--mttf", type=_non_negative_float, default=0.0,
                   help="mean time to failure of a worker, seconds (default: 0 = no failures)")
    p.add_argument("--downtime", type=_non_negative_float, default=1.0,
                   help="seconds a crashed worker stays down (default: 1)")
    p.add_argument("--policy", default="fifo", metavar="{" + ",".join(POLICY_NAMES) + "}",
                   help="server policy: fifo (ASGD, DC-ASGD), whitelist-wait / whitelist-queue "
                        "(GSGM scheduling), barrier (synchronous SGD), buffered:K (FedBuff)")
    p.add_argument("--updates", type=_positive_int, default=1000,
                   help="number of applied gradients to simulate (default: 1000)")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default: 0)")
    p.add_argument("--out", default=None, help="save the trace to this .npz file")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the readable summary")
    p.set_defaults(func=cmd_simulate)


# simulate's options and the configuration fields they set: the cluster is then built as for
# ``run`` (cluster.cluster_spec), so one configuration gives one cluster on either route
SIMULATE_FIELDS = {"workers": "--workers", "compute": "--compute", "compute_trace": "--compute-trace",
                   "compute_sigma": "--compute-sigma", "speeds": "--speeds", "spread": "--spread",
                   "latency": "--latency", "bandwidth": "--bandwidth", "jitter": "--jitter",
                   "service_time": "--service-time", "mttf": "--mttf", "downtime": "--downtime",
                   "updates": "--updates"}


def simulation_config(args):
    """The configuration ``simulate``'s options mean: every worker at speed 1 unless ``--speeds``
    or ``--spread`` says otherwise (``run``'s default spread is 4)."""

    values = {name: getattr(args, option[2:].replace("-", "_")) for name, option in SIMULATE_FIELDS.items()
              if name not in ("compute_trace", "speeds", "spread")}
    values.update(speeds=args.speeds or (), spread=1.0 if args.spread is None else args.spread,
                  compute_trace=args.compute_trace or "")
    return from_dict(values)


def cmd_simulate(args) -> int:

    if args.speeds is not None and args.spread is not None:
        raise UsageError("--speeds and --spread: give at most one of them")
    if args.compute == "replay":
        if args.compute_trace is None:
            raise UsageError("--compute replay: needs --compute-trace FILE.csv (the recorded times)")
        if args.compute_mean is not None:
            raise UsageError("--compute-mean: not used with --compute replay (the recorded durations are the times)")
    elif args.compute_trace is not None:
        raise UsageError(f"--compute-trace: needs --compute replay (--compute {args.compute} would not use the file)")
    if args.out:
        check_writable(args.out, "--out")  # before simulating, not after
    try:
        spec = cluster_spec(simulation_config(args), seed=args.seed, model_bytes=args.model_bytes)
    except ConfigError as e:
        raise UsageError(_option_message(str(e))) from None
    if args.compute_mean is not None:  # a shorthand of simulate's own: run's compute mean is always 1
        spec = replace(spec, compute=replace(spec.compute, mean=args.compute_mean))
    try:
        trace = simulate(spec, policy=make_policy(args.policy), num_updates=args.updates, seed=args.seed)
    except SpecError as e:
        raise UsageError(_option_message(str(e))) from None
    summary = summarize(trace)
    if args.out:
        try:
            trace.save(args.out)
        except OSError as e:
            raise UsageError(f"--out {args.out}: cannot write there ({e.strerror or e})") from None
        summary["trace_file"] = args.out
    if args.json:
        print(json.dumps(summary))
    else:
        print(format_summary(summary))
        if args.out:
            print(f"trace saved to {args.out}")
    return 0


_FIELD_TO_OPTION = {**SIMULATE_FIELDS, "policy": "--policy", "seed": "--seed", "failures": "--mttf"}


def _option_message(message: str) -> str:
    """Map a configuration or library field name at the start of a message to the CLI option."""
    field, sep, rest = message.partition(":")
    root = field.split(".")[0]
    if sep and root in _FIELD_TO_OPTION:
        return f"{_FIELD_TO_OPTION[root]} ({field}):{rest}"
    return message


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="stalesim", description="stalesim: a discrete-event simulator of asynchronous "
                     "parameter-server training (ASGD, DC-ASGD, GSGM) with pure-JAX server rules.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_simulate(sub)

    commands.add_subcommands(sub)
    live_command.add_subcommands(sub)
    testing.add_subcommand(sub)
    fetch.add_subcommand(sub)
    return parser


def _input_errors() -> tuple:
    """Errors that mean bad input (printed as one line), not a bug."""



    return (SpecError, TraceError, ReplayError, RuleError, ConfigError, DataError, PartitionError)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]  # accepted anywhere on the line
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        return args.func(args)
    except (UsageError, *_input_errors()) as e:
        if debug:
            raise
        print(f"stalesim: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # output piped into head and the like
        return 0
    except KeyboardInterrupt:
        print("stalesim: interrupted; finished runs are saved, re-run the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
