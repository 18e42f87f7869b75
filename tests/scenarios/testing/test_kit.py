"""The testing kit (scenarios.testing, scenarios.testing.pytest_plugin): battery, cases, golden histories, a user's test file."""

import argparse
import json
import os
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import algorithms
from algorithms import Rule, ReplayError, RuleError, asgd, dcasgd, ssgd
from scenarios import testing
from scenarios.testing import (CaseError, GoldenError, GoldenFallbackWarning, assert_golden, cases, check_rule,
                               compare, fits, replay_case)

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _record_missing_goldens(monkeypatch):
    """These tests record goldens in temporary folders, on CI too (where a missing golden
    fails by default: tests/algorithms/test_reproducibility.py checks that)."""
    monkeypatch.setenv(testing.golden.MISSING_ENV, "record")


# ----------------------------------------------------------------- the shipped cases
def test_shipped_traces_are_what_the_simulator_makes():
    """Regenerating every case's trace gives the shipped file's arrays (and the data file's)."""
    names = {n[:-4] if n.endswith("-mlp") else n for n in cases()}
    assert names == {"fifo-4", "fifo-hetero-8", "whitelist-4", "barrier-4", "buffered-4", "crash-4"}
    for name in sorted(names):
        shipped, fresh = testing.case_trace(name), testing.simulate_case(name)
        for array in ("kind", "worker", "slot", "time", "version"):
            np.testing.assert_array_equal(getattr(shipped, array), getattr(fresh, array), err_msg=f"{name} {array}")
        assert (shipped.num_workers, shipped.num_slots, shipped.policy, shipped.gradients_per_version) == (
            fresh.num_workers, fresh.num_slots, fresh.policy, fresh.gradients_per_version), name
    with np.load(ROOT / "scenarios" / "cases" / "workloads.npz") as shipped:
        fresh = testing.make_workload_arrays()
        assert sorted(shipped.files) == sorted(fresh)
        for key, value in fresh.items():
            np.testing.assert_array_equal(shipped[key], value, err_msg=key)


def test_cases_are_what_their_names_say():
    lines = cases()
    assert len(lines) == 12 and all(isinstance(v, str) and "\n" not in v for v in lines.values())
    crash = testing.case_trace("crash-4")
    pulls = np.bincount(crash.worker[crash.kind == 0], minlength=4)
    pushes = np.bincount(crash.worker[crash.kind == 1], minlength=4)
    assert (pulls - pushes > 1).any(), "some worker crashes (pulls again without having pushed)"
    hetero = testing.case_trace("fifo-hetero-8")
    assert hetero.num_workers == 8 and len(set(hetero.spec["speeds"])) == 8
    assert testing.case_trace("barrier-4").gradients_per_version == 4
    assert testing.case_trace("buffered-4").gradients_per_version == 2
    assert testing.case_trace("whitelist-4").policy.startswith("whitelist")


def test_a_case_refuses_a_rule_its_policy_does_not_fit():
    with pytest.raises(CaseError, match=r"case barrier-4: .*barrier.* gradients_per_version 1; cases that fit this "
                                        r"rule: fifo-4, fifo-hetero-8"):
        replay_case(lambda base: asgd(base=base), "barrier-4")
    with pytest.raises(CaseError, match="cases that fit this rule: barrier-4, barrier-4-mlp"):
        replay_case("ssgd", "fifo-4")
    with pytest.raises(CaseError, match="unknown 'fifo-5'; allowed: fifo-4"):
        replay_case("asgd", "fifo-5")
    assert fits("ssgd", "barrier-4") and not fits("asgd", "buffered-4")
    assert fits(lambda base: algorithms.buffered(base=base, buffer_size=2), "buffered-4-mlp")
    with pytest.raises(RuleError, match="builds: .* raised ValueError: no"):
        replay_case(lambda base: (_ for _ in ()).throw(ValueError("no")), "fifo-4")


