"""Issue 19: where `claims` writes, corrupt results, unwritable --out, sizes that cannot fit
in memory, rules beside the working folder, and registered names in the shipped files."""

import json
import re
import sys
import tomllib
from pathlib import Path

import pytest

from scenarios.experiments import memory
from scenarios.cli import main
from scenarios.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
TINY = ["--seeds", "1", "--updates", "40", "--set", "eval_every=20", "--base", "sgd", "--algorithms", "asgd"]


def _one_error_line(capsys, *needles):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("stalesim: error:"), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------ 1, 2: claims
def test_claims_without_out_writes_beside_the_results_not_docs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    tracked = tmp_path / "docs" / "claims.md"
    tracked.write_text("committed\n")
    (tmp_path / "results").mkdir()
    assert main(["claims"]) == 0
    assert tracked.read_text() == "committed\n"
    assert (tmp_path / "results" / "claims.md").read_text().startswith("# The GSGM paper's claims")
    assert "written to results/claims.md" in capsys.readouterr().out
    # --out only when given
    assert main(["claims", "--results", "results", "--out", "elsewhere/c.md"]) == 0
    assert (tmp_path / "elsewhere" / "c.md").is_file() and tracked.read_text() == "committed\n"


@pytest.mark.parametrize("corrupt", ["experiment.json", "runs/asgd-sgd-s0-0123456789/result.json"])
def test_claims_refuses_a_corrupt_results_file(corrupt, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # whatever it does, nothing lands in the checkout's docs/
    results = tmp_path / "results"
    path = results / "fmnist" / corrupt
    path.parent.mkdir(parents=True)
    (results / "fmnist" / "runs").mkdir(exist_ok=True)
    path.write_text("{ not json")
    assert main(["claims", "--results", str(results)]) == 2
    _one_error_line(capsys, "--results", str(path))
    assert not (results / "claims.md").exists()


def test_claims_md_regenerates_with_an_explicit_out(tmp_path, capsys):
    """The README's command for docs/claims.md, with --out, writes exactly the committed file."""
    out = tmp_path / "claims.md"
    assert main(["claims", "--results", str(ROOT / "docs" / "claims-data"), "--out", str(out)]) == 0
    assert out.read_text().replace(str(ROOT / "docs" / "claims-data"), "docs/claims-data") == \
        (ROOT / "docs" / "claims.md").read_text()


def _copy_runs(source: Path, target: Path, count: int, commit: str, jax=None) -> None:
    """``count`` committed fmnist runs into ``target``, their provenance rewritten."""
    for i, path in enumerate(sorted((source / "runs").glob("*/result.json"))[:count]):
        obj = json.loads(path.read_text())
        obj["versions"]["git_commit"] = commit
        if jax and i == 0:
            obj["versions"]["jax"] = jax
        (target / "runs" / path.parent.name).mkdir(parents=True)
        (target / "runs" / path.parent.name / "result.json").write_text(json.dumps(obj))


@pytest.mark.parametrize("commit, jax, needle", [
    ("0123abcd" * 5 + "+uncommitted", None, "uncommitted changes"),
    (None, None, "outside a git checkout"),
    ("0123abcd" * 5, "0.0.1", "mix JAX versions"),
])
def test_claims_refuses_results_that_cannot_be_rebuilt_unless_accepted(tmp_path, capsys, commit, jax, needle):
    _copy_runs(ROOT / "docs" / "claims-data" / "fmnist", tmp_path / "fmnist", 4, commit, jax)
    assert main(["claims", "--results", str(tmp_path)]) == 2
    _one_error_line(capsys, "--results", needle)
    assert not (tmp_path / "claims.md").exists()
    assert main(["claims", "--results", str(tmp_path), "--accept-provenance"]) == 0
    text = (tmp_path / "claims.md").read_text()
    assert "## Provenance accepted" in text and needle in text


# ------------------------------------------------------------------ 3: unwritable --out
def test_simulate_unwritable_out_is_one_line_before_simulating(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["simulate", "--workers", "2", "--updates", "10", "--out", str(blocker / "t.npz")]) == 2
    _one_error_line(capsys, "--out", "cannot write")
    assert main(["simulate", "--workers", "2", "--updates", "10", "--out", str(tmp_path)]) == 2
    _one_error_line(capsys, "--out", "is a folder")
    assert blocker.read_text() == "not a folder"


def test_simulate_save_failure_is_one_line(tmp_path, capsys, monkeypatch):
    """A write that fails after the checks (a full disk, a read-only mount) is one line too."""
    from sim import Trace

    def refuse(self, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Trace, "save", refuse)
    assert main(["simulate", "--workers", "2", "--updates", "10", "--out", str(tmp_path / "t.npz")]) == 2
    _one_error_line(capsys, "--out", "No space left on device")


@pytest.mark.parametrize("command", [["run", "synthetic", *TINY], ["reproduce", "synthetic", *TINY],
                                     ["claims", "--results", "."]])
def test_other_commands_unwritable_out_is_one_line(command, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main([*command, "--out", str(blocker / "x")]) == 2
    _one_error_line(capsys, "--out", "cannot write")


def test_sweep_unwritable_out_is_one_line(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text('experiment = "synthetic"\nalgorithms = ["asgd"]\nbases = ["sgd"]\nseeds = 1\n'
                    '[set]\nupdates = 40\neval_every = 20\n[axes]\nworkers = [4]\n')
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["sweep", str(spec), "--out", str(blocker / "x")]) == 2
    _one_error_line(capsys, "--out", "cannot write")


def test_result_writes_that_fail_are_a_config_error(tmp_path):
    from scenarios.experiments.results import write_text_atomic

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot write there"):
        write_text_atomic(blocker / "table.md", "text")
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


# ------------------------------------------------------------------ 4: sizes that cannot fit
def test_mistyped_updates_is_refused_up_front(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "synthetic", "--updates", "6000000000", "--dry-run", "--out", str(out)]) == 2
    line = _one_error_line(capsys, "--updates: 6,000,000,000 updates would need about", "GiB for the trace",
                           "bytes per update", "available")
    assert re.search(r"this machine has [\d.,]+ GiB available$", line), line
    assert not out.exists()


def test_mistyped_workers_is_refused_up_front(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 8 * memory.GiB)
    assert main(["run", "synthetic", "--workers", "100000", "--dry-run", "--out", str(tmp_path / "o")]) == 2
    _one_error_line(capsys, "--workers: 100,000 workers would need about", "per worker",
                    "this machine has 8.0 GiB available")


def test_a_sweep_too_large_is_refused_naming_the_field(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text('experiment = "synthetic"\nalgorithms = ["asgd"]\nbases = ["sgd"]\nseeds = 1\n'
                    '[axes]\nupdates = [100, 6000000000]\n')
    assert main(["sweep", str(spec), "--dry-run", "--out", str(tmp_path / "o")]) == 2
    _one_error_line(capsys, "sweep field updates: 6,000,000,000 updates")


def test_the_estimate_counts_what_grows():
    from scenarios.experiments.catalogue import EXPERIMENTS

    cfg = EXPERIMENTS["fmnist"].config
    base = memory.estimate(cfg)
    assert base.parameter_bytes == (784 * 200 + 200 + 200 * 10 + 10) * 4
    more = memory.estimate(cfg.with_overrides({"updates": 2 * cfg.updates}))
    assert more.trace == 2 * base.trace and more.workers == base.workers
    wider = memory.estimate(cfg.with_overrides({"workers": 2 * cfg.workers}))
    assert wider.workers > 2 * base.workers * 0.99 and wider.trace == base.trace
    assert memory.available_bytes() > 0


def test_shipped_experiments_fit_a_24_gib_machine():
    from scenarios.experiments.catalogue import EXPERIMENTS, expand
    from scenarios.experiments.sweep import load_sweep

    for name in ("fmnist", "scale", "noniid"):
        experiment = EXPERIMENTS[name]
        memory.check_memory(expand(experiment, experiment.config), available=24 * memory.GiB)
        fallback = experiment.config.with_overrides({"dataset": "fmnist", "model": "mlp"}) if experiment.fallback else None
        if fallback is not None:
            memory.check_memory(expand(experiment, fallback), available=24 * memory.GiB)
    for name in ("staleness", "stability"):
        memory.check_memory(load_sweep(name).runs(), label=memory.sweep_field, available=24 * memory.GiB)


# ------------------------------------------------------------------ 5: rules beside the working folder
RULE = '''
import jax
from algorithms import asgd

def half(base):
    """ASGD with every gradient halved."""
    inner = asgd(base=base)
    return inner._replace(update=lambda state, params, grad, **kw: inner.update(
        state, params, jax.tree_util.tree_map(lambda g: g / 2, grad), **kw), name="half")
'''


@pytest.fixture
def bare_path(tmp_path, monkeypatch):
    """The working folder is tmp_path and not on sys.path, as under the ``stalesim`` script."""
    import importlib

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    importlib.invalidate_caches()
    yield tmp_path
    for name in ("issue19_rules", "issue19_absent"):
        sys.modules.pop(name, None)


def test_a_rule_in_the_working_folder_is_importable(bare_path):
    from algorithms import registry

    (bare_path / "issue19_rules.py").write_text(RULE)
    function = registry.import_function("issue19_rules:half")
    assert function.__name__ == "half"
    assert registry.get("issue19_rules:half").display == "issue19_rules:half"
    assert sys.path.count(str(bare_path)) == 1
    registry.import_function("issue19_rules:half")
    assert sys.path.count(str(bare_path)) == 1  # inserted once


def test_a_missing_rule_module_says_where_it_looked(bare_path, capsys):
    assert main(["check", "issue19_absent:half"]) == 2
    _one_error_line(capsys, "issue19_absent", str(bare_path / "issue19_absent.py"), "current folder")
    assert main(["run", "synthetic", "--algorithms", "issue19_absent:half", "--out", str(bare_path / "o")]) == 2
    _one_error_line(capsys, "--algorithms", str(bare_path / "issue19_absent.py"))


def test_a_failing_import_inside_the_rule_module_is_named(bare_path):
    from algorithms import RuleError, registry

    (bare_path / "issue19_rules.py").write_text("import issue19_absent_dependency\n")
    with pytest.raises(RuleError, match="issue19_absent_dependency"):
        registry.import_function("issue19_rules:half")


# ------------------------------------------------------------------ 6: registered names only
def _listed(capsys) -> set:
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("algorithms (--algorithms"))
    return {line.split()[0] for line in lines[start + 1:] if line.strip()}


def _names_in_text(text: str) -> set:
    names = set()
    for match in re.finditer(r"--algorithms[ =]([a-z][a-z0-9-]*(?:,[a-z][a-z0-9-]*)*)(?![\w.:])", text):
        names |= set(match.group(1).split(","))
    for match in re.finditer(r"^algorithms\s*=\s*(\[.*?\])", text, re.M):
        names |= set(json.loads(match.group(1)))
    return names


def test_every_algorithm_name_in_shipped_files_is_listed(capsys):
    from scenarios.experiments.catalogue import EXPERIMENTS

    listed = _listed(capsys)
    found = {}
    for path in sorted((ROOT / "scenarios" / "sweeps").glob("*.toml")):
        found[path.name] = set(tomllib.loads(path.read_text()).get("algorithms", []))
    for experiment in EXPERIMENTS.values():
        found[f"catalogue {experiment.name}"] = set(experiment.algorithms)
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        found[path.name] = _names_in_text(path.read_text())
    assert found["staleness.toml"] and found["catalogue fmnist"]
    unlisted = {where: sorted(names - listed) for where, names in found.items() if names - listed}
    assert not unlisted, f"names that `stalesim list` does not show: {unlisted}"
