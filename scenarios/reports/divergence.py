"""DC-ASGD-a's early divergence: from the method or from the implementation? A small study, its data and its table.

In the stability sweep DC-ASGD-a diverged within its first evaluations at learning rates
where ASGD stayed finite. This study replays the same traces (fmnist's configuration,
10 workers) with DC-ASGD in the forms its sources give, on plain SGD, and records when
each run diverges and how far it gets:

- ASGD (``lam0 = 0``: no compensation);
- DC-ASGD-a as the paper writes it (Zheng et al. 2017, Algorithm 2 and section 5): the
  mean square starts at 0, one on the server, ``lam0 = 2`` (stalesim's ``dcasgd-a``);
- the same with one mean square per worker (``per_worker_ms``), as some public code keeps it;
- the same with the mean square bias-corrected by ``1 - m^t`` (Adam's correction; not in
  the paper);
- DC-ASGD-a with ``lam0 = 0.5``;
- DC-ASGD-c, the constant ``lam = 0.04`` of the paper's DC-ASGD-c and MXNet's ``DCASGD``.

    python -m scenarios.reports.divergence run docs/dcasgd-divergence.json   (minutes)
    python -m scenarios.reports.divergence update docs/dcasgd-divergence.json

The second writes the table into docs/choices.md between its generated markers; a test
checks that it is what the committed JSON says.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import replace
from pathlib import Path

import jax
import numpy as np

from algorithms import replay
from algorithms.asgd import asgd
from algorithms.dcasgd import dcasgd
from scenarios.experiments.catalogue import EXPERIMENTS
from scenarios.experiments.cluster import trace_for
from scenarios.experiments.outcomes import metrics_of
from scenarios.experiments.provenance import machine, versions
from scenarios.experiments.results import write_json_atomic
from scenarios.workloads.workload import workload

LEARNING_RATES = (0.05, 0.158, 0.5)
SEEDS = (0, 1, 2)
UPDATES, EVAL_EVERY = 1500, 50
VARIANTS = {  # name -> the rule at a learning rate
    "ASGD (lam0 = 0)": lambda lr: asgd(lr),
    "DC-ASGD-a, the paper's form (lam0 = 2, mean square from 0, on the server)":
        lambda lr: dcasgd(lr, lam=2.0, adaptive=True),
    "... one mean square per worker": lambda lr: dcasgd(lr, lam=2.0, adaptive=True, per_worker_ms=True),
    "... mean square bias-corrected (1 - m^t)": lambda lr: dcasgd(lr, lam=2.0, adaptive=True, bias_correction=True),
    "DC-ASGD-a, lam0 = 0.5": lambda lr: dcasgd(lr, lam=0.5, adaptive=True),
    "DC-ASGD-c, lam = 0.04": lambda lr: dcasgd(lr, lam=0.04, adaptive=False),
}


def run(out: Path) -> dict:
    """Every variant x learning rate x seed on fmnist's traces; the data as written to ``out``."""
    cfg = replace(EXPERIMENTS["fmnist"].config, updates=UPDATES, eval_every=EVAL_EVERY, final_evals=5).validate()
    wl = workload(cfg)
    rows = []
    for seed in SEEDS:
        trace = trace_for(cfg, "asgd", seed, None, wl.num_classes)
        params0 = wl.model.init(jax.random.PRNGKey(seed))
        for name, make in VARIANTS.items():
            for lr in LEARNING_RATES:
                history = replay(trace, make(lr), wl.problem(params0), eval_every=cfg.eval_every, seed=seed,
                                 mode="scan")
                m = metrics_of(history, cfg)
                rows.append({"variant": name, "learning_rate": lr, "seed": seed, "outcome": m["outcome"],
                             "diverged_at": m["diverged_at"], "final_accuracy": m["final_accuracy"]})
                print(f"{name[:40]:<40} lr {lr:<6} seed {seed}: {m['outcome']}", file=sys.stderr)
    data = {"config": {"experiment": "fmnist", "updates": UPDATES, "eval_every": EVAL_EVERY, "seeds": list(SEEDS)},
            "rows": rows, "versions": versions(), "machine": machine()}
    write_json_atomic(out, data)
    return data


def markdown(data: dict) -> str:
    """The table: per variant and learning rate, how many seeds diverged, when, and the others' accuracy."""
    lrs = sorted({r["learning_rate"] for r in data["rows"]})
    lines = ["| variant | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " |", "|---|" + "---|" * len(lrs)]
    for name in dict.fromkeys(r["variant"] for r in data["rows"]):
        cells = []
        for lr in lrs:
            rs = [r for r in data["rows"] if r["variant"] == name and r["learning_rate"] == lr]
            div = [r["diverged_at"] for r in rs if r["outcome"] == "diverged" and r["diverged_at"] is not None]
            blown = sum(r["outcome"] == "diverged" for r in rs)
            finite = [r["final_accuracy"] for r in rs if r["outcome"] != "diverged"]
            when = "" if not div else f" (at update {min(div)})" if min(div) == max(div) else \
                f" (at update {min(div)}-{max(div)})"
            text = f"{blown}/{len(rs)} diverged{when}"
            if finite:
                text += f"; others {100 * np.mean(finite):.0f}%"
            cells.append(text)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    c = data["config"]
    lines += ["", f"fmnist's configuration (10 workers, one class each), plain SGD, {c['updates']:,} updates evaluated "
                  f"every {c['eval_every']}, seeds {', '.join(map(str, c['seeds']))}, each variant on the same traces; "
                  "'diverged' is the outcome rule's (docs/protocol.md); 'others': the mean final accuracy of the runs "
                  f"that did not diverge. Made by `python -m scenarios.reports.divergence run` with JAX "
                  f"{data['versions']['jax']} at commit {str(data['versions']['git_commit'])[:12]}."]
    return "\n".join(lines) + "\n"


CHOICES = Path(__file__).resolve().parents[2] / "docs" / "choices.md"
BLOCK = re.compile(r"(<!-- generated: dcasgd-divergence -->\n)(.*?)(<!-- end: dcasgd-divergence -->)", re.S)


def shown(text: str) -> str:
    """The table docs/choices.md shows between its generated markers."""
    return BLOCK.search(text).group(2)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 2 and argv[0] == "run":
        print(markdown(run(Path(argv[1]))), end="")
        return 0
    if len(argv) == 2 and argv[0] == "update":
        body = markdown(json.loads(Path(argv[1]).read_text()))
        CHOICES.write_text(BLOCK.sub(lambda m: m.group(1) + body + m.group(3), CHOICES.read_text()))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