def test_replay_case_is_deterministic_and_evaluates_every_update():
    a = replay_case("asgd", "fifo-4")
    b = replay_case(lambda base: asgd(base=base, optimizer_state="worker"), "fifo-4")
    assert isinstance(a, algorithms.History)
    assert a.update.tolist() == list(range(81)) and len(a.digest) == len(a.param_norm) == 81
    assert a.digest == b.digest and np.array_equal(a.loss, b.loss)
    assert a.loss[-1] < 0.05 * a.loss[0] and not a.diverged
    assert a.digest[-1] == testing.params_digest(a.params)


# ------------------------------------------------------------------ the battery
def _asgd(base):
    return asgd(base=base)


def _bfloat16(base):
    rule = asgd(base=base)

    def update(state, params, grad, **kw):
        params, state = rule.update(state, params, grad, **kw)
        return jax.tree_util.tree_map(lambda x: x.astype(jnp.bfloat16), params), state
    return rule._replace(update=update)


def _reads_backup(base):
    return dcasgd(base=base, lam=0.5, adaptive=False, optimizer_state="server")._replace(uses_backup=False)


def _leaky(base):
    """Per-worker rows, but every update writes all of them."""
    rule = asgd(base=base)

    def init(params, n):
        return {"inner": rule.init(params, n), "rows": jnp.zeros((n, 3))}

    def update(state, params, grad, **kw):
        params, inner = rule.update(state["inner"], params, grad, **kw)
        return params, {"inner": inner, "rows": state["rows"] + 1.0}
    return Rule(init, update, name="leaky")


_COUNTER = [0]


def _side_effect(base):
    """Scales by a Python counter: under jit it is read once, at tracing."""
    rule = asgd(base=base)

    def update(state, params, grad, **kw):
        _COUNTER[0] += 1
        params, state = rule.update(state, params, grad, **kw)
        return jax.tree_util.tree_map(lambda x: x * (1 + 1e-3 * _COUNTER[0]), params), state
    return rule._replace(update=update)


def _python_branch(base):
    rule = asgd(base=base)

    def update(state, params, grad, *, worker, **kw):
        if worker == 0:
            return params, state
        return rule.update(state, params, grad, worker=worker, **kw)
    return rule._replace(update=update)


def _nan(base):
    return asgd(base=base)._replace(update=lambda s, p, g, **kw: (jax.tree_util.tree_map(lambda x: x * jnp.nan, p), s))


def _raises(base):
    raise ValueError("boom")


def _barrier_asgd(base):
    return asgd(base=base)


_barrier_asgd.policy = "barrier"


def _ssgd(base):
    return ssgd(base=base)


_ssgd.policy = "barrier"


@pytest.mark.parametrize("factory, expected", [
    (_bfloat16, ["dtypes: [sgd] params['layer']['b'] dtype float32 became bfloat16 at update 1"]),
    (_reads_backup, ["backup: [sgd] the result depends on backup"]),
    (_leaky, ["worker-isolation: [sgd] state['rows'] (per worker: leading dimension = num_workers) row 0 changed "
              "on update 1, which was worker 1's"]),
    (_side_effect, ["jit: [sgd] params['layer']['b'] differs after update 1", "deterministic: [sgd]"]),
    (_python_branch, ["runs: [sgd] update 1 under jax.jit raised TracerBoolConversionError"]),
    (_nan, ["finite: [sgd] params['layer']['b'] is NaN after update 1"]),
    (_raises, ["builds: [sgd] factory(base) raised ValueError: boom"]),
    (lambda base: None, ["builds: [sgd] factory(base) returned NoneType, not an algorithms.Rule"]),
    (_barrier_asgd, ["policy: [sgd] policy 'barrier' makes one step per worker (gradients_per_version None), but the "
                     "rule has gradients_per_version 1"]),
    (lambda base: Rule(lambda p, n: (), lambda s, p, g, **kw: (p, s)), ["moves: [sgd] the parameters are unchanged"]),
])
def test_check_rule_names_every_failed_property_on_its_own_line(factory, expected):
    with pytest.raises(AssertionError) as info:
        check_rule(factory, bases=("sgd",))
    lines = str(info.value).splitlines()
    assert re.match(r"check_rule\(.*\): \d+ of 12 properties failed \(bases sgd\)", lines[0])
    failed = [line.strip() for line in lines[1:] if not line.strip().startswith("not checked")]
    for text in expected:
        assert any(line.startswith(text) for line in failed), (text, lines)
    assert len(failed) == len(expected), lines  # nothing else failed
    assert len({line.split(":")[0] for line in failed}) == len(failed)  # one line per property


