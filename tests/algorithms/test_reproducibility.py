"""The same numbers on every x86-64 CPU: consistent XLA math, the CPU record, a tolerance where the CPU differs."""

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algorithms import History
from scenarios import numerics
from scenarios.experiments import machine, provenance as runner
from scenarios.reports import readme
from scenarios.testing import GoldenFallbackWarning, assert_golden
from scenarios.testing import golden as golden_module

INTEL = textwrap.dedent("""\
    processor\t: 0
    vendor_id\t: GenuineIntel
    model name\t: Intel(R) Xeon(R) Platinum 8480+
    flags\t\t: fpu sse sse2 sse4_1 sse4_2 avx f16c fma avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni avx512_bf16 amx_tile amx_bf16
    processor\t: 1
    model name\t: ignored: only the first processor is read
""")


def _history(losses=(2.0, 1.0, 0.5)) -> History:
    """A three-evaluation history, without a replay (no compilation)."""
    n = len(losses)
    return History(update=np.arange(n) * 10, sim_time=np.arange(n) * 1.5, loss=np.asarray(losses),
                   accuracy=np.linspace(0.1, 0.9, n), staleness=np.zeros(0), worker=np.zeros(0))


@pytest.fixture(autouse=True)
def _missing_goldens_recorded(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv(golden_module.MISSING_ENV, raising=False)
    monkeypatch.delenv(golden_module.UPDATE_ENV, raising=False)


# ------------------------------------------------------------------ consistent math
def test_xla_computes_with_consistent_math_here():
    """Importing scenarios (the pytest plugin does, first) put the flag in XLA_FLAGS before JAX's backend started."""
    assert f"{numerics.FLAG}=false" in os.environ["XLA_FLAGS"].split()
    assert numerics.math_mode() == numerics.CONSISTENT


def test_dcasgd_lam_is_exactly_rounded():
    """DC-ASGD-a's lam0 / sqrt(ms + eps) under jit equals numpy's correctly rounded float32
    bit for bit: no approximate reciprocal square root (whose first guess differs between
    AVX2's vrsqrtps and AVX-512's vrsqrt14ps)."""
    ms = np.random.default_rng(7).random(100_000).astype(np.float32) * np.float32(1e-4)
    lam = np.asarray(jax.jit(lambda s: 2.0 / jnp.sqrt(s + 1e-7))(jnp.asarray(ms)))
    exact = np.float32(2.0) / np.sqrt(ms + np.float32(1e-7))
    np.testing.assert_array_equal(lam.view(np.uint32), exact.view(np.uint32))


def test_a_users_own_flag_is_kept(monkeypatch):
    monkeypatch.setattr(numerics, "_STARTED_EARLY", numerics._STARTED_EARLY)  # put back afterwards
    monkeypatch.setenv("XLA_FLAGS", f"--xla_force_host_platform_device_count=1 {numerics.FLAG}=true")
    numerics.use_consistent_math()
    assert os.environ["XLA_FLAGS"] == f"--xla_force_host_platform_device_count=1 {numerics.FLAG}=true"
    assert numerics.math_mode() == numerics.PLATFORM_DEPENDENT
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    numerics.use_consistent_math()  # the backend has started: the flag is added, but too late to count
    assert os.environ["XLA_FLAGS"].endswith(f"{numerics.FLAG}=false")
    assert numerics.math_mode() == numerics.PLATFORM_DEPENDENT


# ------------------------------------------------------------------ the CPU record
def test_cpu_record_of_this_machine_and_of_a_cpuinfo(tmp_path):
    here = machine.cpu()
    assert set(here) == {"model", "architecture", "vector_extensions", "xla_cpu_math"}
    assert here["model"] and here["xla_cpu_math"] == "consistent"
    if Path("/proc/cpuinfo").exists():
        assert isinstance(here["vector_extensions"], list)
        assert set(here["vector_extensions"]) <= set(machine.VECTOR_EXTENSIONS)
    (tmp_path / "cpuinfo").write_text(INTEL)
    xeon = machine.cpu(tmp_path / "cpuinfo")
    assert xeon["model"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert xeon["vector_extensions"] == ["sse4_2", "avx", "f16c", "fma", "avx2", "avx512f", "avx512dq", "avx512bw",
                                         "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16"]
    assert "Platinum 8480+ (" in machine.describe(xeon) and "avx512_bf16" in machine.describe(xeon)
    assert machine.same_cpu(here, dict(here)) and not machine.same_cpu(here, xeon)
    assert not machine.same_cpu(None, here) and not machine.same_cpu(here, {})
    assert not machine.same_cpu(here, {**here, "xla_cpu_math": "platform-dependent"})
    no_cpuinfo = machine.cpu(tmp_path / "absent")
    assert no_cpuinfo["model"] and no_cpuinfo["vector_extensions"] is None


def test_provenance_and_golden_files_record_the_cpu(tmp_path):
    assert runner.machine()["cpu"] == machine.cpu()
    assert_golden(_history(), tmp_path / "h.json")
    assert json.loads((tmp_path / "h.json").read_text())["recorded_with"]["cpu"] == machine.cpu()


# ------------------------------------------------------------------ golden: tolerance where the CPU differs
def _recorded_elsewhere(path: Path, **cpu) -> None:
    data = json.loads(path.read_text())
    if cpu.get("model") is None and "model" in cpu:
        data["recorded_with"].pop("cpu")
    else:
        data["recorded_with"]["cpu"].update(cpu)
    path.write_text(json.dumps(data))


def test_golden_on_the_same_cpu_is_bit_for_bit(tmp_path):
    path = tmp_path / "h.json"
    assert assert_golden(_history(), path).mode == "recorded"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert assert_golden(_history(), path).mode == "exact"
    with pytest.raises(AssertionError, match=r"update 10, loss: recorded 1.0, now 1.0000001; compared bit for bit"):
        assert_golden(_history((2.0, 1.0000001, 0.5)), path)


def test_golden_from_another_cpu_falls_back_to_rtol_and_says_so(tmp_path, capsys):
    path = tmp_path / "h.json"
    assert_golden(_history(), path)
    _recorded_elsewhere(path, model="Intel(R) Xeon(R) Platinum 8480+", vector_extensions=["avx2", "avx512f"])
    before = len(golden_module.FALLBACKS)
    with pytest.warns(GoldenFallbackWarning) as caught:
        check = assert_golden(_history((2.0, 1.0000001, 0.5)), path)
    assert (check.mode, check.rtol) == ("rtol", 1e-5) and check.largest == pytest.approx(1e-7, rel=1e-3)
    line = str(caught[0].message)
    assert "the CPU differs; compared within rtol 1e-05, not bit for bit; largest relative difference 1e-07 " \
           "(loss at update 10: recorded 1.0, now 1.0000001)" in line
    assert "Platinum 8480+" in line and machine.describe(machine.cpu()) in line
    assert golden_module.FALLBACKS[before:] == [(path, line)] and capsys.readouterr().err == f"stalesim: {line}\n"
    with pytest.raises(AssertionError, match=r"update 10, loss: .*within rtol 1e-09 \(fell back from bit for bit: "
                                             r"the CPU differs\)"):
        assert_golden(_history((2.0, 1.0000001, 0.5)), path, rtol=1e-9)
    with pytest.warns(GoldenFallbackWarning, match="largest relative difference 0;"):
        assert assert_golden(_history(), path).largest == 0.0


def test_golden_without_a_cpu_record_falls_back_too(tmp_path):
    """A golden recorded before the CPU was recorded: never silently bit for bit."""
    path = tmp_path / "h.json"
    assert_golden(_history(), path)
    _recorded_elsewhere(path, model=None)
    with pytest.warns(GoldenFallbackWarning, match="the CPU is not recorded; compared within rtol 1e-05"):
        assert assert_golden(_history(), path).mode == "rtol"


def test_missing_golden_fails_on_ci(tmp_path, monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(AssertionError, match=r"golden .*h\.json: missing, and missing goldens fail here"):
        assert_golden(_history(), tmp_path / "h.json")
    assert not (tmp_path / "h.json").exists()
    monkeypatch.setenv(golden_module.UPDATE_ENV, "1")  # an explicit update still records
    assert assert_golden(_history(), tmp_path / "h.json").mode == "recorded"
    monkeypatch.setenv("CI", "false")
    monkeypatch.setenv(golden_module.MISSING_ENV, "fail")
    monkeypatch.delenv(golden_module.UPDATE_ENV)
    with pytest.raises(AssertionError, match="missing"):
        assert_golden(_history(), tmp_path / "other.json")
    monkeypatch.setenv(golden_module.MISSING_ENV, "sometimes")
    with pytest.raises(golden_module.GoldenError, match="STALESIM_GOLDEN_MISSING: must be one of record, fail"):
        assert_golden(_history(), tmp_path / "other.json")


# ------------------------------------------------------------------ the plugin: golden path, --golden-missing
PLUGIN_TEST = textwrap.dedent("""\
    import numpy as np
    from algorithms import History
    from scenarios.testing import assert_golden

    LOSS = 1.0

    def test_history(golden):
        h = History(update=np.array([0, 10]), sim_time=np.array([0.0, 1.0]), loss=np.array([2.0, LOSS]),
                    accuracy=np.array([0.1, 0.5]), staleness=np.zeros(0), worker=np.zeros(0))
        assert_golden(h, golden)
""")


def _pytest(cwd: Path, target: Path, *args: str, ci: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("CI", golden_module.MISSING_ENV, golden_module.UPDATE_ENV, "PYTEST_ADDOPTS")}
    env.update(JAX_PLATFORMS="cpu", PYTHONDONTWRITEBYTECODE="1", **({"CI": "true"} if ci else {}))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(target), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_plugin_golden_path_is_relative_to_the_test_file_and_missing_fails_on_ci(tmp_path):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "tests" / "unit").mkdir(parents=True)
    elsewhere.mkdir()
    test_file = project / "tests" / "unit" / "test_mine.py"
    test_file.write_text(PLUGIN_TEST)
    golden = project / "tests" / "unit" / "golden" / "test_mine" / "test_history.json"

    on_ci = _pytest(elsewhere, test_file, ci=True)  # CI: a missing golden fails, nothing is written
    assert on_ci.returncode == 1 and "missing, and missing goldens fail here" in on_ci.stdout, on_ci.stdout
    assert not golden.exists()
    asked = _pytest(project, test_file, "--golden-missing=fail")
    assert asked.returncode == 1 and not golden.exists(), asked.stdout

    first = _pytest(elsewhere, test_file, "--golden-missing=record", ci=True)  # from another folder
    assert first.returncode == 0 and golden.exists(), first.stdout + first.stderr
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.json")) == [
        "project/tests/unit/golden/test_mine/test_history.json"]

    test_file.write_text(PLUGIN_TEST.replace("LOSS = 1.0", "LOSS = 1.5"))
    changed = _pytest(project / "tests", test_file)  # from a third folder: compares with the same file
    assert changed.returncode == 1 and "first difference at update 10, loss: recorded 1.0, now 1.5" in changed.stdout


# ------------------------------------------------------------------ the README check
TABLE = textwrap.dedent("""\
    | algorithm | base | tuned | final acc. (%) | acc. std (%) | stability gain | converged | acc. at equal time (%) | time to 70% | sim. time (s) | staleness mean / p95 |
    |---|---|---|---|---|---|---|---|---|---|---|
    | ASGD | sgd | sgd lr 0.015 | 80.2 ± 4.2 | 3.2 ± 0.3 | — | 3/3 | 81.1 ± 6.6 @ 1090 s | 104 s (3/3) | 1090 | 9.0 / 30 |
    | DC-ASGD-a | sgd | sgd lr 0.015 | 80.3 ± 4.0 | 3.1 ± 0.3 | +3% | 3/3 | 81.3 ± 6.3 @ 1090 s | 104 s (3/3) | 1090 | 9.0 / 30 |
""")
OTHER_CPU = {"model": "Intel(R) Xeon(R) Platinum 8480+", "architecture": "x86_64",
             "vector_extensions": ["avx2", "avx512f"], "xla_cpu_math": "consistent"}


def _folder(path: Path, table: str, cpu) -> Path:
    (path / "runs" / "r0").mkdir(parents=True)
    (path / "table.md").write_text("# stalesim reproduce fmnist\n\n" + table)
    (path / "runs" / "r0" / "result.json").write_text(json.dumps({"provenance": {"machine": {"cpu": cpu}}}))
    return path


def test_readme_check_is_bit_for_bit_on_the_same_cpu_and_within_tolerance_elsewhere(tmp_path, monkeypatch, capsys):
    readme_md = tmp_path / "README.md"
    readme_md.write_text(f"# x\n\n<!-- generated: fmnist-table -->\n{TABLE}<!-- end: fmnist-table -->\n")
    monkeypatch.setattr(readme, "README", readme_md)
    here = machine.cpu()
    reference = _folder(tmp_path / "reference", TABLE, here)
    report_machine = (TABLE.replace("80.3 ± 4.0 | 3.1 ± 0.3", "80.3 ± 4.1 | 3.1 ± 0.4")
                      .replace("81.3 ± 6.3", "81.3 ± 6.5"))

    assert readme.check(_folder(tmp_path / "same", TABLE, here), reference) == 0
    assert capsys.readouterr().out == "README.md's Fashion-MNIST table matches the fresh run\n"
    assert readme.check(_folder(tmp_path / "same-changed", report_machine, here), reference) == 1
    assert "README:" in capsys.readouterr().err

    assert readme.check(_folder(tmp_path / "other", report_machine, OTHER_CPU), reference) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"README check: the README's table was computed on {machine.describe(here)}, the fresh "
                             f"run on Intel(R) Xeon(R) Platinum 8480+ (x86_64; avx2 avx512f; XLA math consistent): "
                             f"compared within tolerance (final acc. (%) ±1;")
    assert out[0].endswith("not bit for bit")
    assert out[1] == ("README.md's Fashion-MNIST table matches the fresh run within the tolerance; largest difference: "
                      "20% of its tolerance (DC-ASGD-a / sgd, acc. at equal time (%): 81.3 ± 6.3 @ 1090 s vs "
                      "81.3 ± 6.5 @ 1090 s)")

    far = TABLE.replace("80.3 ± 4.0", "78.0 ± 4.0")
    assert readme.check(_folder(tmp_path / "far", far, OTHER_CPU), reference) == 1
    assert "DC-ASGD-a / sgd, final acc. (%): 80.3 ± 4.0 vs 78.0 ± 4.0" in capsys.readouterr().err
    text = TABLE.replace("104 s (3/3) | 1090 | 9.0 / 30 |\n| DC", "> 1095 s (0/3) | 1090 | 9.0 / 30 |\n| DC")
    assert readme.check(_folder(tmp_path / "text", text, None), reference) == 1  # no CPU record: tolerance, text exact
    captured = capsys.readouterr()
    assert "the fresh run on an unrecorded CPU" in captured.out and "time to 70%: 104 s (3/3) vs > 1095" in captured.err
