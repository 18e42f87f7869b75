"""Tables and plots from saved results (no recomputation)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path

import numpy as np

COLUMNS = ("axis", "algorithm", "base", "seeds", "final_accuracy", "accuracy_std", "stability_gain_vs_asgd",
           "diverged", "mean_staleness", "p95_staleness", "sim_time")


def _mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return float(np.mean(values)), float(np.std(values))


def aggregate(results: list[dict]) -> list[dict]:
    """One row per (axis value, algorithm, base): mean and spread over seeds."""
    groups = defaultdict(list)
    for r in results:
        groups[(r.get("axis_value"), r["algorithm"], r["base"])].append(r)
    order = {a: i for i, a in enumerate(("asgd", "dcasgd", "gsgm", "sasgd", "ssgd", "fedbuff"))}
    base_order = {b: i for i, b in enumerate(("sgd", "momentum", "adam"))}
    rows = []
    for (axis_value, algorithm, base), rs in sorted(groups.items(), key=lambda kv: (
            kv[0][0] if kv[0][0] is not None else 0, base_order.get(kv[0][2], 9), order.get(kv[0][1], 9))):
        finished = [r for r in rs if not r["diverged"]]
        acc = _mean_std([r["final_accuracy"] for r in finished])
        std = _mean_std([r["accuracy_std"] for r in finished])
        rows.append({
            "axis_name": rs[0].get("axis"), "axis": axis_value, "algorithm": algorithm, "base": base,
            "seeds": len(rs), "final_accuracy": acc, "accuracy_std": std,
            "diverged": sum(r["diverged"] for r in rs),
            "mean_staleness": float(np.mean([r["trace"]["mean_staleness"] for r in rs])),
            "p95_staleness": float(np.mean([r["trace"]["p95_staleness"] for r in rs])),
            "sim_time": float(np.mean([r["trace"]["sim_time"] for r in rs])),
        })
    # stability gain of each algorithm over ASGD on the same base (and axis value)
    reference = {(row["axis"], row["base"]): row["accuracy_std"][0] for row in rows
                 if row["algorithm"] == "asgd" and row["accuracy_std"][0] is not None}
    for row in rows:
        ref = reference.get((row["axis"], row["base"]))
        mine = row["accuracy_std"][0]
        row["stability_gain_vs_asgd"] = (ref - mine) / ref if ref and mine is not None else None
    return rows


def _fmt(pair, digits=3, percent=False):
    if pair is None or pair[0] is None:
        return "diverged"
    m, s = pair
    if percent:
        return f"{100 * m:.1f} ± {100 * s:.1f}"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def table_rows(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    axis_name = next((r["axis_name"] for r in rows if r["axis_name"]), None)
    header = ([axis_name] if axis_name else []) + ["algorithm", "base", "final acc. (%)", "acc. std (%)",
                                                   "stability gain", "diverged", "staleness mean / p95"]
    body = []
    for r in rows:
        gain = r["stability_gain_vs_asgd"]
        all_diverged = r["diverged"] == r["seeds"]
        body.append(([str(r["axis"])] if axis_name else []) + [
            r["algorithm"], r["base"],
            "diverged" if all_diverged else _fmt(r["final_accuracy"], percent=True),
            "diverged" if all_diverged else _fmt(r["accuracy_std"], percent=True),
            "—" if r["algorithm"] == "asgd" else ("n/a" if gain is None else f"{100 * gain:+.0f}%"),
            f"{r['diverged']}/{r['seeds']}",
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
    writer.writerow(["axis_name", "axis", "algorithm", "base", "seeds", "final_accuracy_mean", "final_accuracy_std",
                     "accuracy_std_mean", "accuracy_std_std", "stability_gain_vs_asgd", "diverged",
                     "mean_staleness", "p95_staleness", "sim_time"])
    for r in rows:
        fa, st = r["final_accuracy"], r["accuracy_std"]
        writer.writerow([r["axis_name"] or "", "" if r["axis"] is None else r["axis"], r["algorithm"], r["base"],
                         r["seeds"], fa[0], fa[1], st[0], st[1], r["stability_gain_vs_asgd"], r["diverged"],
                         r["mean_staleness"], r["p95_staleness"], r["sim_time"]])
    return buf.getvalue()


# ------------------------------------------------------------------ plots
COLORS = {"asgd": "tab:blue", "dcasgd": "tab:orange", "gsgm": "tab:green", "sasgd": "tab:purple",
          "ssgd": "tab:gray", "fedbuff": "tab:brown"}


def _curves(results):
    """(axis, base, algorithm) -> (mean sim time, mean acc, std acc) over seeds, evaluation by evaluation."""
    groups = defaultdict(list)
    for r in results:
        groups[(r.get("axis_value"), r["base"], r["algorithm"])].append(r["history"])
    out = {}
    for key, histories in groups.items():
        n = min(len(h) for h in histories)
        if n == 0:
            continue
        t = np.mean([[e["sim_time"] for e in h[:n]] for h in histories], axis=0)
        acc = np.array([[e["accuracy"] for e in h[:n]] for h in histories])
        out[key] = (t, acc.mean(0), acc.std(0))
    return out


def plot_all(results: list[dict], rows: list[dict], out_dir: Path, title: str = "") -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    curves = _curves(results)
    base_order = {b: i for i, b in enumerate(("sgd", "momentum", "adam"))}
    panels = sorted({(k[0], k[1]) for k in curves},
                    key=lambda p: (p[0] if p[0] is not None else 0, base_order.get(p[1], 9)))
    axis_name = next((r.get("axis") for r in results if r.get("axis")), None)

    # 1. accuracy against simulated time
    cols = min(3, len(panels)) or 1
    nrows = -(-len(panels) // cols) or 1
    fig, axes = plt.subplots(nrows, cols, figsize=(5 * cols, 3.6 * nrows), squeeze=False)
    for ax, (axis_value, base) in zip(axes.flat, panels):
        for (av, b, algorithm), (t, m, s) in sorted(curves.items(), key=lambda kv: kv[0][2]):
            if (av, b) != (axis_value, base):
                continue
            ax.plot(t, m, label=algorithm, color=COLORS.get(algorithm))
            ax.fill_between(t, m - s, m + s, alpha=0.2, color=COLORS.get(algorithm))
        label = f"{axis_name}={axis_value}, " if axis_name else ""
        ax.set_title(f"{label}base {base}")
        ax.set_xlabel("simulated time (s)")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"{title}: test accuracy (mean ± std over seeds)")
    fig.tight_layout()
    paths.append(_save(fig, out_dir / "accuracy_vs_time.png"))

    # 2. staleness histograms per policy
    by_policy = defaultdict(lambda: defaultdict(int))
    for r in results:
        key = r["policy"] + (f" ({axis_name}={r['axis_value']})" if axis_name else "")
        for v, c in r["trace"]["staleness_histogram"].items():
            by_policy[key][int(v)] += c
    fig, axes = plt.subplots(1, len(by_policy) or 1, figsize=(4.5 * max(1, len(by_policy)), 3.2), squeeze=False)
    for ax, (policy, hist) in zip(axes.flat, sorted(by_policy.items())):
        values = np.array(sorted(hist))
        counts = np.array([hist[v] for v in values], dtype=float)
        ax.bar(values, counts / counts.sum(), width=1.0, color="tab:gray")
        mean = float((values * counts).sum() / counts.sum())
        ax.axvline(mean, color="k", ls="--", lw=1, label=f"mean {mean:.1f}")
        ax.set_title(policy)
        ax.set_xlabel("staleness (versions)")
        ax.set_ylabel("fraction of updates")
        ax.legend()
    fig.suptitle(f"{title}: staleness of applied gradients")
    fig.tight_layout()
    paths.append(_save(fig, out_dir / "staleness_histograms.png"))

    # 3. stability (accuracy std over the second half) per algorithm and base
    fig, ax = plt.subplots(figsize=(7, 3.6))
    groups = sorted({(r["axis"], r["base"]) for r in rows},
                    key=lambda g: (g[0] if g[0] is not None else 0, base_order.get(g[1], 9)))
    algorithms = [a for a in COLORS if any(r["algorithm"] == a for r in rows)]
    width = 0.8 / max(1, len(algorithms))
    for j, algorithm in enumerate(algorithms):
        xs, ms, ss = [], [], []
        for i, g in enumerate(groups):
            row = next((r for r in rows if (r["axis"], r["base"]) == g and r["algorithm"] == algorithm), None)
            if row is not None and row["accuracy_std"][0] is not None:
                xs.append(i + (j - (len(algorithms) - 1) / 2) * width)
                ms.append(100 * row["accuracy_std"][0])
                ss.append(100 * row["accuracy_std"][1])
        ax.bar(xs, ms, width, yerr=ss, label=algorithm, color=COLORS[algorithm], capsize=3)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([(f"{axis_name}={g[0]}\n" if axis_name else "") + g[1] for g in groups])
    ax.set_ylabel("accuracy std, 2nd half (%)\n(lower is more stable)")
    ax.set_title(f"{title}: training stability")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    paths.append(_save(fig, out_dir / "stability.png"))
    plt.close("all")
    return paths


def _save(fig, path: Path) -> Path:
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)
    return path


def write_report(results: list[dict], out: Path, title: str) -> tuple[str, list[Path]]:
    """Write table.md, table.csv and plots/ under ``out``; return the terminal table and plot paths."""
    from .experiments import write_text_atomic

    rows = aggregate(results)
    md = f"# {title}\n\n{markdown_table(rows)}\n"
    write_text_atomic(out / "table.md", md)
    write_text_atomic(out / "table.csv", csv_table(rows))
    plots = plot_all(results, rows, out / "plots", title)
    return terminal_table(rows), plots
