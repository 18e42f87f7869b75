"""Every number the README and docs show is generated: each generated section is fresh."""

import json
from pathlib import Path

from scenarios.reports import divergence, readme
from scenarios.reports.claims import markdown

ROOT = Path(__file__).resolve().parents[3]


def test_claims_md_follows_from_the_committed_results():
    """docs/claims.md is exactly what `stalesim claims --results docs/claims-data --accept-provenance` writes."""
    text = markdown(ROOT / "docs" / "claims-data", accept_provenance=True)
    assert (ROOT / "docs" / "claims.md").read_text() == text.replace(str(ROOT / "docs" / "claims-data"),
                                                                      "docs/claims-data")


def test_readme_sections_generated_from_the_registry_and_the_claims_are_fresh():
    assert readme.stale_sections(ROOT / "docs" / "claims.md") == []


def test_readme_fmnist_table_is_the_committed_run():
    """The README's table is table.md of the committed main job (docs/main-job); CI also compares it with a fresh run."""
    shown = readme.section(readme.README.read_text(), "fmnist-table")
    assert shown == readme.table_body((ROOT / "docs" / "main-job" / "table.md").read_text())


def test_dcasgd_divergence_table_is_the_committed_study():
    """docs/choices.md's DC-ASGD table is what docs/dcasgd-divergence.json says (the study's data)."""
    data = json.loads((ROOT / "docs" / "dcasgd-divergence.json").read_text())
    assert divergence.shown((ROOT / "docs" / "choices.md").read_text()) == divergence.markdown(data)
    assert not str(data["versions"]["git_commit"]).endswith("+uncommitted")  # made from a commit
