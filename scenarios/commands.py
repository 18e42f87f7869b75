"""``stalesim list | run | reproduce | report``."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from .config import ALGORITHMS, BASES, ConfigError, check_names, parse_assignments


def add_subcommands(sub) -> None:
    p = sub.add_parser("list", help="list the named experiments", description="List the named experiments.")
    p.set_defaults(func=cmd_list)

    for name, helptext in (("run", "run an experiment's grid of runs and save each result"),
                           ("reproduce", "run a whole experiment and write its table (Markdown, CSV) and plots")):
        p = sub.add_parser(name, help=helptext, description=helptext[0].upper() + helptext[1:] + ". Finished runs "
                           "in --out are kept (resume); --force recomputes them.")
        p.add_argument("scenario", help="experiment name (see 'stalesim list')")
        p.add_argument("--algorithms", default=None,
                       help=f"comma-separated subset of: {', '.join(ALGORITHMS)} (default: the scenario's)")
        p.add_argument("--base", default=None,
                       help=f"comma-separated base optimizers: {', '.join(BASES)} (default: the scenario's)")
        p.add_argument("--workers", default=None, help="number of workers (overrides the scenario)")
        p.add_argument("--seeds", default=None, help="number of seeds (default: the scenario's, usually 3)")
        p.add_argument("--updates", default=None, help="applied gradients per run")
        p.add_argument("--out", default=None, help="results directory (default: results/SCENARIO)")
        p.add_argument("--data-dir", default=None,
                       help="folder with the dataset files (else $STALESIM_DATA, then the Debian location)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override any configuration field, e.g. --set lr_sgd=0.02 --set gsgm_k=1 "
                            "(see docs/configuration.md)")
        p.add_argument("--force", action="store_true", help="recompute runs that are already finished")
        p.set_defaults(func=cmd_run if name == "run" else cmd_reproduce)

    p = sub.add_parser("sweep", help="run a sweep file (axes over cluster shapes, algorithms, seeds)",
                       description="Expand a sweep file into runs, run the missing ones locally or on Ray, and "
                                   "write a tidy CSV (one row per run), plots and a Markdown summary.")
    p.add_argument("spec", help="a sweep TOML file, or the name of a shipped sweep (staleness)")
    p.add_argument("--out", default=None, help="results directory (default: results/sweep-NAME)")
    p.add_argument("--backend", default="local", help="local (a process pool, default) or ray")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--jobs", default=None, help="local processes (default: one per CPU core)")
    p.add_argument("--data-dir", default=None, help="folder with the dataset files")
    p.add_argument("--force", action="store_true", help="recompute finished runs")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("report", help="redraw the table and plots from saved results",
                       description="Redraw the table and plots of a results directory without recomputing.")
    p.add_argument("dir", help="a results directory written by 'stalesim run' or 'stalesim reproduce'")
    p.set_defaults(func=cmd_report)


def cmd_list(args) -> int:
    from .experiments import SCENARIOS

    for s in SCENARIOS.values():
        grid = f"{', '.join(s.algorithms)} on {', '.join(s.bases)}; {s.seeds} seeds"
        if s.axis:
            grid += f"; {s.axis} in {', '.join(map(str, s.axis_values))}"
        print(f"{s.name}\n  {s.description}\n  grid: {grid}\n  paper claim: {s.claim}\n")
    return 0


def _split(text, name, allowed):
    if text is None:
        return None
    return check_names(name, [t.strip() for t in text.split(",") if t.strip()], allowed)


def _int_option(text, name):
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name}: expected an integer, got {text!r}") from None
    if value < 1:
        raise ConfigError(f"{name}: must be >= 1, got {value}")
    return value


def prepare(args, log=print):
    """Validate everything and build the run list before any work starts."""
    from .experiments import SCENARIOS, check_runnable, dataset, expand, resolve_dataset

    if args.scenario not in SCENARIOS:
        raise ConfigError(f"scenario: unknown {args.scenario!r}; allowed: {', '.join(SCENARIOS)}")
    scenario = SCENARIOS[args.scenario]
    overrides = parse_assignments(args.set)
    for option, key in (("--workers", "workers"), ("--updates", "updates")):
        value = _int_option(getattr(args, key), option)
        if value is not None:
            overrides[key] = value
    if scenario.axis and scenario.axis in overrides:
        raise ConfigError(f"--set {scenario.axis}: {scenario.name} varies it along its axis; it cannot be fixed")
    config = scenario.config.with_overrides(overrides)
    config = resolve_dataset(scenario, config, args.data_dir, log=log)
    algorithms = _split(args.algorithms, "--algorithms", ALGORITHMS)
    bases = _split(args.base, "--base", BASES)
    seeds = _int_option(args.seeds, "--seeds")
    runs = expand(scenario, config, algorithms, bases, seeds)
    data = dataset(config.dataset, args.data_dir)  # fail now, not after an hour, if the data is missing
    for cfg in {r.config for r in runs}:
        check_runnable(cfg, data)
    out = Path(args.out or f"results/{scenario.name}")
    return scenario, config, runs, out


def _write_manifest(scenario, config, runs, out: Path) -> None:
    from .experiments import write_json_atomic

    write_json_atomic(out / "experiment.json", {
        "scenario": scenario.name, "description": scenario.description, "claim": scenario.claim,
        "config": config.to_dict(), "axis": scenario.axis, "axis_values": list(scenario.axis_values),
        "runs": [r.dirname for r in runs]})


def _execute(args):
    from .experiments import run_all

    scenario, config, runs, out = prepare(args)
    _write_manifest(scenario, config, runs, out)
    print(f"{scenario.name}: {len(runs)} runs -> {out}")
    started = time.perf_counter()
    results = run_all(runs, out, data_dir=args.data_dir, force=args.force)
    print(f"finished {len(runs)} runs in {time.perf_counter() - started:.0f} s")
    return scenario, results, out


def cmd_run(args) -> int:
    from .report import aggregate, terminal_table

    scenario, results, out = _execute(args)
    print()
    print(terminal_table(aggregate(results)))
    return 0


def cmd_reproduce(args) -> int:
    from .report import write_report

    scenario, results, out = _execute(args)
    table, plots = write_report(results, out, f"stalesim reproduce {scenario.name}")
    print()
    print(table)
    print(f"\npaper claim: {scenario.claim}")
    print(f"table: {out / 'table.md'}, {out / 'table.csv'}")
    print("plots: " + ", ".join(str(p) for p in plots))
    return 0


def cmd_report(args) -> int:
    from .experiments import collect
    from .report import write_report

    out = Path(args.dir)
    manifest_path = out / "experiment.json"
    if not manifest_path.is_file():
        raise ConfigError(f"dir: {str(out)!r} holds no experiment.json; give a directory written by 'stalesim run'")
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError:
        raise ConfigError(f"dir: {manifest_path} is not valid JSON") from None
    wanted = set(manifest.get("runs", []))
    results = [r for r in collect(out) if not wanted or _dirname(r) in wanted]
    if not results:
        raise ConfigError(f"dir: no finished runs under {out / 'runs'}")
    table, plots = write_report(results, out, f"stalesim reproduce {manifest.get('scenario', out.name)}")
    print(table)
    missing = len(wanted) - len(results) if wanted else 0
    if missing > 0:
        print(f"\nnote: {missing} of {len(wanted)} runs are not finished; re-run the same command to complete them")
    print("plots: " + ", ".join(str(p) for p in plots))
    return 0


def cmd_sweep(args) -> int:
    from .experiments import check_runnable, dataset, write_json_atomic
    from .sweep import BACKENDS, load_sweep, run_sweep, write_sweep_report

    if args.backend not in BACKENDS:
        raise ConfigError(f"--backend: must be one of {', '.join(BACKENDS)}, got {args.backend!r}")
    jobs = _int_option(args.jobs, "--jobs")
    sweep = load_sweep(args.spec)
    runs = sweep.runs()
    data = dataset(sweep.config.dataset, args.data_dir)
    for cfg in {r.config for r in runs}:
        check_runnable(cfg, data)
    if args.backend == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ConfigError("--backend ray: Ray is not installed; install it with pip install 'stalesim[ray]'") from None
    out = Path(args.out or f"results/sweep-{sweep.name}")
    write_json_atomic(out / "experiment.json", {"sweep": sweep.name, "scenario": sweep.scenario,
                                                "axes": sweep.axes, "runs": [r.dirname for r in runs]})
    results = run_sweep(sweep, out, backend=args.backend, jobs=jobs, address=args.address,
                        data_dir=args.data_dir, force=args.force)
    print()
    print(write_sweep_report(results, sweep, out))
    print(f"tidy table: {out / 'runs.csv'}; summary: {out / 'summary.md'}; plots: {out / 'plots'}")
    return 0


def _dirname(result: dict) -> str:
    return f"{result['run']}-{result['key'][:10]}"