def test_check_rule_reports_each_property_when_all_pass():
    report = check_rule(_ssgd, bases=("sgd", optax.adam(0.01)))
    assert report.passed and list(report.outcomes) == list(testing.PROPERTIES)
    assert report.bases == ("sgd", "GradientTransformationExtraArgs")
    assert all(o.passed is True and o.seconds >= 0 for o in report.outcomes.values())
    report = check_rule(_bfloat16, bases=("sgd",), raise_on_failure=False)
    assert report.failed == ["dtypes"] and report.outcomes["no-retrace"].passed is None


# -------------------------------------------------------------------- golden
def _lr_up(base):
    return asgd(base=optax.chain(base, optax.scale(1.001)))


def test_golden_records_then_compares_bit_for_bit(tmp_path, monkeypatch):
    monkeypatch.delenv(testing.UPDATE_ENV, raising=False)
    path = tmp_path / "deep" / "h.json"
    history = replay_case(_asgd, "fifo-4")
    assert assert_golden(history, path).mode == "recorded"
    data = json.loads(path.read_text())
    assert data["metrics"] == ["update", "sim_time", "loss", "accuracy", "param_norm", "digest"]
    assert len(data["evaluations"]) == 81 and data["case"] == "fifo-4"
    assert set(data["recorded_with"]) == {"jax", "jaxlib", "numpy", "stalesim", "platform", "cpu"}
    assert set(data["recorded_with"]["cpu"]) == {"model", "architecture", "vector_extensions", "xla_cpu_math"}
    assert assert_golden(replay_case(_asgd, "fifo-4"), path).mode == "exact"
    with pytest.raises(AssertionError) as info:
        assert_golden(replay_case(_lr_up, "fifo-4"), path)
    message = str(info.value)
    assert "first difference at update 1, loss: recorded " in message and "compared bit for bit" in message
    assert f"recorded with jax {jax.__version__}" in message and "now jax" in message
    assert "--update-golden" in message and len(message.splitlines()) == 1
    monkeypatch.setenv(testing.UPDATE_ENV, "1")
    assert assert_golden(replay_case(_lr_up, "fifo-4"), path).mode == "recorded"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["h.json"]


def test_golden_falls_back_to_rtol_elsewhere(tmp_path):
    path = tmp_path / "h.json"
    history = replay_case(_asgd, "fifo-4")
    assert_golden(history, path)
    data = json.loads(path.read_text())
    data["recorded_with"]["jax"] = "0.0.1"
    row = data["evaluations"][40]
    row[2] *= 1 + 1e-7  # loss: within rtol
    row[5] = "0000000000000000"  # digests are not compared
    path.write_text(json.dumps(data))
    with pytest.warns(GoldenFallbackWarning, match="within rtol 1e-05, not bit for bit"):
        assert assert_golden(history, path).mode == "rtol"
    with pytest.raises(AssertionError, match=r"first difference at update 40, loss: .*within rtol 1e-09 \(fell "
                                             r"back from bit for bit.*recorded with jax 0.0.1"):
        assert_golden(history, path, rtol=1e-9)


