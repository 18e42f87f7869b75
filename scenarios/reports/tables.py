"""Tables and plots from saved results (no recomputation)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path

import numpy as np

from algorithms import BASES, registry
from algorithms.history import timed
from scenarios.experiments.results import write_text_atomic
from scenarios.reports.plots import report_figures
from scenarios.reports.stats import (
    Estimate,
    accuracy_at,
    censored_times,
    estimate,
    time_to_target,
)
from scenarios.reports.style import PALETTE, color  # noqa: F401 - re-exported: the palette and colours live in scenarios.reports.style

BASE_ORDER = {b: i for i, b in enumerate(BASES)}


def _group_key(kv):
    axis_value, algorithm, base = kv[0]
    base = base.split(" = ")[0]  # a merged row ("sgd = momentum") sits where its first base does
    return (axis_value if axis_value is not None else 0, BASE_ORDER.get(base, 9), registry.order(algorithm), algorithm)


def _identical(a: list, b: list) -> bool:
    """Two groups of runs on the same seeds with bit-identical histories: one configuration."""
    by_seed = {r.seed: (r.history, r.outcome) for r in b}
    return len(a) == len(b) and all(by_seed.get(r.seed) == (r.history, r.outcome) for r in a)


def merge_identical(groups: dict) -> dict:
    """Groups (axis value, algorithm, base) -> runs, with a group identical to an earlier one of
    the same algorithm and axis value merged into it, its base written ``sgd = momentum``
    (GSGM on sgd and on momentum make the same steps when their tuned rates map onto each other)."""
    out: dict = {}
    for key in sorted(groups, key=lambda k: _group_key((k, None))):
        axis_value, algorithm, base = key
        twin = next((k for k in out if k[0] == axis_value and k[1] == algorithm and _identical(out[k], groups[key])),
                    None)
        if twin is None:
            out[key] = groups[key]
        else:
            out[(axis_value, algorithm, f"{twin[2]} = {base}")] = out.pop(twin)
    return out


def aggregate(results) -> list[dict]:
    """One row per distinct (axis value, algorithm, base): estimates over seeds.

    Final accuracy is taken over finite runs (converged or failed: a failed run's accuracy
    is a measurement), the stds over converged runs; the counts are shown. Identical
    configurations are one row (``merge_identical``). The equal-time view takes, per (axis value,
    base), the simulated time at which the fastest algorithm's runs ended (median over
    seeds), and each run's accuracy at that time. Time to the target accuracy is
    censored: runs that never reached it count as such.
    """
    groups = defaultdict(list)
    for r in results:
        groups[(r.axis_value, r.algorithm, r.base)].append(r)
    groups = merge_identical(groups)
    finish = defaultdict(lambda: np.inf)  # (axis value, base) -> equal-time horizon
    for (axis_value, algorithm, base), rs in groups.items():
        base = base.split(" = ")[0]
        finish[(axis_value, base)] = min(finish[(axis_value, base)], float(np.median([r.sim_time for r in rs])))
    rows = []
    for (axis_value, algorithm, base), rs in sorted(groups.items(), key=_group_key):
        converged = [r for r in rs if r.outcome == "converged"]
        finite = [r for r in rs if r.outcome != "diverged"]
        target = rs[0].config.get("target_accuracy", 0.7)
        horizon = finish[(axis_value, base.split(" = ")[0])]
        tuned = {k: v for r in rs for k, v in r.tuned.items()}
        sources = {k: h["source"] for r in rs for k, h in r.hyperparameters.items()}
        rows.append({
            "axis_name": rs[0].axis, "axis": axis_value, "algorithm": algorithm, "base": base, "seeds": len(rs),
            "tuned": tuned, "rates": {k: (rs[0].config[k], sources[k]) for k in sources},
            "edges": {k: h["grid_edge"] for r in rs for k, h in r.hyperparameters.items() if h.get("grid_edge")},
            "converged": len(converged), "failed": sum(r.outcome == "failed" for r in rs),
            "diverged": sum(r.outcome == "diverged" for r in rs),
            "final_accuracy": estimate([r.final_accuracy for r in finite]),
            "accuracy_std": estimate([r.accuracy_std for r in converged]),
            "detrended_std": estimate([r.detrended_std for r in converged]),
            "equal_time": horizon,
            "accuracy_at_equal_time": estimate([accuracy_at(r.history, horizon) for r in finite]),
            "target": target,
            "time_to_target": censored_times([time_to_target(r.history, target) for r in rs],
                                             [r.sim_time for r in rs]),
            "sim_time": float(np.median([r.sim_time for r in rs])),
            "wall_time": float(np.sum([r.wall_time for r in rs])),
            "mean_staleness": float(np.mean([r.trace["mean_staleness"] for r in rs])),
            "p95_staleness": float(np.mean([r.trace["p95_staleness"] for r in rs])),
        })
    # stability gain of each algorithm over ASGD on the same base (and axis value)
    reference = {(row["axis"], row["base"].split(" = ")[0]): row["accuracy_std"].mean for row in rows
                 if row["algorithm"] == "asgd" and row["accuracy_std"].mean is not None}
    for row in rows:
        ref = reference.get((row["axis"], row["base"].split(" = ")[0]))
        mine = row["accuracy_std"].mean
        row["stability_gain_vs_asgd"] = (ref - mine) / ref if ref and mine is not None else None
    return rows


def _outcomes(row) -> str:
    parts = [f"{row['converged']}/{row['seeds']}"]
    if row["failed"]:
        parts.append(f"{row['failed']} failed")
    if row["diverged"]:
        parts.append(f"{row['diverged']} diverged")
    return ", ".join(parts)


def _with_count(est: Estimate, row) -> str:
    text = est.format()
    return text if est.n == row["seeds"] or est.mean is None else f"{text} (n={est.n})"


UNTUNED = {"user": "yours", "configured": "untuned"}  # how a table marks a value not tuned for its configuration


def _value(k, v) -> str:
    return f"{k.removeprefix('lr_')} lr {v:g}" if k.startswith("lr_") else f"{k}={v:g}" if isinstance(v, float) \
        else f"{k}={v}"


def _tuned(row) -> str:
    """The row's tuned hyperparameters; a value not tuned for this configuration says so
    ("yours": set by the user; "untuned": the configured value)."""
    if not row["rates"]:  # results written before sources were recorded
        return ", ".join(_value(k, v) for k, v in sorted(row["tuned"].items())) or "—"
    return ", ".join(_value(k, v) + (f" ({UNTUNED[source]})" if source in UNTUNED else "")
                     + (" (grid edge)" if row["edges"].get(k) else "") for k, (v, source) in sorted(row["rates"].items()))


def table_rows(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    axis_name = next((r["axis_name"] for r in rows if r["axis_name"]), None)
    any_tuned = any(r["tuned"] or r["rates"] for r in rows)
    all_tuned = all(source not in UNTUNED for r in rows for _, source in r["rates"].values())
    target = next((r["target"] for r in rows), 0.7)
    header = ([axis_name] if axis_name else []) + ["algorithm", "base"] + ([
        "tuned" if all_tuned else "hyperparameters"] if any_tuned else []) + [
        "final acc. (%)", "acc. std (%)", "detrended std (%)", "stability gain", "converged", "acc. at equal time (%)",
        f"time to {100 * target:.0f}%", "sim. time (s)", "staleness mean / p95"]
    body = []
    for r in rows:
        gain = r["stability_gain_vs_asgd"]
        none_converged, none_finite = r["converged"] == 0, r["diverged"] == r["seeds"]
        body.append(([str(r["axis"])] if axis_name else []) + [
            registry.display_name(r["algorithm"]), r["base"]] + ([_tuned(r)] if any_tuned else []) + [
            "—" if none_finite else _with_count(r["final_accuracy"], r),
            "—" if none_converged else _with_count(r["accuracy_std"], r),
            "—" if none_converged else _with_count(r["detrended_std"], r),
            "—" if r["algorithm"] == "asgd" or gain is None else f"{100 * gain:+.0f}%",
            _outcomes(r),
            "—" if none_finite else f"{r['accuracy_at_equal_time'].format()} @ {r['equal_time']:.0f} s",
            r["time_to_target"].format(),
            f"{r['sim_time']:.0f}",
            f"{r['mean_staleness']:.1f} / {r['p95_staleness']:.0f}",
        ])
    return header, body


def markdown_table(rows) -> str:
    header, body = table_rows(rows)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(b) + " |" for b in body]
    return "\n".join(lines)


def terminal_table(rows) -> str:
    header, body = table_rows(rows)
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*b) for b in body])


def csv_table(rows) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["axis_name", "axis", "algorithm", "display_name", "base", "tuned", "untuned", "seeds", "converged",
                     "failed", "diverged", "final_accuracy_mean", "final_accuracy_ci95", "accuracy_std_mean",
                     "accuracy_std_ci95", "detrended_std_mean", "detrended_std_ci95", "stability_gain_vs_asgd", "equal_time", "accuracy_at_equal_time_mean",
                     "accuracy_at_equal_time_ci95", "target_accuracy", "time_to_target_reached",
                     "time_to_target_median", "time_to_target_censored_after", "sim_time", "wall_time",
                     "mean_staleness", "p95_staleness"])
    for r in rows:
        fa, st, eq, tt = r["final_accuracy"], r["accuracy_std"], r["accuracy_at_equal_time"], r["time_to_target"]
        writer.writerow([r["axis_name"] or "", "" if r["axis"] is None else r["axis"], r["algorithm"],
                         registry.display_name(r["algorithm"]), r["base"],
                         ";".join(f"{k}={v}" for k, v in sorted(r["tuned"].items())),
                         ";".join(f"{k}={v} ({source})" for k, (v, source) in sorted(r["rates"].items())
                                  if source in UNTUNED), r["seeds"], r["converged"],
                         r["failed"], r["diverged"], _blank(fa.mean), _blank(fa.half_width), _blank(st.mean),
                         _blank(st.half_width), _blank(r["detrended_std"].mean), _blank(r["detrended_std"].half_width),
                         _blank(r["stability_gain_vs_asgd"]), r["equal_time"],
                         _blank(eq.mean), _blank(eq.half_width), r["target"], tt.reached, _blank(tt.median),
                         _blank(tt.longest_censored), r["sim_time"], r["wall_time"], r["mean_staleness"],
                         r["p95_staleness"]])
    return buf.getvalue()


def _blank(value):
    return "" if value is None else value


def header_note(manifest: dict) -> str:
    """What differs from the experiment's defaults (overrides, seed count), for table and plot headers."""
    parts = []
    overrides = manifest.get("overrides") or {}
    if overrides:
        parts.append("overrides: " + ", ".join(f"{k}={v}" for k, v in sorted(overrides.items())))
    seeds, default = manifest.get("seeds"), manifest.get("default_seeds")
    if seeds is not None and default is not None and seeds != default:
        parts.append(f"{seeds} seeds (experiment default {default})")
    return "; ".join(parts)


@timed("report and plots")
def write_report(results, out: Path, title: str, note: str = "") -> tuple[str, list[Path]]:
    """Write table.md, table.csv and plots/ under ``out``; return the terminal table and plot paths."""

    rows = aggregate(results)
    md = f"# {title}\n\n" + (f"{note}\n\n" if note else "") + f"{markdown_table(rows)}\n"
    write_text_atomic(out / "table.md", md)
    write_text_atomic(out / "table.csv", csv_table(rows))

    plots = report_figures(results, rows, out / "plots")
    return terminal_table(rows), plots
