"""The paper's claims judged from saved results: claim records built by the rules, then rendered as docs/claims.md.

    stalesim claims [--results DIR] [--out FILE]

reads ``DIR/fmnist``, ``DIR/scale``, ``DIR/noniid`` and ``DIR/sweep-stability`` (each
written by ``stalesim reproduce`` or ``stalesim sweep``), and the studies' folders that
are there (``DIR/gsgm-fifo``, ...: ``stalesim reproduce gsgm-fifo --tune default``), judges each claim by its rule
(``rules``) into a ``Claim`` record (``records``): the paper's words, the runs it rests
on, the paired comparisons with their intervals and Holm-adjusted p-values, the verdict
and the rule's sentence; and prints the records as Markdown (``rendering``) to ``FILE``
(default ``DIR/claims.md``; the committed docs/claims.md is ``--results docs/claims-data
--out docs/claims.md``). A corrupt experiment.json or result.json is refused, naming
the file. ``verdicts()`` returns the records' verdicts, for the README.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from scenarios.errors import ConfigError
from scenarios.experiments.catalogue import EXPERIMENTS
from scenarios.reports.claims.data import (
    Tuning,
    at_axis,
    load,
    provenance_problems,
    read_tuning,
    shared,
    source,
)
from scenarios.reports.claims.records import Claim, Report
from scenarios.reports.claims.rendering import render
from scenarios.reports.claims.studies import NAMES as STUDY_NAMES
from scenarios.reports.claims.studies import all_studies
from scenarios.reports.claims.rules import (
    claim_cifar,
    claim_dcasgd,
    claim_noniid,
    claim_scale,
    claim_stability,
)

PLANNED_SEEDS = 10  # issue 21: the seeds the next runs will have
CLAIM_FOLDERS = ("fmnist", "scale", "noniid", "sweep-stability")  # the experiment folders the claims read

__all__ = ["Claim", "Report", "claim_dcasgd", "claim_noniid", "claim_scale", "claim_stability", "markdown",
           "report", "verdicts"]


def tuning_file(root: Path, name: str) -> Optional[Path]:
    """The folder's own tuning.csv (it was tuned there), else the experiment's shipped one."""
    own = root / name / "tuning.csv"
    if own.is_file():
        return own
    return EXPERIMENTS[name].shipped_tuning if name in EXPERIMENTS else None


def report(root: Path, accept_provenance: bool = False) -> Report:
    """Every claim judged from the results under ``root``, with the sources and shared runs.

    Results that cannot be rebuilt from a commit (made in a working tree with uncommitted
    changes, or mixing JAX versions within an experiment) are refused with one line, unless
    ``accept_provenance``: then the document lists them up front."""
    root = Path(root)
    results = {name: load(root / name) for name in CLAIM_FOLDERS}
    studies = {name: load(root / name) for name in STUDY_NAMES if (root / name).is_dir()}
    problems = [p for name, rs in {**results, **studies}.items() for p in provenance_problems(name, rs)]
    if problems and not accept_provenance:
        raise ConfigError(f"--results: {problems[0].replace('`', '')}" + (f" (and {len(problems) - 1} more)" if
                                                                           len(problems) > 1 else "")
                          + "; rebuild from a clean checkout of a commit, or pass --accept-provenance and the "
                            "document will say so")
    tunings = {name: read_tuning(tuning_file(root, name)) if name in EXPERIMENTS else Tuning() for name in CLAIM_FOLDERS}
    fmnist, scale, noniid, sweep = (results[name] for name in CLAIM_FOLDERS)
    claims = (claim_stability(fmnist, tunings["fmnist"], studies.get("time-budget", [])), claim_scale(scale, sweep, tunings["scale"]),
              claim_noniid(noniid, tunings["noniid"]), claim_dcasgd(fmnist), claim_cifar())
    reference = next((r.config for r in fmnist if r.split == "test"), None)
    shares = []
    for name in ("scale", "noniid"):
        axis = next((r.axis for r in results[name] if r.axis), None)
        if reference is not None and axis in reference:
            common = shared("fmnist", fmnist, f"{name} at {axis} = {reference[axis]}",
                            at_axis(results[name], reference[axis]))
            if common.common:
                shares.append(common)
    sources = tuple(source(n, results[n], tunings[n]) for n in CLAIM_FOLDERS)
    seeds = [len(s.seeds) for s in sources if s.name != "sweep-stability" and s.seeds]  # the judged experiments
    sources += tuple(source(n, rs, read_tuning(tuning_file(root, n))) for n, rs in studies.items())
    return Report(str(root), claims, sources, tuple(shares), min(seeds) if seeds else 0, PLANNED_SEEDS,
                  tuple(problems), all_studies(fmnist, studies, tunings["fmnist"]))


def markdown(root: Path, accept_provenance: bool = False) -> str:
    """docs/claims.md from the results under ``root``."""
    return render(report(root, accept_provenance))


def verdicts(root: Path, accept_provenance: bool = True) -> list[tuple[str, str]]:
    """(claim, verdict) pairs from the claim records, for the README (which copies docs/claims.md,
    whose accepted provenance problems it lists)."""
    return report(root, accept_provenance).verdicts()
