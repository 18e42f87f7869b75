"""The whole protocol's wall time on this machine: a record made from the commands' logs, and its table.

    python -m benchmarks.protocol record LOGDIR OUT.json   # from `stalesim reproduce ... > LOGDIR/NAME.log`
    python -m benchmarks.protocol markdown OUT.json        # the table benchmarks/README.md shows

Each part of ``stalesim claims --rerun`` (an experiment, a study) is one command; its log
ends with "finished in N s", and its runs say how many were tuning runs. The record
keeps, per part, the runs, the processes and the wall time, with the machine's load
average when the record was made (the machine is shared: the times are what it gave).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from benchmarks.records import record_command
from scenarios.experiments.rerun import CLAIM_EXPERIMENTS, SWEEP

FINISHED = re.compile(r"^finished in (\d+) s$", re.M)
RUNS = re.compile(r"^(\d+) runs, (\d+) already finished, (\d+) to do \((.*)\)$", re.M)


def record(logs: Path) -> dict:
    parts = []
    wanted = CLAIM_EXPERIMENTS + (f"sweep-{SWEEP}",)
    for log in sorted(logs.glob("*.log"), key=lambda p: wanted.index(p.stem) if p.stem in wanted else len(wanted)):
        if log.stem not in wanted:
            continue
        text = log.read_text()
        finished = FINISHED.search(text)
        batches = RUNS.findall(text)
        if not finished or not batches:
            continue
        done = sum(int(todo) for _, _, todo, _ in batches)
        parts.append({"part": log.stem, "runs_carried_out": done, "tuning_runs": int(batches[0][2]) if len(batches) > 1
                      else 0, "processes": batches[-1][3], "wall_seconds": int(finished.group(1))})
    return {"machine": "shared 2-core AMD EPYC (x86_64, AVX2, FMA)", "load_average_1min": os.getloadavg()[0],
            "parts": parts, "total_wall_seconds": sum(p["wall_seconds"] for p in parts)}


def markdown(rec: dict) -> str:
    lines = ["| part | runs carried out (tuning) | processes | wall time |", "|---|---:|---|---:|"]
    for p in rec["parts"]:
        lines.append(f"| `{p['part']}` | {p['runs_carried_out']} ({p['tuning_runs']}) | {p['processes']} | "
                     f"{p['wall_seconds'] / 60:.1f} min |")
    lines.append(f"| all | {sum(p['runs_carried_out'] for p in rec['parts'])} | | "
                 f"{rec['total_wall_seconds'] / 60:.0f} min |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return record_command(list(sys.argv[1:] if argv is None else argv), __doc__, lambda logs: record(*logs), markdown)


if __name__ == "__main__":
    sys.exit(main())
