"""The benchmark code runs (no timing is asserted: benchmarks are not tests)."""

import json
import subprocess
import sys
from pathlib import Path


def test_quick_benchmarks_run_and_write_json(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)], capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parent.parent, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    figures = {row["figure"] for row in result["rows"]}
    assert {"trace_100", "replay_asgd", "replay_dcasgd", "replay_gsgm", "seeds_mlp", "scaling", "memory",
            "resnet"} <= figures
    from benchmarks.torch_peer import NO_TORCH, torch_available

    assert ("peer_cnn" in figures) if torch_available() else (NO_TORCH in proc.stdout)  # optional, and says so
    for row in result["rows"]:
        assert row["value"] > 0 and row["status"] in ("pass", "short", "")
    assert "target" in proc.stdout
