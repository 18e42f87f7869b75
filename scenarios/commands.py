"""``stalesim list | run | reproduce | sweep | report``: the experiment commands."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

from algorithms import BASES, registry
from algorithms.checks import Spec

from .config import ConfigError, check_names, parse_assignments

_COUNT = Spec(int, low=1)


def add_subcommands(sub) -> None:
    p = sub.add_parser("list", help="list the named experiments and the algorithms",
                       description="List the named experiments and the registered algorithms.")
    p.set_defaults(func=cmd_list)

    for name, helptext in (("run", "run an experiment's grid of runs and save each result"),
                           ("reproduce", "run a whole experiment and write its table (Markdown, CSV) and plots")):
        p = sub.add_parser(name, help=helptext, description=helptext[0].upper() + helptext[1:] + ". Finished runs "
                           "in --out are kept (resume); --force recomputes them.")
        p.add_argument("scenario", help="experiment name (see 'stalesim list')")
        p.add_argument("--algorithms", default=None,
                       help=f"comma-separated: {', '.join(registry.ALGORITHMS)}, or package.module:function "
                            "(default: the scenario's)")
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
                            "(every field: docs/configuration.md)")
        p.add_argument("--tune", action="append", default=[], metavar="FIELD=V1,V2,...",
                       help="tune FIELD per cell (algorithm x base x axis value) on tuning seeds, scored on the "
                            "validation split; 'lr' is the cell's base learning rate and xF is F times the "
                            "configured value, e.g. --tune lr=x0.1,x0.3,x1,x3,x10; '--tune default' uses the "
                            "scenario's grid (default: the scenario's shipped tuned values, if any)")
        p.add_argument("--tuning-seeds", default="2", help="tuning seeds per candidate (default: 2)")
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

    p = sub.add_parser("claims", help="judge the paper's claims from saved results (docs/claims.md)",
                       description="Read results/fmnist, results/scale, results/noniid and results/sweep-stability "
                                   "and write every claim's numbers and verdict, computed from them.")
    p.add_argument("--results", default="results", help="folder holding the experiments' folders (default: results)")
    p.add_argument("--out", default="docs/claims.md", help="where to write (default: docs/claims.md)")
    p.set_defaults(func=cmd_claims)

    p = sub.add_parser("report", help="redraw the table and plots from saved results",
                       description="Redraw the table and plots of a results directory without recomputing.")
    p.add_argument("dir", help="a results directory written by 'stalesim run' or 'stalesim reproduce'")
    p.set_defaults(func=cmd_report)


def cmd_list(args) -> int:
    from .catalogue import SCENARIOS

    for s in SCENARIOS.values():
        algorithms = ", ".join(registry.display_name(a) for a in s.algorithms)
        grid = f"{algorithms} on {', '.join(s.bases)}; {s.seeds} seeds"
        if s.axis:
            grid += f"; {s.axis} in {', '.join(map(str, s.axis_values))}"
        print(f"{s.name}\n  {s.description}\n  grid: {grid}\n  paper claim: {s.claim}\n")
    print("algorithms (--algorithms NAME, or package.module:function):")
    width = max(len(n) for n in registry.ALGORITHMS)
    for a in registry.ALGORITHMS.values():
        print(f"  {a.name:<{width}}  {a.display:<19} {a.policy_for(_defaults()):<15} {a.summary}")
    return 0


def _defaults() -> dict:
    from .config import FIELDS

    return {name: f.default for name, f in FIELDS.items()}


def _split(text, option, allowed):
    """A comma-separated option's names, or None when not given; one error line when empty."""
    if text is None:
        return None
    return [t.strip() for t in text.split(",") if t.strip()] or check_names(option, [], allowed)


def _count(text, option):
    return None if text is None else _COUNT.parse(option, text, ConfigError)


def _jobs(text):
    """``--jobs``: ``auto`` or a number of processes >= 1."""
    from .runner import AUTO

    text = str(text).strip()
    if text == AUTO:
        return AUTO
    try:
        return _COUNT.parse("--jobs", text, ConfigError)
    except ConfigError:
        raise ConfigError(f"--jobs: must be {AUTO!r} or an integer >= 1, got {text!r}") from None


