"""Statistics of a trace: staleness, fairness, idleness, throughput."""

from __future__ import annotations

import numpy as np

from .trace import PULL, PUSH, Trace


def idle_time(trace: Trace) -> np.ndarray:
    """Per worker, the simulated seconds spent waiting on the server: from each push
    to the pull that follows it (zero under ``fifo`` with no service time)."""
    idle = np.zeros(trace.num_workers)
    pushed_at = np.full(trace.num_workers, np.nan)
    for k, w, t in zip(trace.kind.tolist(), trace.worker.tolist(), trace.time.tolist()):
        if k == PUSH:
            pushed_at[w] = t
        elif k == PULL and not np.isnan(pushed_at[w]):
            idle[w] += t - pushed_at[w]
            pushed_at[w] = np.nan
    return idle


def staleness_histogram(staleness: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, counts) of every staleness value from 0 to the maximum."""
    staleness = np.asarray(staleness, dtype=np.int64)
    counts = np.bincount(staleness) if len(staleness) else np.zeros(1, dtype=np.int64)
    return np.arange(len(counts)), counts


def summarize(trace: Trace) -> dict:
    """A JSON-ready summary of a trace."""
    staleness = trace.staleness
    per_worker = np.bincount(trace.applied_worker, minlength=trace.num_workers)
    sim_time = trace.sim_time
    values, counts = staleness_histogram(staleness)
    pct = np.percentile(staleness, [50, 90, 95, 99]) if len(staleness) else np.zeros(4)
    return {
        "policy": trace.policy,
        "workers": trace.num_workers,
        "updates": trace.num_updates,
        "events": trace.num_events,
        "sim_time": sim_time,
        "updates_per_sim_second": trace.num_updates / sim_time if sim_time > 0 else float("inf"),
        "mean_staleness": float(staleness.mean()) if len(staleness) else 0.0,
        "std_staleness": float(staleness.std()) if len(staleness) else 0.0,
        "p50_staleness": float(pct[0]),
        "p90_staleness": float(pct[1]),
        "p95_staleness": float(pct[2]),
        "p99_staleness": float(pct[3]),
        "max_staleness": int(staleness.max()) if len(staleness) else 0,
        "staleness_histogram": {int(v): int(c) for v, c in zip(values, counts) if c},
        "updates_per_worker": per_worker.tolist(),
        "idle_time_per_worker": idle_time(trace).tolist(),
        "pending_slots": trace.num_slots,
    }


def format_summary(summary: dict, width: int = 40) -> str:
    """A readable multi-line summary with a terminal histogram of staleness."""
    lines = [
        f"policy {summary['policy']}, {summary['workers']} workers, {summary['updates']} updates "
        f"in {summary['sim_time']:.3f} simulated s ({summary['updates_per_sim_second']:.1f} updates/s)",
        f"staleness: mean {summary['mean_staleness']:.2f}, p50 {summary['p50_staleness']:g}, "
        f"p95 {summary['p95_staleness']:g}, max {summary['max_staleness']}",
    ]
    hist = summary["staleness_histogram"]
    if hist:
        peak = max(hist.values())
        top = max(hist)
        # at most 20 rows: bucket staleness values when the range is wide
        bucket = max(1, -(-(top + 1) // 20))
        rows: dict[int, int] = {}
        for v, c in hist.items():
            rows[v // bucket * bucket] = rows.get(v // bucket * bucket, 0) + c
        peak = max(rows.values())
        for lo in range(0, top + 1, bucket):
            c = rows.get(lo, 0)
            label = f"{lo}" if bucket == 1 else f"{lo}-{lo + bucket - 1}"
            lines.append(f"  {label:>9} | {'#' * round(width * c / peak):<{width}} {c}")
    per = summary["updates_per_worker"]
    lines.append(f"updates per worker: min {min(per)}, max {max(per)}"
                 + (f"  {per}" if len(per) <= 16 else ""))
    idle = summary["idle_time_per_worker"]
    lines.append(f"idle time per worker: mean {np.mean(idle):.3f} s, max {max(idle):.3f} s")
    return "\n".join(lines)
