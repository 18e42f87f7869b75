"""A user's own rule runs from the command line as package.module:function, without a fork."""

import json
import sys
import textwrap

import pytest

from scenarios.cli import main

TINY = ["--seeds", "1", "--updates", "40", "--set", "eval_every=20", "--base", "sgd"]

RULE = textwrap.dedent('''
    """A user's variant: ASGD with every gradient halved."""
    import jax
    from algorithms import asgd

    def half_asgd(base):
        inner = asgd(base=base)
        def update(state, params, grad, **kw):
            return inner.update(state, params, jax.tree_util.tree_map(lambda g: g / 2, grad), **kw)
        return inner._replace(update=update, name="half-asgd")

    def not_a_rule(base):
        return 42

    def queued(base):
        return asgd(base=base)
    queued.policy = "whitelist-queue"
''')


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    import importlib

    (tmp_path / "user_rules_under_test.py").write_text(RULE)
    sys.modules.pop("user_rules_under_test", None)
    importlib.invalidate_caches()
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # spawned worker processes import it too
    yield "user_rules_under_test"
    sys.modules.pop("user_rules_under_test", None)


def test_user_rule_runs_through_run_and_report(user_module, tmp_path, capsys):
    out = tmp_path / "out"
    ref = f"{user_module}:half_asgd"
    assert main(["run", "synthetic", "--algorithms", f"asgd,{ref}", *TINY, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert ref in text  # tables label the run with the reference
    results = [json.loads(p.read_text()) for p in out.glob("runs/*/result.json")]
    mine = [r for r in results if r["algorithm"] == ref]
    stock = [r for r in results if r["algorithm"] == "asgd"]
    assert len(mine) == 1 and mine[0]["policy"] == "fifo"
    assert mine[0]["history"] != stock[0]["history"]  # halved gradients: a different run on the same trace
    assert main(["report", str(out)]) == 0
    assert ref in (out / "table.md").read_text()


def test_user_rule_policy_attribute(user_module, tmp_path):
    out = tmp_path / "out"
    assert main(["run", "synthetic", "--algorithms", f"{user_module}:queued", *TINY, "--out", str(out)]) == 0
    r = json.loads(next(out.glob("runs/*/result.json")).read_text())
    assert r["policy"] == "whitelist-queue"


@pytest.mark.parametrize("ref, needle", [
    ("no_such_module_xyz:f", "cannot import"),
    ("user_rules_under_test:missing", "no function"),
    ("user_rules_under_test:not_a_rule", "must return an algorithms.Rule"),
])
def test_bad_references_fail_before_any_work(user_module, ref, needle, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "synthetic", "--algorithms", ref, *TINY, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "--algorithms" in err[0]
    assert not out.exists()
