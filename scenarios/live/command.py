"""``stalesim live EXPERIMENT`` and ``stalesim validate LIVE_DIR``: the command-line side of live runs."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from scenarios.cli.commands import invocation
from scenarios.errors import ConfigError
from scenarios.experiments.lock import FolderLock
from scenarios.experiments.results import check_writable, write_json_atomic, write_text_atomic
from scenarios.experiments.plan import Options, plan
from scenarios.experiments.origins import resolve
from scenarios.live.backends import BACKENDS
from scenarios.live.session import DEFAULT_TIME_SCALE, check_live, finished, run_dir, run_live
from scenarios.live.validate import validate_folder
from scenarios.live.validation_report import figure, markdown, table


def add_subcommands(sub) -> None:
    """Register ``live`` and ``validate`` on the ``stalesim`` parser's subcommands."""
    p = sub.add_parser("live", help="train for real: one server and a process per worker, recorded as a trace",
                       description="Run real asynchronous parameter-server training: this process serves, one "
                                   "process per worker (or a Ray actor) computes real gradients and holds each step "
                                   "to its emulated compute time. Writes result.json, history.csv, trace.npz, "
                                   "compute_times.csv and timings.csv per run; finished runs in --out are kept.")
    p.add_argument("experiment", help="experiment name (see 'stalesim list')")
    p.add_argument("--algorithms", default=None, help="comma-separated algorithms (default: the experiment's)")
    p.add_argument("--base", default=None, help="comma-separated base optimizers (default: the experiment's)")
    p.add_argument("--workers", default=None, help="number of workers, one process each (overrides the experiment)")
    p.add_argument("--seeds", default=None, help="number of seeds (default: the experiment's)")
    p.add_argument("--updates", default=None, help="applied gradients per run")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a configuration field")
    p.add_argument("--out", default=None, help="results directory (default: results/live-EXPERIMENT)")
    p.add_argument("--data-dir", default=None, help="folder with the dataset files")
    p.add_argument("--time-scale", default=str(DEFAULT_TIME_SCALE), metavar="S",
                   help=f"wall seconds per simulated second (> 0; default {DEFAULT_TIME_SCALE}: the fastest worker's "
                        "mean step is then 100x the MLP's real gradient time)")
    p.add_argument("--backend", default="local", help="local (spawned processes, default) or ray (actors)")
    p.add_argument("--address", default=None, help="Ray cluster address HOST:PORT (default: start a local Ray)")
    p.add_argument("--worker-timeout", default=None, metavar="S",
                   help="seconds a worker may stay silent after a pull before the run stops (default: 60 + 50 of "
                        "the slowest worker's mean steps)")
    p.add_argument("--force", action="store_true", help="run again the runs already finished in --out")
    p.set_defaults(func=cmd_live)

    p = sub.add_parser("validate", help="compare live runs with their replay and with the simulator",
                       description="For every live run in LIVE_DIR: the replay of its trace against its own "
                                   "parameters and history, and the simulator (as configured, and calibrated from "
                                   "the run's measured compute times, latencies and service time) against its "
                                   "staleness, per-worker shares and training outcome; draws the figure.")
    p.add_argument("dir", metavar="LIVE_DIR", help="a folder written by 'stalesim live'")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--doc", default=None, metavar="FILE.md",
                   help="also write the Markdown report (docs/validation.md is this, from docs/validation-data)")
    p.add_argument("--data-dir", default=None, help="folder with the dataset files")
    p.set_defaults(func=cmd_validate)


def _number(text, option: str, *, positive: bool = True) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ConfigError(f"{option}: expected a number > 0, got {text!r}") from None
    if not math.isfinite(value) or (positive and value <= 0):
        raise ConfigError(f"{option}: must be a number > 0, got {text}")
    return value


def cmd_live(args) -> int:
    time_scale = _number(args.time_scale, "--time-scale")
    timeout = None if args.worker_timeout is None else _number(args.worker_timeout, "--worker-timeout")
    if args.backend not in BACKENDS:
        raise ConfigError(f"--backend: must be one of {', '.join(BACKENDS)}, got {args.backend!r}")
    if args.address and args.backend != "ray":
        raise ConfigError("--address: only with --backend ray")
    options = Options(args.experiment, args.algorithms, args.base, args.workers, args.seeds, args.updates,
                      tuple(args.set), jobs="1", out=args.out or f"results/live-{args.experiment}",
                      data_dir=args.data_dir, force=args.force)
    planned = plan(options)
    experiment, config, out = planned.experiment, planned.config, planned.out
    runs = resolve(planned.runs, explicit=options.explicit, shipped=experiment.shipped_tuning)
    for cfg in {run.config for run in runs}:
        check_live(cfg, time_scale, args.backend)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a folder; choose another --out")
    with FolderLock(out):
        print(f"live {experiment.name}: {len(runs)} runs, {config.workers} worker processes each ({args.backend}), "
              f"time scale {time_scale:g} wall s per simulated s -> {out}")
        for i, run in enumerate(runs, 1):
            done = None if args.force else finished(out, run, time_scale)
            if done is not None:
                print(f"[{i}/{len(runs)}] {run.label}: already finished, kept")
                continue
            started = time.perf_counter()
            result = run_live(run, out, time_scale=time_scale, backend=args.backend, address=args.address,
                              data_dir=args.data_dir, worker_timeout=timeout, invocation=invocation(args))
            live = result.live
            accuracy = "diverged" if result.final_accuracy is None else f"{100 * result.final_accuracy:.1f}%"
            crashes = f", {len(live['crashes'])} crashed" if live["crashes"] else ""
            print(f"[{i}/{len(runs)}] {run.label}: {config.updates} updates in {live['wall_time']:.0f} s "
                  f"({time.perf_counter() - started:.0f} s with start-up), staleness mean "
                  f"{result.mean_staleness:.2f} / p95 {result.p95_staleness:g}, final accuracy {accuracy}, "
                  f"{100 * live['overrun_fraction']:.1f}% of steps overran{crashes} "
                  f"-> {run_dir(out, run, time_scale)}")
        manifest = out / "experiment.json"
        try:  # a folder may hold several commands' live runs (10 and 30 workers): keep every run listed
            before = json.loads(manifest.read_text()).get("runs", []) if manifest.is_file() else []
        except ValueError:
            before = []
        names = list(dict.fromkeys(before + [run_dir(out, r, time_scale).name for r in runs]))
        write_json_atomic(manifest, {"experiment": experiment.name, "mode": "live", "time_scale": time_scale,
                                     "backend": args.backend, "runs": names})
    return 0


def cmd_validate(args) -> int:
    folder = Path(args.dir)
    if args.doc:
        check_writable(args.doc, "--doc")
    report = validate_folder(folder, args.data_dir)
    write_json_atomic(folder / "validation.json", report)
    png = figure(report, folder / "validation")
    if args.doc:
        write_text_atomic(Path(args.doc), markdown(report, folder, Path(args.doc)))
    if args.json:
        print(json.dumps({"runs": [{k: r[k] for k in ("run", "replay_max_abs_diff", "staleness", "ks", "shares")}
                                   for r in report["runs"]]}))
    else:
        print(table(report))
        print(f"figure: {png}; numbers: {folder / 'validation.json'}" + (f"; report: {args.doc}" if args.doc else ""))
    return 0
