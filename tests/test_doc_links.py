"""Every reference in the README and docs resolves inside the repository, and none leaves it."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = {"benchmarks/results.json"}  # written by a command, not committed
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_and_file_references_resolve(doc):
    text = doc.read_text()
    missing = []
    for target in re.findall(r"\]\(([^)#\s]+)", text):  # markdown links and images
        if "://" not in target and not (doc.parent / target).exists():
            missing.append(target)
    for target in re.findall(r"`((?:docs|scenarios|algorithms|sim|benchmarks|tests)/[\w./-]+\.\w+)`", text):
        placeholder = re.search(r"/[A-Z]{2,}[./]", target)  # scenarios/tuned/EXPERIMENT.csv
        if not (ROOT / target).exists() and "*" not in target and not placeholder and target not in OUTPUTS:
            missing.append(target)
    assert not missing, f"{doc.name}: unresolved references {missing}"
    assert "../shared" not in text, f"{doc.name} cites a file outside the repository"