def resolve_dataset(scenario, config, overrides: dict, data_dir, log=print):
    """The scenario's fallback dataset when its own is absent, announced in one line;
    values the user gave are kept."""
    from .data import available

    if not scenario.fallback or available(config.dataset, data_dir):
        return config
    if "dataset" in overrides:
        return config  # the user asked for this dataset: loading it will say what is missing
    fallback = {"dataset": scenario.fallback, "model": "mlp", "updates": 6000, "eval_every": 200, "eval_samples": 0}
    changes = {k: v for k, v in fallback.items() if k == "dataset" or k not in overrides}
    log(f"note: {config.dataset} not found; {scenario.name} runs on its stand-in instead: "
        + ", ".join(f"{k}={v}" for k, v in changes.items())
        + (f" (kept yours: {', '.join(k for k in fallback if k in overrides)})" if set(fallback) & set(overrides)
           else ""))
    return replace(config, **changes).validate()


def prepare(args, log=print):
    """Validate everything and build the run list before any work starts."""
    from .catalogue import SCENARIOS, check_algorithms, expand
    from .workload import check_runnable, dataset

    if args.scenario not in SCENARIOS:
        raise ConfigError(f"scenario: unknown {args.scenario!r}; allowed: {', '.join(SCENARIOS)}")
    scenario = SCENARIOS[args.scenario]
    overrides = parse_assignments(args.set)
    for option, key in (("--workers", "workers"), ("--updates", "updates")):
        value = _count(getattr(args, key), option)
        if value is not None:
            overrides[key] = value
    if scenario.axis and scenario.axis in overrides:
        raise ConfigError(f"--set {scenario.axis}: {scenario.name} varies it along its axis; it cannot be fixed")
    config = scenario.config.with_overrides(overrides)
    config = resolve_dataset(scenario, config, overrides, args.data_dir, log=log)
    algorithms = _split(args.algorithms, "--algorithms", tuple(registry.ALGORITHMS))
    if algorithms is not None:
        algorithms = check_algorithms("--algorithms", algorithms)
    bases = _split(args.base, "--base", BASES)
    if bases is not None:
        bases = check_names("--base", bases, BASES)
    runs = expand(scenario, config, algorithms, bases, _count(args.seeds, "--seeds"))
    check_runs(runs)
    data = dataset(config.dataset, args.data_dir)  # fail now, not after an hour, if the data is missing
    for cfg in {r.config for r in runs}:
        check_runnable(cfg, data)
    out = Path(args.out or f"results/{scenario.name}")
    return scenario, config, runs, out


def invocation(args) -> dict:
    """The command line and the user's overrides, for each result's provenance."""
    import sys

    return {"command": "stalesim " + " ".join(sys.argv[1:]), "argv": list(sys.argv),
            "overrides": parse_assignments(getattr(args, "set", [])),
            "options": {k: v for k, v in vars(args).items() if k not in ("func", "set") and v not in (None, [], False)}}


def check_runs(runs) -> None:
    """What only a whole run can tell (a policy that cannot take crashes), before any work."""
    from .timing import check_crashes

    for algorithm, cfg in {(r.algorithm, r.config) for r in runs}:
        check_crashes(algorithm, cfg)


def _write_manifest(scenario, config, runs, out: Path, args) -> None:
    from .results import write_json_atomic

    write_json_atomic(out / "experiment.json", {
        "scenario": scenario.name, "description": scenario.description, "claim": scenario.claim,
        "identity": experiment_identity(args), "seeds": len({r.seed for r in runs}),
        "default_seeds": scenario.seeds, "overrides": parse_assignments(args.set),
        "config": config.to_dict(), "axis": scenario.axis, "axis_values": list(scenario.axis_values),
        "runs": [r.dirname for r in runs]})


def experiment_identity(args) -> dict:
    """What makes two commands the same experiment (so they may share an output folder)."""
    return {"scenario": args.scenario, "set": sorted(args.set), "algorithms": args.algorithms, "base": args.base,
            "workers": args.workers, "seeds": args.seeds, "updates": args.updates, "tune": sorted(args.tune)}


def claim_folder(out: Path, identity: dict, force: bool) -> None:
    """Refuse an output folder that holds a different experiment, unless ``--force``."""
    manifest = out / "experiment.json"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a folder; choose another --out")
    if not manifest.is_file():
        if out.exists() and any(not p.name.startswith(".") for p in out.iterdir()) and not (out / "runs").is_dir():
            raise ConfigError(f"--out {out}: the folder exists and holds something else; choose another --out")
        return
    try:
        old = json.loads(manifest.read_text())
    except ValueError:
        raise ConfigError(f"--out {out}: its experiment.json is not valid JSON; choose another --out, or --force "
                          "to replace it") from None
    if old.get("identity") != identity and not force:
        what = old.get("scenario") or old.get("sweep") or "another experiment"
        raise ConfigError(f"--out {out}: holds a different experiment ({what}, other options); use another --out, "
                          "or --force to replace it")


