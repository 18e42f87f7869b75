"""``stalesim list | run | reproduce | sweep | report | claims``: the experiment commands, parsed and printed.

Each command turns its arguments into the request the Python API builds too
(``experiments.plan.Options``), so both plan, run and number alike (``scenarios.api``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from algorithms import BASES, registry
from scenarios import api
from scenarios.errors import ConfigError
from scenarios.experiments.catalogue import EXPERIMENTS
from scenarios.experiments.config import FIELDS, parse_assignments
from scenarios.experiments import rerun
from scenarios.experiments.estimate import duration, dry_run
from scenarios.experiments.experiment import carry_out, carry_out_sweep, check_sweep
from scenarios.experiments.plan import Options, claim_folder, jobs, plan
from scenarios.experiments.results import check_writable, write_text_atomic
from scenarios.experiments.sweep import load_sweep
from scenarios.reports.claims import markdown
from scenarios.reports.sweeps import write_sweep_report
from scenarios.reports.tables import header_note, write_report


def add_subcommands(sub) -> None:
    p = sub.add_parser("list", help="list the named experiments and the algorithms",
                       description="List the named experiments and the registered algorithms.")
    p.set_defaults(func=cmd_list)

    for name, helptext in (("run", "run an experiment's grid of runs and save each result"),
                           ("reproduce", "run a whole experiment and write its table (Markdown, CSV) and plots")):
        p = sub.add_parser(name, help=helptext, description=helptext[0].upper() + helptext[1:] + ". Finished runs "
                           "in --out are kept (resume); --force recomputes them.")
        p.add_argument("experiment", help="experiment name (see 'stalesim list')")
        p.add_argument("--algorithms", default=None,
                       help=f"comma-separated: {', '.join(registry.ALGORITHMS)}, or package.module:function "
                            "(default: the experiment's)")
        p.add_argument("--base", default=None,
                       help=f"comma-separated base optimizers: {', '.join(BASES)} (default: the experiment's)")
        p.add_argument("--workers", default=None, help="number of workers (overrides the experiment)")
        p.add_argument("--seeds", default=None, help="number of seeds (default: the experiment's, usually 3)")
        p.add_argument("--updates", default=None, help="applied gradients per run")
        p.add_argument("--out", default=None, help="results directory (default: results/EXPERIMENT)")
        p.add_argument("--data-dir", default=None,
                       help="folder with the dataset files (else $STALESIM_DATA, then the Debian location)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override any configuration field, e.g. --set lr_sgd=0.02 --set gsgm_k=1 "
                            "(every field: docs/configuration.md)")
        p.add_argument("--tune", action="append", default=[], metavar="FIELD=V1,V2,...",
                       help="tune FIELD per cell (algorithm x base x axis value) on tuning seeds, scored on the "
                            "validation split; 'lr' is the cell's base learning rate and xF is F times the "
                            "configured value, e.g. --tune lr=x0.1,x0.3,x1,x3,x10; '--tune default' uses the "
                            "experiment's grid (default: the experiment's shipped tuned values, if any)")
        p.add_argument("--tuning-seeds", default="2", help="tuning seeds per candidate (default: 2)")
        p.add_argument("--halving", metavar="KEEP@FRACTION", default=None,
                       help="successive halving over the tuning grid: every candidate runs FRACTION of the "
                            "updates, the KEEP best run to the end (e.g. 3@1/6; docs/protocol.md; default: off, "
                            "the full grid)")
        p.add_argument("--jobs", default="auto",
                       help="runs carried out at once in separate processes, or 'auto' (default): one per CPU "
                            "core, in this process for small grids; the numbers are the same either way")
        p.add_argument("--dry-run", action="store_true",
                       help="print the grid (runs, updates) and an estimated wall time from a short calibration "
                            "on this machine; run nothing")
        p.add_argument("--force", action="store_true", help="recompute runs that are already finished")
        p.set_defaults(func=cmd_run if name == "run" else cmd_reproduce)

    p = sub.add_parser("sweep", help="run a sweep file (axes over cluster shapes, algorithms, seeds)",
                       description="Expand a sweep file into runs, run the missing ones locally or on Ray, and "
                                   "write a tidy CSV (one row per run), plots and a Markdown summary.")
    p.add_argument("spec", help="a sweep TOML file, or the name of a shipped sweep (staleness)")
    p.add_argument("--out", default=None, help="results directory (default: results/sweep-NAME)")
    p.add_argument("--backend", default="local", help="local (a process pool, default) or ray")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--jobs", default="auto",
                   help="local processes, or 'auto' (default): one per CPU core, in this process for small sweeps")
    p.add_argument("--data-dir", default=None, help="folder with the dataset files")
    p.add_argument("--force", action="store_true", help="recompute finished runs")
    p.add_argument("--dry-run", action="store_true",
                   help="print the grid (runs, updates) and an estimated wall time; run nothing")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("claims", help="judge the paper's claims from saved results",
                       description="Read RESULTS/fmnist, RESULTS/scale, RESULTS/noniid and RESULTS/sweep-stability "
                                   "(and the studies' folders present) and write every claim's numbers and verdict, "
                                   "computed from them, to RESULTS/claims.md (or --out). The committed "
                                   "docs/claims.md is regenerated with --results docs/claims-data --out "
                                   "docs/claims.md.")
    p.add_argument("--results", default="results", metavar="RESULTS",
                   help="folder holding the experiments' folders (default: results)")
    p.add_argument("--out", default=None, help="where to write (default: RESULTS/claims.md, beside the results)")
    p.add_argument("--rerun", action="store_true",
                   help="first carry out every experiment the claims rest on, from scratch, into --out DIR (10 seeds, "
                        "tuned, the studies and the stability sweep; finished runs kept, shared runs run once), "
                        "then write DIR/claims.md")
    p.add_argument("--dry-run", action="store_true", help="with --rerun: print the plan and the estimated time")
    p.add_argument("--parts", default="", metavar="NAMES",
                   help="with --rerun: only these parts, comma-separated (" + ", ".join(rerun.PARTS) + "); "
                        "the runs of the parts already in DIR are reused")
    p.add_argument("--jobs", default="auto", help="with --rerun: local processes, or 'auto' (one per CPU core)")
    p.add_argument("--halving", metavar="KEEP@FRACTION", default=None,
                   help="with --rerun: successive halving over every tuning grid (e.g. 3@1/6; docs/protocol.md; "
                        "default: off, the full grids the committed results were tuned with)")
    p.add_argument("--data-dir", default=None, help="with --rerun: folder with the dataset files")
    p.add_argument("--accept-provenance", action="store_true",
                   help="judge results made in a working tree with uncommitted changes, or mixing JAX versions "
                        "within an experiment (refused otherwise); the document lists them up front")
    p.set_defaults(func=cmd_claims)

    p = sub.add_parser("report", help="redraw the table and plots from saved results",
                       description="Redraw the table and plots of a results directory without recomputing.")
    p.add_argument("dir", help="a results directory written by 'stalesim run' or 'stalesim reproduce'")
    p.set_defaults(func=cmd_report)


def cmd_list(args) -> int:

    studies = [s for s in EXPERIMENTS.values() if s.study]
    for s in EXPERIMENTS.values():
        if s.study:
            continue
        algorithms = ", ".join(registry.display_name(a) for a in s.algorithms)
        grid = f"{algorithms} on {', '.join(s.bases)}; {s.seeds} seeds"
        if s.axis:
            grid += f"; {s.axis} in {', '.join(map(str, s.axis_values))}"
        print(f"{s.name}\n  {s.description}\n  grid: {grid}\n  paper claim: {s.claim}\n")
    print(f"studies (ablations and sensitivity beside the claims; each fmnist with one change, {studies[0].seeds} "
          "seeds, tuned):")
    width = max(len(s.name) for s in studies)
    for s in studies:
        print(f"  {s.name:<{width}}  {s.study} on {', '.join(s.bases)}")
    print()
    print("algorithms (--algorithms NAME, or package.module:function):")
    width = max(len(n) for n in registry.ALGORITHMS)
    for a in registry.ALGORITHMS.values():
        print(f"  {a.name:<{width}}  {a.display:<19} {a.policy_for(_defaults()):<15} {a.summary}")
    return 0


def _defaults() -> dict:
    return {name: f.default for name, f in FIELDS.items()}


def options(args) -> Options:
    """The request of ``run`` / ``reproduce``, as the command line spells it."""
    return Options(args.experiment, args.algorithms, args.base, args.workers, args.seeds, args.updates,
                   tuple(args.set), tuple(args.tune), args.tuning_seeds, args.jobs, args.out, args.data_dir,
                   args.force, args.halving)


def invocation(args) -> dict:
    """The command line and the user's overrides, for each result's provenance."""
    return {"command": "stalesim " + " ".join(sys.argv[1:]), "argv": list(sys.argv),
            "overrides": parse_assignments(getattr(args, "set", [])),
            "options": {k: v for k, v in vars(args).items() if k not in ("func", "set") and v not in (None, [], False)}}


def _experiment(args):
    """Plan, then either estimate (``--dry-run``) or carry out; the plan and the results (None for a dry run)."""
    planned = plan(options(args))
    if args.dry_run:
        claim_folder(planned.out, planned.options.identity, args.force)
        dry_run(planned.runs, planned.grids, planned.tuning_seeds, planned.jobs, args.data_dir, out=planned.out,
                halving=planned.halving,
                force=args.force, shipped=planned.experiment.shipped_tuning, explicit=planned.options.explicit)
        return planned, None
    return planned, carry_out(planned, invocation=invocation(args))


def cmd_run(args) -> int:
    planned, results = _experiment(args)
    if results is not None:
        print()
        print(api.Experiment(planned.experiment.name, planned.out, results, {}).table())
    return 0


def cmd_reproduce(args) -> int:
    planned, results = _experiment(args)
    if results is None:
        return 0
    experiment = api.load(planned.out)
    table, plots = write_report(results, planned.out, f"stalesim reproduce {planned.experiment.name}",
                                header_note(experiment.manifest))
    print()
    print(table)
    print(f"\npaper claim: {planned.experiment.claim}")
    print(f"table: {planned.out / 'table.md'}, {planned.out / 'table.csv'}")
    print("plots: " + ", ".join(str(p) for p in plots))
    return 0


def cmd_report(args) -> int:
    experiment = api.load(args.dir)
    if experiment.sweep is not None:
        print(write_sweep_report(experiment.results, experiment.sweep, experiment.out))
        return 0
    title = f"stalesim reproduce {experiment.manifest.get('experiment', experiment.out.name)}"
    table, plots = write_report(experiment.results, experiment.out, title, header_note(experiment.manifest))
    print(table)
    wanted = experiment.manifest.get("runs", [])
    missing = len(wanted) - len(experiment.results) if wanted else 0
    if missing > 0:
        print(f"\nnote: {missing} of {len(wanted)} runs are not finished; re-run the same command to complete them")
    print("plots: " + ", ".join(str(p) for p in plots))
    return 0


def cmd_sweep(args) -> int:
    processes = jobs(args.jobs)
    sweep = load_sweep(args.spec)
    runs = check_sweep(sweep, backend=args.backend, data_dir=args.data_dir)
    out = Path(args.out or f"results/sweep-{sweep.name}")
    if args.dry_run:
        claim_folder(out, sweep.identity, args.force)
        dry_run(runs, sweep.tune, 2, processes, args.data_dir, out=out, force=args.force, explicit=sweep.explicit)
        return 0
    results = carry_out_sweep(sweep, out, backend=args.backend, jobs=processes, address=args.address,
                              data_dir=args.data_dir, force=args.force, invocation=invocation(args))
    print()
    print(write_sweep_report(results, sweep, out))
    print(f"tidy table: {out / 'runs.csv'}; summary: {out / 'summary.md'}; plots: {out / 'plots'}")
    return 0


def cmd_claims(args) -> int:

    if args.rerun:
        if not args.out:
            raise ConfigError("--rerun: give --out DIR, the folder to run everything into")
        root = Path(args.out)
        if args.dry_run:
            total = rerun.estimate(root, args.jobs, args.data_dir, parts=rerun.parts_from(args.parts),
                                   halving=args.halving)
            print(f"{'the whole protocol' if not args.parts else 'these parts'}: about {duration(total)} "
                  "(the midpoints of the estimates above, summed)")
            return 0
        started = time.perf_counter()
        rerun.rerun(root, args.jobs, args.data_dir, parts=rerun.parts_from(args.parts), halving=args.halving)
        write_text_atomic(root / "claims.md", markdown(root, args.accept_provenance))
        print(f"written to {root / 'claims.md'}")
        print(f"claims --rerun finished in {time.perf_counter() - started:.0f} s")
        return 0
    for option, given in (("--dry-run", args.dry_run), ("--parts", args.parts), ("--halving", args.halving)):
        if given:
            raise ConfigError(f"{option}: only with --rerun (claims alone runs nothing)")
    root = Path(args.results)
    if not root.is_dir():
        raise ConfigError(f"--results: no folder {str(root)!r}")
    out = Path(args.out) if args.out else root / "claims.md"  # never the tracked docs/claims.md unless asked
    check_writable(out, "--out")
    text = markdown(root, args.accept_provenance)
    try:
        write_text_atomic(out, text)
    except ConfigError as e:
        raise ConfigError(f"--out {e}") from None
    print(text)
    print(f"written to {out}")
    return 0
