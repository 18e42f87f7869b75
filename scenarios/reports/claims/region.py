"""The stability region: per algorithm and worker count, the learning rates at which every seed of the sweep converged.

Read from the ``stability`` sweep (axes ``workers`` and a learning rate, untuned). A rate
is in the region at a worker count when every seed converged there (docs/protocol.md,
section 6); the region over the sweep is the rates in it at every worker count. Its
*width* is the largest converging rate over the smallest (1 for one rate, 0 for none).
"""

from __future__ import annotations

from collections import defaultdict

from algorithms import registry
from scenarios.experiments.results import RunResult
from scenarios.reports.claims.records import Table


def _region(results: list[RunResult]) -> dict:
    """(algorithm, base, workers) -> {learning rate: (converged seeds, seeds)} from the stability sweep."""
    region = defaultdict(list)
    for r in results:
        region[(r.algorithm, r.base, r.config["workers"], r.config[f"lr_{r.base}"])].append(r.outcome == "converged")
    rows = defaultdict(dict)
    for (algorithm, base, workers, lr), ok in region.items():
        rows[(algorithm, base, workers)][lr] = (sum(ok), len(ok))
    return rows


def _width(lrs: list[float]) -> float:
    """max / min of the converging rates: 1 for one rate, 0 for none (so none < one < a range)."""
    return max(lrs) / min(lrs) if lrs else 0.0


def _width_text(lrs: list[float]) -> str:
    return "none" if not lrs else f"one rate, {lrs[0]:g}" if len(lrs) == 1 else f"{_width(lrs):.0f}x"


def _converging(by_lr: dict) -> list[float]:
    return sorted(lr for lr, (c, n) in by_lr.items() if c == n)


def stability_region(results: list[RunResult]) -> Table:
    """Per algorithm and cluster size, the learning rates at which every seed of the sweep converged."""
    rows = []
    for (algorithm, base, workers), by_lr in sorted(_region(results).items(),
                                                    key=lambda kv: (kv[0][2], registry.order(kv[0][0]))):
        ok = _converging(by_lr)
        rows.append((f"{registry.display_name(algorithm)} on {base}", workers,
                     ", ".join(f"{lr:g}" for lr in ok) or "none", _width_text(ok),
                     f"{sum(c for c, _ in by_lr.values())}/{sum(n for _, n in by_lr.values())}"))
    seeds = sorted({r.seed for r in results})
    return Table(("algorithm", "workers", "converging learning rates (every seed)", "width", "converged runs"),
                 tuple(rows), f"Stability region (the `stability` sweep, {len(seeds)} seeds per rate, untuned): "
                              "the learning rates at which every seed converged.")


def region_notes(results: list[RunResult]) -> list[str]:
    """Per cluster size: GSGM's converging range against the widest baseline's."""
    by_workers = defaultdict(dict)
    for (algorithm, base, workers), by_lr in _region(results).items():
        by_workers[workers][(algorithm, base)] = _converging(by_lr)
    notes = []
    everywhere = defaultdict(list)  # (algorithm, base) -> rates converging at each worker count
    for workers, ranges in sorted(by_workers.items()):
        for member, rates in ranges.items():
            everywhere[member].append(set(rates))
    if everywhere:
        notes.append("Stability region over every worker count of the sweep (" + ", ".join(map(str, sorted(by_workers)))
                     + "), the rates at which every seed converged at every one: " + "; ".join(
                         f"{registry.display_name(a)} on {b}: "
                         + (", ".join(f"{lr:g}" for lr in sorted(set.intersection(*sets))) or "none")
                         for (a, b), sets in sorted(everywhere.items(), key=lambda kv: registry.order(kv[0][0])))
                     + ".")
    for workers, ranges in sorted(by_workers.items()):
        mine = {k: v for k, v in ranges.items() if k[0] == "gsgm"}
        theirs = {k: v for k, v in ranges.items() if k[0] != "gsgm"}
        if not mine or not theirs:
            continue
        widest = max(theirs, key=lambda k: _width(theirs[k]))
        best = max(mine.values(), key=_width)
        width = _width(best)
        relation = "wider than" if width > _width(theirs[widest]) else \
            "as wide as" if width == _width(theirs[widest]) else "narrower than"
        notes.append(f"Sweep at {workers} workers: GSGM's converging range ({_width_text(best)}) is {relation} the "
                     f"widest baseline's ({registry.display_name(widest[0])} on {widest[1]}, "
                     f"{_width_text(theirs[widest])}).")
    return notes
