"""The whole protocol's wall time on this machine: a record made from the commands' logs, and its table.

    python -m benchmarks.protocol record LOGDIR OUT.json   # from `stalesim reproduce ... > LOGDIR/NAME.log`
    python -m benchmarks.protocol record RERUN.log OUT.json   # from `stalesim claims --rerun ... > RERUN.log`
    python -m benchmarks.protocol markdown OUT.json        # the table benchmarks/README.md shows

Each part of ``stalesim claims --rerun`` (an experiment, a study, the sweep) starts with
"NAME: N reported runs -> DIR" and ends with "finished in N s", and its runs say how many
were tuning runs; one ``claims --rerun`` log is split into its parts at those lines. A
log from before the sweep part printed them (2026-12-02) gives the sweep as what follows
the last experiment, timed by its last progress line's "elapsed". The record keeps, per
part, the runs, the processes and the wall time, with the machine's load average when
the record was made (the machine is shared: the times are what it gave).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from benchmarks.records import record_command
from scenarios.experiments.machine import cpu, describe
from scenarios.experiments.rerun import CLAIM_EXPERIMENTS, SWEEP

FINISHED = re.compile(r"^finished in (\d+) s$", re.M)
COMMAND = re.compile(r"^claims --rerun finished in (\d+) s$", re.M)  # the whole command, claims.md included
RUNS = re.compile(r"^(\d+) runs, (\d+) already finished, (\d+) to do \((.*)\)$", re.M)


HEADER = re.compile(r"^([\w.-]+): \d+ reported runs -> ", re.M)
ELAPSED = re.compile(r"elapsed (\d+):(\d\d):(\d\d)")


def split_rerun_log(text: str) -> dict:
    """A ``claims --rerun`` log's parts: name -> its lines, cut at each part's header line."""
    starts = [(m.start(), m.group(1)) for m in HEADER.finditer(text)]
    parts = {name: text[start:end] for (start, name), (end, _) in zip(starts, starts[1:] + [(len(text), "")])}
    sweep = f"sweep-{SWEEP}"
    if sweep not in parts and starts:  # an older log: the sweep is what follows the last experiment
        last, after = starts[-1][1], parts[starts[-1][1]]
        end = FINISHED.search(after)
        if end and RUNS.search(after[end.end():]):
            parts[last], rest = after[:end.end()], after[end.end():]
            times = ELAPSED.findall(rest)
            h, m, s = times[-1] if times else ("0", "0", "0")
            parts[sweep] = rest + f"\nfinished in {int(h) * 3600 + int(m) * 60 + int(s)} s\n"
    return parts


def record(logs: Path) -> dict:
    parts = []
    wanted = CLAIM_EXPERIMENTS + (f"sweep-{SWEEP}",)
    texts = split_rerun_log(logs.read_text()) if logs.is_file() else {p.stem: p.read_text() for p in logs.glob("*.log")}
    for name in sorted(texts, key=lambda n: wanted.index(n) if n in wanted else len(wanted)):
        if name not in wanted:
            continue
        text = texts[name]
        finished = FINISHED.search(text)
        batches = RUNS.findall(text)
        if not finished or not batches:
            continue
        done = sum(int(todo) for _, _, todo, _ in batches)
        parts.append({"part": name, "runs_carried_out": done,
                      "tuning_runs": sum(int(todo) for _, _, todo, _ in batches[:-1]),  # every batch before the reported runs
                      "processes": batches[-1][3], "wall_seconds": int(finished.group(1))})
    rec = {"machine": f"shared {os.cpu_count()}-core {describe(cpu())}", "load_average_1min": os.getloadavg()[0],
           "parts": parts, "total_wall_seconds": sum(p["wall_seconds"] for p in parts)}
    command = COMMAND.search(logs.read_text()) if logs.is_file() else None
    if command:  # logged since 2026-12-02: the command from start to claims.md, between the parts too
        rec["command_wall_seconds"] = int(command.group(1))
    return rec


def markdown(rec: dict) -> str:
    lines = ["| part | runs carried out (tuning) | processes | wall time |", "|---|---:|---|---:|"]
    for p in rec["parts"]:
        lines.append(f"| `{p['part']}` | {p['runs_carried_out']} ({p['tuning_runs']}) | {p['processes']} | "
                     f"{p['wall_seconds'] / 60:.1f} min |")
    lines.append(f"| all | {sum(p['runs_carried_out'] for p in rec['parts'])} | | "
                 f"{rec['total_wall_seconds'] / 60:.0f} min |")
    if "command_wall_seconds" in rec:
        lines.append(f"| the whole command, to claims.md | | | {rec['command_wall_seconds'] / 60:.0f} min |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return record_command(list(sys.argv[1:] if argv is None else argv), __doc__, lambda logs: record(*logs), markdown)


if __name__ == "__main__":
    sys.exit(main())
