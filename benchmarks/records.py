"""The benchmarks' record: each figure's target and status, its printed line, and the JSON file of a whole run."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

TARGETS = {"replay_asgd": 0.95, "replay_dcasgd": 0.9, "replay_gsgm": 0.9, "trace_100": 100_000,
           "seeds_mlp": 1.5, "scaling": 0.9, "memory": 1.5, "end_to_end": 0.8, "peer_cnn": 1.2}
CNN_TARGETS = {"replay_asgd": 0.9, "replay_dcasgd": 0.8, "replay_gsgm": 0.8}  # the conv net's, from the first issue
AT_MOST = {"memory"}  # figures whose target is an upper bound
HEADER = f"{'figure':<14} {'what':<48} {'value':>10}  {'target':<10} {'':<5}  note"


def status(figure: str, value: float, target) -> str:
    """``pass`` or ``short`` against the target (an upper bound for ``AT_MOST``), "" without one."""
    if target is None:
        return ""
    return "pass" if (value <= target if figure in AT_MOST else value >= target) else "short"


def line(row: dict) -> str:
    """A figure's printed line (the table under ``HEADER``)."""
    target = row["target"]
    target_text = "" if target is None else (f"<= {target:g}" if row["figure"] in AT_MOST else f">= {target:g}")
    return (f"{row['figure']:<14} {row['what']:<48} {row['value']:>10.3f}  {target_text:<10} {row['status']:<5}  "
            f"{row['note']}")


class Record:
    """The figures of one run, printed as they come (``report``) and written as JSON (``write``)."""

    def __init__(self):
        self.rows: list[dict] = []
        self.started = time.perf_counter()

    def report(self, figure: str, what: str, value: float, target, note: str = "") -> None:
        row = {"figure": figure, "what": what, "value": value, "target": target,
               "status": status(figure, value, target), "note": note}
        self.rows.append(row)
        print(line(row), flush=True)

    def write(self, out: Path, quick: bool) -> dict:
        """The run's JSON: date, whether ``--quick``, seconds, the machine, and every row."""
        import jax

        result = {"date": time.strftime("%Y-%m-%d"), "quick": quick, "seconds": time.perf_counter() - self.started,
                  "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                              "python": platform.python_version(), "jax": jax.__version__,
                              "device": str(jax.devices()[0])},
                  "rows": self.rows}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
        return result


def record_command(argv: list, doc: str, record, markdown) -> int:
    """``record INPUT [INPUT ...] OUT.json`` (writes the record, prints its table) or ``markdown
    OUT.json`` (prints the table): the command line of a record made from finished work."""
    if len(argv) >= 3 and argv[0] == "record":
        rec = record([Path(a) for a in argv[1:-1]])
        Path(argv[-1]).write_text(json.dumps(rec, indent=1) + "\n")
        print(markdown(rec), end="")
        return 0
    if len(argv) == 2 and argv[0] == "markdown":
        print(markdown(json.loads(Path(argv[1]).read_text())), end="")
        return 0
    print(doc, file=sys.stderr)
    return 2
