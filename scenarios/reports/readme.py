"""The README's generated sections: filled from the tool's own outputs, and checked against them.

    python -m scenarios.reports.readme update [--results results] [--claims docs/claims.md]
    python -m scenarios.reports.readme check DIR [--reference docs/main-job]
                                              # DIR: a fresh `stalesim reproduce fmnist --out DIR`

A generated section sits between ``<!-- generated: NAME -->`` and ``<!-- end: NAME -->``:

- ``fmnist-table``: ``results/fmnist/table.md`` verbatim (without its title line);
- ``claims``: the verdict table of ``docs/claims.md``;
- ``algorithms``: the algorithm registry.

``check`` fails (exit 1) when the README's fmnist table differs from the table a fresh
run wrote. The README's table is that of the committed run (``--reference``, default
``docs/main-job``, a test checks it), whose results record the CPU they were
computed on (``scenarios.experiments.machine``). Where the fresh runs record the same CPU, the
same config and seeds give the same numbers bit for bit, so any difference means the
README is stale. Where the CPU differs (or either is not recorded), it prints one line
saying so, compares every number within ``TABLE_TOLERANCE`` (the rest of each cell
exactly) and prints the largest difference; docs/reproducibility.md gives the
reasons for the tolerance.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Optional

from algorithms import registry
from scenarios.experiments.config import FIELDS
from scenarios.experiments.machine import describe, same_cpu

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
REFERENCE = ROOT / "docs" / "main-job"  # the committed `stalesim reproduce fmnist` (3 seeds) the README shows

# Used only where the fresh run's CPU differs from the README's: column -> (absolute tolerance, relative tolerance);
# a number passes within either. Other columns (labels, counts, simulated times, staleness: fixed by the trace, which
# no CPU changes) must match exactly.
TABLE_TOLERANCE = {
    "final acc. (%)": (1.0, 0.0),  # percentage points
    "acc. std (%)": (1.0, 0.0),
    "detrended std (%)": (1.0, 0.0),
    "acc. at equal time (%)": (1.0, 0.0),
    "stability gain": (10.0, 0.0),  # a ratio of standard deviations: percentage points
    "time to 70%": (0.0, 0.1),  # simulated seconds: a crossing may move by an evaluation or two
}
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


def _block(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- generated: {name} -->\n)(.*?)(<!-- end: {name} -->)", re.S)


def section(text: str, name: str) -> str:
    match = _block(name).search(text)
    if match is None:
        raise SystemExit(f"README.md: no generated section {name!r}")
    return match.group(2)


def replace_section(text: str, name: str, body: str) -> str:
    section(text, name)
    return _block(name).sub(lambda m: m.group(1) + body + m.group(3), text)


def table_body(table_md: str) -> str:
    """A table.md without its title line: what the README shows."""
    lines = table_md.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join(lines).strip() + "\n"


def claims_body(claims_md: str) -> str:
    rows = [line for line in claims_md.splitlines() if line.startswith("| ")]
    end = next((i for i, line in enumerate(rows) if not line.endswith("** |") and i > 1), len(rows))
    return "\n".join(rows[:end]) + "\n"


def algorithms_body() -> str:
    """The registry as a table: name, display name, default policy, hyperparameters, paper."""


    defaults = {name: f.default for name, f in FIELDS.items()}
    lines = ["| `--algorithms` | shown as | policy | hyperparameters (`--set`) | what | paper |", "|---|---|---|---|---|---|"]
    for a in registry.ALGORITHMS.values():
        hyper = ", ".join(f"`{h.name}`" for h in a.hyperparameters) or "—"
        lines.append(f"| `{a.name}` | {a.display} | `{a.policy_for(defaults)}` | {hyper} | {a.summary} | "
                     f"{a.paper or '—'} |")
    return "\n".join(lines) + "\n"


def update(results: Path, claims: Path) -> None:
    text = README.read_text()
    text = replace_section(text, "algorithms", algorithms_body())
    text = replace_section(text, "fmnist-table", table_body((results / "fmnist" / "table.md").read_text()))
    if claims.is_file():
        text = replace_section(text, "claims", claims_body(claims.read_text()))
    README.write_text(text)


def stale_sections(claims: Path) -> list[str]:
    """The generated sections whose source changed (the fmnist table needs a fresh run: see ``check``)."""
    text = README.read_text()
    stale = []
    if section(text, "algorithms") != algorithms_body():
        stale.append("algorithms")
    if claims.is_file() and section(text, "claims") != claims_body(claims.read_text()):
        stale.append("claims")
    return stale


def run_cpu(folder: Path) -> Optional[dict]:
    """The CPU record (``scenarios.experiments.machine.cpu``) of the runs under ``folder/runs``: ``None``
    when none records one, ``{"model": "several CPUs", ...}`` when they differ."""
    records = {}
    for path in sorted((folder / "runs").glob("*/result.json")):
        try:
            record = json.loads(path.read_text())["provenance"]["machine"].get("cpu")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            record = None
        records[json.dumps(record, sort_keys=True)] = record
    if not records or records.keys() == {"null"}:
        return None
    if len(records) > 1:
        return {"model": "several CPUs", "architecture": None, "vector_extensions": None, "xla_cpu_math": None}
    return next(iter(records.values()))


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def compare_within_tolerance(shown: str, made: str) -> tuple[list[str], tuple[float, str]]:
    """The table's cells compared under ``TABLE_TOLERANCE``: the lines of cells that differ
    beyond it (or in their text), and the largest difference found as a fraction of its
    tolerance, with where it is."""
    shown_lines, made_lines = shown.strip().splitlines(), made.strip().splitlines()
    if len(shown_lines) != len(made_lines) or not shown_lines:
        return [f"the README's table has {len(shown_lines)} lines, the fresh one {len(made_lines)}"], (math.inf, "")
    header = _cells(shown_lines[0])
    failures, largest = [], (0.0, "no difference")
    for a_line, b_line in zip(shown_lines, made_lines):
        a_cells, b_cells = _cells(a_line), _cells(b_line)
        if len(a_cells) != len(b_cells) or len(a_cells) != len(header):
            failures.append(f"README: {a_line}\n  fresh:  {b_line}")
            continue
        for column, a, b in zip(header, a_cells, b_cells):
            where = f"{a_cells[0]} / {a_cells[1]}, {column}: {a} vs {b}"
            a_numbers, b_numbers = _NUMBER.findall(a), _NUMBER.findall(b)
            if _NUMBER.sub("#", a) != _NUMBER.sub("#", b) or len(a_numbers) != len(b_numbers):
                failures.append(where)
                continue
            abs_tol, rel_tol = TABLE_TOLERANCE.get(column, (0.0, 0.0))
            for x, y in zip(map(float, a_numbers), map(float, b_numbers)):
                allowed = max(abs_tol, rel_tol * max(abs(x), abs(y)))
                if x == y:
                    continue
                if abs(x - y) > allowed:
                    failures.append(where)
                    break
                if abs(x - y) / allowed > largest[0]:
                    largest = (abs(x - y) / allowed, where)
    return failures, largest


def _tolerance_words() -> str:
    parts = [f"{column} {f'±{a:g}' if a else f'±{r:.0%}'}" for column, (a, r) in TABLE_TOLERANCE.items()]
    return "; ".join(parts) + "; other cells exactly"


def check(fresh: Path, reference: Path = REFERENCE) -> int:
    shown = section(README.read_text(), "fmnist-table")
    made = table_body((fresh / "table.md").read_text())
    recorded, now = run_cpu(reference), run_cpu(fresh)
    if not same_cpu(recorded, now):
        print(f"README check: the README's table was computed on {describe(recorded)}, the fresh run on "
              f"{describe(now)}: compared within tolerance ({_tolerance_words()}), not bit for bit")
        failures, (fraction, where) = compare_within_tolerance(shown, made)
        if failures:
            print("README.md's Fashion-MNIST table differs from a fresh `stalesim reproduce fmnist` beyond the "
                  "tolerance:", file=sys.stderr)
            for line in failures:
                print(f"  {line}", file=sys.stderr)
            return 1
        print(f"README.md's Fashion-MNIST table matches the fresh run within the tolerance; largest difference: "
              f"{fraction:.0%} of its tolerance ({where})")
        return 0
    if shown != made:
        print("README.md's Fashion-MNIST table differs from a fresh `stalesim reproduce fmnist`:", file=sys.stderr)
        for a, b in zip(shown.splitlines(), made.splitlines()):
            if a != b:
                print(f"  README: {a}\n  fresh:  {b}", file=sys.stderr)
        print("run `python -m scenarios.reports.readme update` after `stalesim reproduce fmnist`", file=sys.stderr)
        return 1
    print("README.md's Fashion-MNIST table matches the fresh run")
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["check"] and len(argv) == 2:
        return check(Path(argv[1]))
    if argv[:1] == ["check"] and len(argv) == 4 and argv[2] == "--reference":
        return check(Path(argv[1]), Path(argv[3]))
    if argv[:1] == ["update"]:
        opts = dict(zip(argv[1::2], argv[2::2]))
        update(Path(opts.get("--results", "results")), Path(opts.get("--claims", "docs/claims.md")))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
