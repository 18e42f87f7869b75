"""The Python API: run a named experiment or a sweep from Python, with the command line's options and numbers.

``run`` is ``stalesim run``, ``reproduce`` is ``stalesim reproduce`` (it also writes the
table and the figures), ``sweep`` is ``stalesim sweep`` and ``load`` is ``stalesim
report``: each plans with the same code (``experiments.plan``), uses the same output
folder and returns the same numbers, bit for bit, as the command (``jobs`` included).
Options take Python values (``algorithms=["asgd", "gsgm"]``, ``workers=30``,
``set={"lr_sgd": 0.02}``) or the command line's strings (``algorithms="asgd,gsgm"``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

from scenarios.errors import ConfigError
from scenarios.experiments.experiment import carry_out, carry_out_sweep
from scenarios.experiments.plan import Options, plan
from scenarios.experiments.plan import jobs as parse_jobs
from scenarios.experiments.results import RunResult, collect, current_names
from scenarios.experiments.sweep import Sweep, load_sweep
from scenarios.reports.plots import report_figures
from scenarios.reports.stats import time_to_target
from scenarios.reports.sweeps import tidy_rows, write_sweep_report
from scenarios.reports.tables import (
    aggregate,
    csv_table,
    header_note,
    markdown_table,
    terminal_table,
    write_report,
)

Names = Union[None, str, Sequence[str]]


@dataclass
class Experiment:
    """A finished experiment's (or sweep's) results, and what can be made of them."""

    name: str
    out: Path
    results: list[RunResult]
    manifest: dict
    sweep: Optional[Sweep] = None

    def rows(self) -> list[dict]:
        """One row per (axis value, algorithm, base): estimates over seeds (``reports.tables.aggregate``)."""
        return aggregate(self.results)

    def table(self, style: str = "terminal") -> str:
        """The table of ``stalesim run``: ``terminal`` (aligned text), ``markdown`` or ``csv``."""
        formats = {"terminal": terminal_table, "markdown": markdown_table, "csv": csv_table}
        if style not in formats:
            raise ConfigError(f"style: must be one of {', '.join(formats)}, got {style!r}")
        return formats[style](self.rows())

    def records(self) -> list[dict]:
        """Tidy records, one per run: what it was (axis, algorithm, base, seed, learning rate
        and its source) and what it measured (outcome, accuracy, stability, staleness, time)."""
        if self.sweep is not None:
            return tidy_rows(self.results, self.sweep)
        target = self.results[0].config.get("target_accuracy", 0.7) if self.results else 0.7
        return [{**({r.axis: r.axis_value} if r.axis else {}), "algorithm": r.algorithm, "base": r.base,
                 "seed": r.seed, "policy": r.policy, "learning_rate": r.config[f"lr_{r.base}"],
                 "learning_rate_source": r.hyperparameters.get(f"lr_{r.base}", {}).get("source", ""),
                 "outcome": r.outcome, "final_accuracy": r.final_accuracy, "accuracy_std": r.accuracy_std,
                 "mean_staleness": r.mean_staleness, "p95_staleness": r.p95_staleness, "sim_time": r.sim_time,
                 "time_to_target": time_to_target(r.history, target)} for r in self.results]

    def dataframe(self):
        """The records as a pandas DataFrame (pandas is not a dependency: install it to use this)."""
        try:
            import pandas  # optional, and heavy: loaded only when asked for
        except ImportError:
            raise ConfigError("dataframe: needs pandas, which is not installed (pip install pandas); "
                              "records() gives the same rows as dicts") from None
        return pandas.DataFrame(self.records())

    def figures(self, folder: Union[str, Path, None] = None) -> list[Path]:
        """Draw the figures (PNG and PDF, each with a caption) into ``folder`` (default
        ``OUT/plots``); their paths."""
        folder = Path(folder) if folder is not None else self.out / "plots"
        if self.sweep is not None:
            write_sweep_report(self.results, self.sweep, self.out)
            return sorted((self.out / "plots").glob("*.png"))
        return report_figures(self.results, self.rows(), folder)


def _names(value: Names) -> Optional[str]:
    return value if value is None or isinstance(value, str) else ",".join(value)


def _count(value) -> Optional[str]:
    return None if value is None else str(value)


def _assignments(values: Union[None, Mapping, Sequence[str]]) -> tuple:
    if values is None:
        return ()
    if isinstance(values, Mapping):
        return tuple(f"{k}={','.join(map(str, v)) if isinstance(v, (list, tuple)) else v}" for k, v in values.items())
    return tuple(values)


def _tune(values: Union[None, str, Mapping, Sequence[str]]) -> tuple:
    if values is None:
        return ()
    if isinstance(values, str):
        return (values,)
    return _assignments(values)


def _quiet(*_args) -> None:
    return None


def options(experiment: str, *, algorithms: Names = None, base: Names = None, workers=None, seeds=None, updates=None,
            set: Union[None, Mapping, Sequence[str]] = None, tune=None, tuning_seeds=2, jobs="auto",
            out: Union[str, Path, None] = None, data_dir: Union[str, Path, None] = None,
            force: bool = False, halving: Optional[str] = None) -> Options:
    """The request as the command line would spell it (so both give the same folder identity)."""
    return Options(experiment, _names(algorithms), _names(base), _count(workers), _count(seeds), _count(updates),
                   _assignments(set), _tune(tune), str(tuning_seeds), str(jobs), None if out is None else str(out),
                   None if data_dir is None else str(data_dir), force, None if halving is None else str(halving))


def run(experiment: str, *, log=print, **kwargs) -> Experiment:
    """``stalesim run EXPERIMENT``: carry out the grid (finished runs in ``out`` are kept).

    Args:
      experiment: a named experiment (``stalesim list``).
      algorithms, base: names, as a list or comma-separated (default: the experiment's).
      workers, seeds, updates: numbers (default: the experiment's).
      set: configuration fields, ``{"lr_sgd": 0.02}`` (never replaced by tuned values).
      tune: ``"default"`` or ``{"lr": ["x0.1", "x1", "x10"]}``; tuning_seeds: per candidate;
        halving: ``"3@1/6"``, successive halving over the tuning grid (default: the full grid).
      jobs: ``"auto"`` or a number of processes; out: the results folder (default
        ``results/EXPERIMENT``); data_dir: where the data set's files are; force: recompute.
      log: where progress lines go (``None``: nowhere).
    """
    log = log or _quiet
    request = options(experiment, **kwargs)
    planned = plan(request, log=log)
    results = carry_out(planned, log=log, invocation={"api": "scenarios.run", "options": request.identity})
    return Experiment(experiment, planned.out, results, json.loads((planned.out / "experiment.json").read_text()))


def reproduce(experiment: str, *, log=print, **kwargs) -> Experiment:
    """``stalesim reproduce EXPERIMENT``: ``run``, then write ``OUT/table.md``, ``table.csv`` and the figures."""
    done = run(experiment, log=log, **kwargs)
    write_report(done.results, done.out, f"stalesim reproduce {experiment}", header_note(done.manifest))
    return done


def sweep(spec: Union[str, Path], *, out: Union[str, Path, None] = None, backend: str = "local", jobs="auto",
          address: Optional[str] = None, data_dir: Union[str, Path, None] = None, force: bool = False,
          log=print) -> Experiment:
    """``stalesim sweep SPEC``: a sweep file, or the name of a shipped sweep; writes runs.csv,
    summary.md and the figures into ``out`` (default ``results/sweep-NAME``)."""
    log = log or _quiet
    loaded = load_sweep(str(spec))
    folder = Path(out) if out is not None else Path(f"results/sweep-{loaded.name}")
    results = carry_out_sweep(loaded, folder, backend=backend, jobs=parse_jobs(jobs), address=address,
                              data_dir=None if data_dir is None else str(data_dir), force=force, log=log,
                              invocation={"api": "scenarios.sweep", "spec": str(loaded.path)})
    write_sweep_report(results, loaded, folder)
    return Experiment(loaded.name, folder, results, json.loads((folder / "experiment.json").read_text()), loaded)


def load(folder: Union[str, Path]) -> Experiment:
    """``stalesim report DIR``: the results a finished (or partly finished) command left in ``folder``."""
    folder = Path(folder)
    manifest_path = folder / "experiment.json"
    if not manifest_path.is_file():
        raise ConfigError(f"dir: {str(folder)!r} holds no experiment.json; give a directory written by 'stalesim run'")
    try:
        manifest = current_names(json.loads(manifest_path.read_text()))
    except ValueError:
        raise ConfigError(f"dir: {manifest_path} is not valid JSON") from None
    wanted = set(manifest.get("runs", []))
    results = [r for r in collect(folder) if r.split == "test" and (not wanted or r.dirname in wanted)]
    if not results:
        raise ConfigError(f"dir: no finished runs under {folder / 'runs'}")
    loaded = None
    if "sweep" in manifest:
        spec = manifest.get("spec")
        if not spec or not Path(spec).is_file():
            raise ConfigError(f"dir: {folder} is a sweep's folder, and its sweep file {spec!r} is gone; run "
                              "'stalesim sweep FILE --out DIR' again (finished runs are kept)")
        loaded = load_sweep(spec)
    return Experiment(manifest.get("sweep") or manifest.get("experiment", folder.name), folder, results, manifest, loaded)
