"""The README's opening example prints exactly what the README says."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_output_is_exact(tmp_path):
    text = README.read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    expected = re.search(r"prints .*?\n\n```\n(.*?)```", text, re.S).group(1)
    script = tmp_path / "example.py"
    script.write_text(code)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True,
                         cwd=README.parent)
    assert out.stdout == expected


def test_readme_python_api_example_output_is_exact(tmp_path):
    """The "From Python" example, run in an empty folder, prints what the README says."""
    section = README.read_text().split("## From Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    expected = re.search(r"prints .*?\n\n```\n(.*?)```", section, re.S).group(1)
    script = tmp_path / "example.py"
    script.write_text(code)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout == expected
    again = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert again.stdout == expected  # the finished runs are reused, with the same numbers


def test_readme_validate_example_output_is_exact():
    """The live-runs section shows what ``stalesim validate docs/validation-data`` printed: the
    table of the committed validation.json (which that command wrote, as docs/validation.md's
    test checks), and its closing line."""
    import json

    from scenarios.live.validation_report import table

    section = README.read_text().split("## Live runs", 1)[1]
    expected = re.search(r"prints\n\(`tests/test_readme.py` checks it\):\n\n```\n(.*?)```", section, re.S).group(1)
    folder = Path("docs/validation-data")
    report = json.loads((README.parent / folder / "validation.json").read_text())
    assert expected == f"{table(report)}\nfigure: {folder / 'validation.png'}; numbers: {folder / 'validation.json'}\n"