def _grids(args, scenario):
    from .tuning import parse_tune

    if args.tune == ["default"]:
        if not scenario.tune:
            raise ConfigError(f"--tune default: {scenario.name} declares no tuning grid; give FIELD=V1,V2,...")
        return parse_tune([f"{name}={','.join(values)}" for name, values in scenario.tune])
    return parse_tune(args.tune)


def _execute(args):
    from .tuning import run_protocol

    from .lock import FolderLock

    scenario, config, runs, out = prepare(args)
    jobs = _jobs(args.jobs)
    grids = _grids(args, scenario)
    tuning_seeds = _count(args.tuning_seeds, "--tuning-seeds")
    if args.dry_run:
        dry_run(runs, grids, tuning_seeds, jobs, args.data_dir, out=out, force=args.force,
                shipped=scenario.shipped_tuning, explicit=explicit_fields(args))
        return scenario, None, out
    claim_folder(out, experiment_identity(args), args.force)
    with FolderLock(out):
        print(f"{scenario.name}: {len(runs)} reported runs -> {out}")
        started = time.perf_counter()
        results = run_protocol(runs, out, grids=grids, tuning_seeds=tuning_seeds, shipped=scenario.shipped_tuning,
                               explicit=explicit_fields(args),
                               planned=lambda reported: _write_manifest(scenario, config, reported, out, args),
                               data_dir=args.data_dir, force=args.force, jobs=jobs, invocation=invocation(args))
        print(f"finished in {time.perf_counter() - started:.0f} s")
    return scenario, results, out


def explicit_fields(args) -> frozenset:
    """The configuration fields the user chose (``--set`` and the options that set a field): never replaced."""
    chosen = set(parse_assignments(args.set))
    chosen |= {key for key in ("workers", "updates") if getattr(args, key, None) is not None}
    return frozenset(chosen)


def dry_run(runs, grids, tuning_seeds: int, jobs, data_dir, *, out: Optional[Path] = None, force: bool = False,
            shipped: Optional[Path] = None, explicit=frozenset()) -> None:
    """The grid, the learning rates it would use and an estimated wall time: one short run per
    kind of run (algorithm, base, problem shape) on this machine (``estimate.calibrate``),
    scaled to every run still to do (finished runs in ``out`` are skipped, as a real run would);
    with several processes, a range from perfect sharing to none."""
    from .estimate import calibrate
    from .runner import _compile_groups, pending, processes_for
    from .tuning import resolve, tuning_runs

    runs = resolve(runs, explicit=explicit, grids=grids, shipped=shipped)
    tuning = [r for entries in tuning_runs(runs, grids, tuning_seeds).values() for _, r in entries] if grids else []
    everything = tuning + runs
    cells = len({(r.config, r.algorithm, r.base) for r in runs})
    print(f"grid: {len(runs)} reported runs ({cells} cells x {len(runs) // max(1, cells)} seeds)"
          + (f" + {len(tuning)} tuning runs" if tuning else ""))
    if not grids:
        rates = {}
        for r in runs:
            for o in r.origins:
                rates.setdefault((r.algorithm, r.base), set()).add(f"{o.field}={getattr(r.config, o.field):g} "
                                                                   f"({o.source})")
        print("learning rates: " + "; ".join(f"{a} on {b}: {', '.join(sorted(v))}" for (a, b), v in rates.items()))
    done, todo = pending(tuning + ([] if grids else runs), out, force) if out is not None else ({}, everything)
    if grids:
        todo = todo + runs  # their tuned values are known only after tuning
    if done:
        print(f"already finished in {out}: {len(done)} runs (skipped; --force recomputes them)")
    if not todo:
        print("nothing to do: every run is finished (nothing was run)")
        return
    print(f"to do: {len(todo)} runs, {sum(r.config.updates for r in todo):,} applied updates in all")
    print("calibration on this machine (one short run per algorithm, base and problem shape):")
    calibration = calibrate(todo, data_dir)
    processes = processes_for(jobs, todo)
    one = calibration.seconds(todo, _compile_groups(todo))
    where = f"--jobs {jobs} ({processes} process{'es' if processes > 1 else ''})"
    if processes == 1:
        print(f"estimated wall time with {where}: {_duration(one)} (nothing was run; drop --dry-run to run)")
    else:
        print(f"estimated wall time with {where}: between {_duration(one / processes)} (processes that never "
              f"slow each other) and {_duration(one)} (one process); they share the memory bandwidth "
              f"(nothing was run; drop --dry-run to run)")


def _duration(seconds: float) -> str:
    if seconds >= 600:
        return f"{seconds / 60:.0f} min"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def cmd_run(args) -> int:
    from .report import aggregate, terminal_table

    scenario, results, out = _execute(args)
    if results is None:
        return 0
    print()
    print(terminal_table(aggregate(results)))
    return 0


