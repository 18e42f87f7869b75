"""The README's generated sections: filled from the tool's own outputs, and checked against them.

    python -m scenarios.readme update [--results results] [--claims docs/claims.md]
    python -m scenarios.readme check DIR      # DIR: a fresh `stalesim reproduce fmnist --out DIR`

A generated section sits between ``<!-- generated: NAME -->`` and ``<!-- end: NAME -->``:

- ``fmnist-table``: ``results/fmnist/table.md`` verbatim (without its title line);
- ``claims``: the verdict table of ``docs/claims.md``;
- ``algorithms``: the algorithm registry.

``check`` fails (exit 1) when the README's fmnist table differs from the table a fresh
run wrote; the same config and seeds give the same numbers bit for bit, so any
difference means the README is stale.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


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
    from algorithms import registry

    from .config import FIELDS

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


def check(fresh: Path) -> int:
    shown = section(README.read_text(), "fmnist-table")
    made = table_body((fresh / "table.md").read_text())
    if shown != made:
        print("README.md's Fashion-MNIST table differs from a fresh `stalesim reproduce fmnist`:", file=sys.stderr)
        for a, b in zip(shown.splitlines(), made.splitlines()):
            if a != b:
                print(f"  README: {a}\n  fresh:  {b}", file=sys.stderr)
        print("run `python -m scenarios.readme update` after `stalesim reproduce fmnist`", file=sys.stderr)
        return 1
    print("README.md's Fashion-MNIST table matches the fresh run")
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["check"] and len(argv) == 2:
        return check(Path(argv[1]))
    if argv[:1] == ["update"]:
        opts = dict(zip(argv[1::2], argv[2::2]))
        update(Path(opts.get("--results", "results")), Path(opts.get("--claims", "docs/claims.md")))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