def test_golden_refuses_corrupt_and_foreign_files(tmp_path):
    history = replay_case(_asgd, "fifo-4")
    for name, text, error in [("a.json", "{not json", "not readable JSON"),
                              ("b.json", '{"hello": 1}', "not a stalesim golden history"),
                              ("c.json", json.dumps({"format": "stalesim-golden", "format_version": 1}), "corrupt")]:
        (tmp_path / name).write_text(text)
        with pytest.raises(GoldenError, match=f"{error}.*re-record it with STALESIM_UPDATE_GOLDEN=1"):
            assert_golden(history, tmp_path / name)
    with pytest.raises(GoldenError, match="must end in .json"):
        assert_golden(history, tmp_path / "d.txt")


def test_golden_of_a_plain_history(tmp_path):
    """Any algorithms.History: losses and accuracies, and the final parameters' digest."""
    problem = testing.case_problem("")
    history = algorithms.replay(testing.case_trace("fifo-4"), asgd(0.05), problem, eval_every=20, keep_params=True)
    assert assert_golden(history, tmp_path / "p.json").mode == "recorded"
    assert json.loads((tmp_path / "p.json").read_text())["final_digest"] == testing.params_digest(history.params)
    assert assert_golden(history, tmp_path / "p.json").mode == "exact"
    with pytest.raises(AssertionError, match="records update, sim_time, loss, accuracy per evaluation"):
        assert_golden(replay_case(_asgd, "fifo-4"), tmp_path / "p.json")


def test_golden_history_of_the_stock_rules(golden):
    """The plugin's golden fixture; tests/scenarios/testing/golden/test_kit/ holds the recorded file."""
    assert golden == ROOT / "tests" / "scenarios" / "testing" / "golden" / "test_kit" / "test_golden_history_of_the_stock_rules.json"
    assert_golden(replay_case("dcasgd-a", "crash-4", "adam"), golden)


def test_compare():
    assert compare(_asgd, "asgd-server", "whitelist-4") is None
    difference = compare(_asgd, _lr_up, "fifo-4")
    assert difference.update == 1 and difference.metric == "loss" and difference.a != difference.b
    assert set(difference.largest) == {"loss", "accuracy", "param_norm"}
    assert 0 < difference.largest["loss"] < 1


# ------------------------------------------------------------------ the command
HALF_PRECISION_RULE = textwrap.dedent("""

    def half(base):
        \"\"\"ASGD whose parameters come back as float16: a rule conformance must fail.\"\"\"
        rule = algorithms.asgd(base=base)
        def update(state, params, grad, **kw):
            params, state = rule.update(state, params, grad, **kw)
            return jax.tree_util.tree_map(lambda x: x.astype(jnp.float16), params), state
        return rule._replace(update=update)
""")