def cmd_reproduce(args) -> int:
    from .report import header_note, write_report

    scenario, results, out = _execute(args)
    if results is None:
        return 0
    manifest = json.loads((out / "experiment.json").read_text())
    table, plots = write_report(results, out, f"stalesim reproduce {scenario.name}", header_note(manifest))
    print()
    print(table)
    print(f"\npaper claim: {scenario.claim}")
    print(f"table: {out / 'table.md'}, {out / 'table.csv'}")
    print("plots: " + ", ".join(str(p) for p in plots))
    return 0


def cmd_report(args) -> int:
    from .report import header_note, write_report
    from .results import collect

    out = Path(args.dir)
    manifest_path = out / "experiment.json"
    if not manifest_path.is_file():
        raise ConfigError(f"dir: {str(out)!r} holds no experiment.json; give a directory written by 'stalesim run'")
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError:
        raise ConfigError(f"dir: {manifest_path} is not valid JSON") from None
    wanted = set(manifest.get("runs", []))
    results = [r for r in collect(out) if not wanted or r.dirname in wanted]
    if not results:
        raise ConfigError(f"dir: no finished runs under {out / 'runs'}")
    if "sweep" in manifest:
        return _report_sweep(manifest, results, out)
    table, plots = write_report(results, out, f"stalesim reproduce {manifest.get('scenario', out.name)}",
                                header_note(manifest))
    print(table)
    missing = len(wanted) - len(results) if wanted else 0
    if missing > 0:
        print(f"\nnote: {missing} of {len(wanted)} runs are not finished; re-run the same command to complete them")
    print("plots: " + ", ".join(str(p) for p in plots))
    return 0


def _report_sweep(manifest: dict, results, out: Path) -> int:
    """``report`` on a sweep folder redraws the sweep's own outputs (runs.csv, plots, summary.md)."""
    from .sweep import load_sweep, write_sweep_report

    spec = manifest.get("spec")
    if not spec or not Path(spec).is_file():
        raise ConfigError(f"dir: {out} is a sweep's folder, and its sweep file {spec!r} is gone; run "
                          "'stalesim sweep FILE --out DIR' again (finished runs are kept)")
    print(write_sweep_report(results, load_sweep(spec), out))
    return 0


def cmd_sweep(args) -> int:
    from .lock import FolderLock
    from .results import write_json_atomic
    from .runner import BACKENDS
    from .sweep import load_sweep, run_sweep, write_sweep_report
    from .workload import check_runnable, dataset

    if args.backend not in BACKENDS:
        raise ConfigError(f"--backend: must be one of {', '.join(BACKENDS)}, got {args.backend!r}")
    jobs = _jobs(args.jobs)
    sweep = load_sweep(args.spec)
    runs = sweep.runs()
    check_runs(runs)
    data = dataset(sweep.config.dataset, args.data_dir)
    for cfg in {r.config for r in runs}:
        check_runnable(cfg, data)
    if args.backend == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ConfigError("--backend ray: Ray is not installed; install it with pip install 'stalesim[ray]'") from None
    out = Path(args.out or f"results/sweep-{sweep.name}")
    if args.dry_run:
        dry_run(runs, sweep.tune, 2, jobs, args.data_dir, out=out, force=args.force, explicit=sweep.explicit)
        return 0
    claim_folder(out, {"sweep": str(sweep.path)}, args.force)
    def manifest(reported):
        write_json_atomic(out / "experiment.json", {"sweep": sweep.name, "scenario": sweep.scenario,
                                                    "identity": {"sweep": str(sweep.path)}, "spec": str(sweep.path),
                                                    "axes": sweep.axes, "runs": [r.dirname for r in reported]})

    with FolderLock(out):
        results = run_sweep(sweep, out, planned=manifest, backend=args.backend, jobs=jobs,
                            address=args.address, data_dir=args.data_dir, force=args.force,
                            invocation=invocation(args))
    print()
    print(write_sweep_report(results, sweep, out))
    print(f"tidy table: {out / 'runs.csv'}; summary: {out / 'summary.md'}; plots: {out / 'plots'}")
    return 0


def cmd_claims(args) -> int:
    from .claims import markdown
    from .results import write_text_atomic

    root = Path(args.results)
    if not root.is_dir():
        raise ConfigError(f"--results: no folder {str(root)!r}")
    text = markdown(root)
    write_text_atomic(Path(args.out), text)
    print(text)
    print(f"written to {args.out}")
    return 0
