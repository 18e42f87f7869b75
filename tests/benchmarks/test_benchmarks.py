"""`python -m benchmarks --quick` runs and writes a well-formed record (no time is asserted)."""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# figure -> rows in a --quick run (peer_cnn only where torch is importable)
QUICK_ROWS = {"trace_10": 2, "trace_100": 2, "trace_1000": 2, "reference": 2, "replay_asgd": 2, "replay_dcasgd": 2,
              "replay_gsgm": 2, "resnet": 1, "seeds_mlp": 1, "seeds_cnn": 1, "scaling": 1, "memory": 1, "cores": 1,
              "end_to_end": 3}
RATES = {"trace_10", "trace_100", "trace_1000"}  # applied updates/s; every other figure is a ratio
AT_MOST = {"memory"}  # targets that are upper bounds


def _largest_sane(figure: str, cpus: int) -> float:
    """The largest believable value: a ratio of two rates of the same work on one machine
    stays within a small factor unless a measurement is broken (a timer, a count)."""
    if figure in RATES:
        return 1e9
    return {"seeds_mlp": 16.0, "seeds_cnn": 16.0, "peer_cnn": 50.0, "cores": 2.0 * cpus + 2}.get(figure, 10.0)


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_end_to_end_note(row: dict) -> None:
    m = re.fullmatch(r"(\d+) runs, (\d+) updates in (\d+) s; limit (\d+) s(?:; (.*))?", row["note"])
    assert m, row
    runs, updates, wall = int(m[1]), int(m[2]), int(m[3])
    assert runs >= 1 and updates >= runs, row
    if "--jobs 1" in row["what"]:  # the time split of the work done in the child process
        parts = {name: float(s) for name, s in re.findall(r"(?:^|, )([a-z][A-Za-z ,()-]*?) (-?[\d.]+) s", m[5])}
        assert {"process start and imports", "compile", "other (replay set-up, results, Python)"} <= set(parts), row
        assert abs(sum(parts.values()) - wall) <= 0.6 + 0.05 * len(parts), row  # rounded to 0.1 s each, wall to 1 s


@pytest.mark.slow
def test_quick_benchmarks_run_and_write_a_well_formed_record(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)], capture_output=True,
                          text=True, cwd=ROOT, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())

    assert set(result) == {"date", "quick", "seconds", "machine", "rows"}
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", result["date"]) and result["quick"] is True
    assert _is_number(result["seconds"]) and result["seconds"] > 0
    machine = result["machine"]
    assert set(machine) == {"cpus", "platform", "python", "jax", "device"}
    assert isinstance(machine["cpus"], int) and machine["cpus"] >= 1
    assert all(isinstance(machine[k], str) and machine[k] for k in ("platform", "python", "jax", "device"))

    from benchmarks.records import line
    from benchmarks.torch_peer import NO_TORCH, torch_available

    expected = dict(QUICK_ROWS, **({"peer_cnn": 1} if torch_available() else {}))
    counts = {}
    for row in result["rows"]:
        counts[row["figure"]] = counts.get(row["figure"], 0) + 1
    assert counts == expected
    if not torch_available():
        assert NO_TORCH in proc.stdout  # optional, and says so

    printed = proc.stdout.splitlines()
    for row in result["rows"]:
        figure, value, target = row["figure"], row["value"], row["target"]
        assert set(row) == {"figure", "what", "value", "target", "status", "note"}, row
        assert isinstance(row["what"], str) and row["what"] and isinstance(row["note"], str), row
        assert _is_number(value) and 0 < value <= _largest_sane(figure, machine["cpus"]), row
        if target is None:
            assert row["status"] == "", row
        else:
            assert _is_number(target) and target > 0, row
            met = value <= target if figure in AT_MOST else value >= target
            assert row["status"] == ("pass" if met else "short"), row
        assert line(row) in printed, row  # the printed table is the record
        if figure == "end_to_end":
            _check_end_to_end_note(row)
    assert "target" in printed[0]
