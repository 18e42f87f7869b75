"""Everything behind docs/claims.md, from scratch, into one folder: the experiments, the studies and the sweep, tuned.

    stalesim claims --rerun --out DIR [--dry-run] [--jobs N]

carries out, into ``DIR/NAME`` each, the experiments the claims rest on at the settings
of the committed results (``CLAIM_EXPERIMENTS``: 10 reported seeds, ``--tune default``
with 2 tuning seeds), the ablation and sensitivity studies, and the stability sweep;
then writes ``DIR/claims.md``. Finished runs are kept (it resumes like ``run``), and a
run that several experiments share (same key: fmnist and noniid at one class per worker,
fmnist and every study's unchanged cells) is carried out once and copied to the others.
``--dry-run`` prints each part's plan and estimate, and the total. ``--parts`` carries out
only the named parts (``PARTS``), reusing the finished runs of every part already in ``DIR``.
"""

from __future__ import annotations

from pathlib import Path

from scenarios.errors import ConfigError
from scenarios.experiments.catalogue import EXPERIMENTS, STUDIES
from scenarios.experiments.estimate import dry_run
from scenarios.experiments.experiment import carry_out, carry_out_sweep
from scenarios.experiments.halving import parse_halving
from scenarios.experiments.plan import Options, claim_folder, plan
from scenarios.experiments.workers import kept_workers
from scenarios.experiments.sweep import load_sweep

SEEDS = "10"
TUNING_SEEDS = "2"
CLAIM_EXPERIMENTS = ("fmnist", "noniid", "scale") + tuple(STUDIES)
SWEEP = "stability"  # docs/claims-data/sweep-stability
PARTS = CLAIM_EXPERIMENTS + (f"sweep-{SWEEP}",)


def parts_from(text) -> tuple:
    """The parts ``--parts`` names (comma-separated), in the protocol's order; every part if empty."""
    if not text:
        return PARTS
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in PARTS]
    if unknown or not names:
        raise ConfigError(f"--parts: {', '.join(unknown) or repr(text)} is not a part; allowed: {', '.join(PARTS)}")
    return tuple(p for p in PARTS if p in names)


def plans(root: Path, jobs="auto", data_dir=None, halving=None) -> list:
    """Each experiment's plan into ``root/NAME``, at 10 seeds, tuned by the protocol (``halving``:
    ``--halving``, for the experiments that tune)."""
    return [plan(Options(name, seeds=SEEDS, tune=("default",) if EXPERIMENTS[name].tune else (),
                         tuning_seeds=TUNING_SEEDS, jobs=jobs, out=str(root / name), data_dir=data_dir,
                         halving=halving if EXPERIMENTS[name].tune else None))
            for name in CLAIM_EXPERIMENTS]


def estimate(root: Path, jobs="auto", data_dir=None, log=print, parts=PARTS, halving=None) -> float:
    """Print the plan and the estimate of the ``parts`` (runs shared between experiments counted
    once; runs already finished are not subtracted); return the summed midpoints of the
    estimates, in seconds."""
    planned = [p for p in plans(root, jobs, data_dir, halving) if p.experiment.name in parts]
    for p in planned:
        claim_folder(p.out, p.options.identity, force=False)  # what the real run would refuse, refused now
    total = 0.0
    if planned:
        tuned = list({r.key: r for p in planned if p.grids for r in p.runs}.values())  # a shared run counts once
        fixed = [r for p in planned if not p.grids for r in p.runs]
        shared = sum(len(p.runs) for p in planned if p.grids) - len(tuned)
        log(f"experiments: {', '.join(p.experiment.name for p in planned)} ({shared} reported runs shared between "
            "them, carried out once)")
        grids = next((p.grids for p in planned if p.grids), ())
        if tuned:
            total += dry_run(tuned, grids, int(TUNING_SEEDS), jobs, data_dir, halving=parse_halving(halving),
                             log=log) or 0.0
        if fixed:
            log("at fixed rates (not tuned): " + ", ".join(p.experiment.name for p in planned if not p.grids))
            total += dry_run(fixed, (), int(TUNING_SEEDS), jobs, data_dir, log=log) or 0.0
    if f"sweep-{SWEEP}" in parts:
        sweep = load_sweep(SWEEP)
        claim_folder(root / f"sweep-{SWEEP}", sweep.identity, force=False)
        log(f"sweep {SWEEP}:")
        total += dry_run(sweep.runs(), sweep.tune, 2, jobs, data_dir, out=root / f"sweep-{SWEEP}",
                         explicit=sweep.explicit, log=log) or 0.0
    return total


def rerun(root: Path, jobs="auto", data_dir=None, log=print, parts=PARTS, halving=None) -> None:
    """Carry out the ``parts`` into ``root``, each reusing the runs finished in every other
    experiment folder of ``root`` (the earlier parts', and those already there)."""
    command = (f"stalesim claims --rerun --out {root}" + ("" if parts == PARTS else f" --parts {','.join(parts)}")
               + ("" if halving is None else f" --halving {halving}"))
    with kept_workers():  # one set of worker processes for every part
        for p in plans(root, jobs, data_dir, halving):
            if p.experiment.name in parts:
                carry_out(p, log=log, invocation={"command": command}, reuse=experiment_folders(root, but=p.out))
        if f"sweep-{SWEEP}" in parts:
            out = root / f"sweep-{SWEEP}"
            carry_out_sweep(load_sweep(SWEEP), out, jobs=jobs, data_dir=data_dir, log=log,
                            invocation={"command": command}, reuse=experiment_folders(root, but=out))


def experiment_folders(root: Path, but: Path) -> tuple:
    """Every experiment folder in ``root`` (one holding an experiment.json) other than ``but``: the
    parts already there, and any other experiment a user put beside them (an earlier run of the
    sweep at fewer seeds, say)."""
    if not root.is_dir():
        return ()
    return tuple(d for d in sorted(root.iterdir())
                 if d.resolve() != Path(but).resolve() and (d / "experiment.json").is_file())