def test_check_command(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_rules.py").write_text(textwrap.dedent("""
        import algorithms, jax, jax.numpy as jnp

        def good(base):
            return algorithms.buffered(base=base, buffer_size=2)
        good.policy = "buffered:2"
    """) + HALF_PRECISION_RULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    parser = argparse.ArgumentParser()
    testing.add_subcommand(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["check", "my_rules:good", "--base", "sgd", "--cases", "buffered-4,fifo-4"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert re.search(r"^buffered-4 +pass +\d+\.\d\ds", out, re.M) and re.search(r"^fifo-4 +skip", out, re.M)
    assert re.search(r"^worker-isolation +pass", out, re.M) and out.rstrip().endswith("all passed")
    args = parser.parse_args(["check", "my_rules:half", "--base", "sgd", "--cases", "none"])
    assert args.func(args) == 1
    out = capsys.readouterr().out
    assert re.search(r"^dtypes +FAIL .*float32 became float16", out, re.M) and out.rstrip().endswith("1 failed")
    with pytest.raises(RuleError, match="cannot import 'no_such_module'"):
        args = parser.parse_args(["check", "no_such_module:f"])
        args.func(args)


# ---------------------------------------------- a user's test file, outside the repository
def _readme_test_file() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Testing your own variant", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.splitlines()) <= 20
    return code


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop(testing.UPDATE_ENV, None)
    env.pop(testing.golden.MISSING_ENV, None)
    env.pop("CI", None)  # a missing golden is recorded, as on a developer's machine
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W",
                           "error::pytest.PytestUnknownMarkWarning", *args],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300)


def test_readme_test_file_records_passes_then_names_the_first_change(tmp_path):
    """The README's test file in a folder of its own: (a) records its golden history,
    (b) passes again in a new process, (c) fails naming update 1 when the variant's
    learning rate is 0.1% higher, (d) check_rule fails on a rule that changes the
    parameters' dtype; --update-golden re-records."""
    user = tmp_path / "project"
    user.mkdir()
    code = _readme_test_file()
    test_file = user / "test_my_dcasgd.py"
    test_file.write_text(code)
    golden = user / "golden" / "test_my_dcasgd" / "test_golden.json"  # next to the test file

    first = _pytest(user)  # (a)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "3 passed" in first.stdout and f"recorded 1 golden file(s): {golden}" in first.stdout
    recorded = golden.read_text()
    assert json.loads(recorded)["case"] == "fifo-hetero-8"

    second = _pytest(user, "-k", "golden")  # (b)
    assert second.returncode == 0 and "1 passed" in second.stdout, second.stdout + second.stderr
    assert golden.read_text() == recorded

    target = "algorithms.dcasgd(base=base, lam=1.0,"
    assert code.count(target) == 1
    changed = code.replace(target, "algorithms.dcasgd(base=optax.chain(base, optax.scale(1.001)), lam=1.0,")
    test_file.write_text("import jax, jax.numpy as jnp, optax\n" + changed + HALF_PRECISION_RULE + textwrap.dedent("""

        def test_a_rule_that_changes_the_dtype_fails_conformance():
            check_rule(half, bases=("sgd",))
    """))
    third = _pytest(user, "-k", "golden or dtype")  # (c), (d)
    out = third.stdout
    assert third.returncode == 1 and "2 failed" in out, out + third.stderr
    assert re.search(r"golden .*test_golden\.json: first difference at update 1, loss: recorded \d\.\d+, now "
                     r"\d\.\d+; compared bit for bit; recorded with jax .*; now jax ", out), out
    assert re.search(r"dtypes: \[sgd\] params\S* dtype float32 became float16 at update 1", out), out
    assert golden.read_text() == recorded

    fourth = _pytest(user, "-k", "golden", "--update-golden")
    assert fourth.returncode == 0 and "1 passed" in fourth.stdout, fourth.stdout + fourth.stderr
    assert golden.read_text() != recorded
    written = sorted(str(p.relative_to(user)) for p in user.rglob("*") if p.is_file())
    assert written == ["golden/test_my_dcasgd/test_golden.json", "test_my_dcasgd.py"]


def test_case_fixtures(stalesim_case, stalesim_cases):
    assert stalesim_case in stalesim_cases and testing.case_trace(stalesim_case).num_updates >= 80
    assert fits("asgd", stalesim_case) == (stalesim_case.split("-")[0] in ("fifo", "whitelist", "crash"))


def test_plugin_is_registered():
    from importlib.metadata import entry_points

    assert [ep.value for ep in entry_points(group="pytest11") if ep.name == "stalesim"] == ["scenarios.testing.pytest_plugin"]
    assert issubclass(CaseError, ReplayError)  # the command line's one-line errors
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        import scenarios.testing.pytest_plugin  # noqa: F401


def test_versions_is_the_deprecated_name_of_recorded_with():
    with pytest.warns(DeprecationWarning, match="renamed recorded_with"):
        old = testing.versions()
    assert old == testing.recorded_with() and {"jax", "jaxlib", "numpy", "platform", "cpu"} <= set(old)
