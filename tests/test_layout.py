"""The packages' shape: sim is JAX-free, algorithms imports only sim's contract, no import
cycle, plain package imports, one line per rule file, docstrings that ``help`` shows, old names warn."""

import ast
import re
import subprocess
import sys
import types
import warnings
from pathlib import Path

import jax.numpy as jnp
import pytest

import algorithms
from algorithms import Rule, asgd, buffered, dcasgd, gsgm, registry, ssgd, staleness_aware_asgd
from algorithms.declaration import Algorithm, Base

ROOT = Path(__file__).resolve().parents[1]


def test_importing_sim_does_not_import_jax():
    code = "import sim, sim.events, sim.checks, sys; assert 'jax' not in sys.modules, 'sim imported jax'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def _imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.add(node.module)
    return found


def test_algorithms_imports_only_sims_trace_contract_and_checks():
    for path in sorted((ROOT / "algorithms").glob("*.py")):
        of_sim = {m for m in _imported_modules(path) if m == "sim" or m.startswith("sim.")}
        assert of_sim <= {"sim.events", "sim.checks"}, path.name


def test_the_package_is_plain_imports_with_one_list():
    assert type(algorithms) is types.ModuleType and not hasattr(algorithms, "__getattr__")
    assert all(not isinstance(getattr(algorithms, name), types.ModuleType) for name in algorithms.__all__)
    assert {"asgd", "dcasgd", "gsgm", "replay", "replay_seeds", "ReplayError", "Rule", "make_rule"} <= set(
        algorithms.__all__)
    assert callable(algorithms.asgd) and callable(algorithms.buffered)  # the functions, not their modules


def test_the_registry_collects_the_rule_modules_in_order():
    declared = [p.stem for p in (ROOT / "algorithms").glob("*.py") if "\nALGORITHMS = (" in p.read_text()]
    assert sorted(declared) == sorted(registry.RULE_MODULES)
    collected = [a.name for m in registry.RULE_MODULES
                 for a in sys.modules[f"algorithms.{m}"].ALGORITHMS]
    assert list(registry.ALGORITHMS) == collected


def test_the_readme_recipe_for_a_new_algorithm_builds_a_rule():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Adding an algorithm"):readme.index("## Testing your own variant")]
    assert "RULE_MODULES" in section
    source = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    module = types.ModuleType("algorithms.my_rule")
    module.__package__ = "algorithms"
    exec(compile(source, "README: algorithms/my_rule.py", "exec"), module.__dict__)  # noqa: S102
    (declared,) = module.ALGORITHMS
    assert isinstance(declared, Algorithm)
    rule = declared.rule(Base("sgd", 0.1), 2, {})
    params, _ = rule.update(rule.init(jnp.ones(3), 2), jnp.ones(3), jnp.ones(3), worker=0, staleness=0,
                            backup=jnp.ones(3))
    assert params.tolist() == pytest.approx([0.95] * 3)


@pytest.mark.parametrize("factory", [asgd, dcasgd, gsgm, buffered, ssgd, staleness_aware_asgd])
def test_help_shows_the_update_rule_and_args(factory):
    doc = factory.__doc__
    assert "Args:" in doc and ("<-" in doc or "=" in doc)
    if factory is not ssgd:
        assert "Reference" in doc
    assert "Args" not in sys.modules[factory.__module__].__doc__


def test_registered_names_are_explicit_about_optimizer_state():
    momentum = Base("momentum", 0.1, 0.9)
    w, g = jnp.array([1.0, 2.0]), jnp.array([1.0, -1.0])

    def two_workers(rule):
        state = rule.init(w, 2)
        p, state = rule.update(state, w, g, worker=0, staleness=0, backup=w)
        p, state = rule.update(state, p, g, worker=1, staleness=0, backup=w)
        return p.tolist()

    per_worker = two_workers(asgd(base=momentum.optimizer(), optimizer_state="worker"))
    server = two_workers(asgd(base=momentum.optimizer(), optimizer_state="server"))
    assert per_worker != server
    assert two_workers(registry.get("asgd").rule(momentum, 2, {})) == per_worker
    assert two_workers(registry.get("asgd-server").rule(momentum, 2, {})) == server
    # the library functions' defaults are what the registered names asgd and dcasgd (dcasgd-a) mean
    assert two_workers(asgd(base=momentum.optimizer())) == per_worker
    dcasgd_a = two_workers(registry.get("dcasgd").rule(momentum, 2, {"dcasgd_lam": 2.0}))
    assert two_workers(dcasgd(base=momentum.optimizer())) == dcasgd_a
    assert dcasgd_a != two_workers(dcasgd(base=momentum.optimizer(), optimizer_state="server"))
    assert dcasgd_a != two_workers(dcasgd(base=momentum.optimizer(), adaptive=False))


def test_rules_of_equal_values_are_one_rule():
    base = Base("momentum", 0.1, 0.9)
    gsgm_ = registry.get("gsgm")
    values = {"gsgm_k": 2, "gsgm_policy": "fifo", "gsgm_momentum": 0.9}
    assert gsgm_.rule(base, 4, values) is gsgm_.rule(Base("momentum", 0.1, 0.9), 4, {**values, "unrelated": 1})
    assert gsgm_.rule(base, 4, {**values, "gsgm_k": 3}) is not gsgm_.rule(base, 4, values)


def test_old_names_still_work_with_a_deprecation_warning():
    from sim import Buffered

    with pytest.warns(DeprecationWarning, match="gradients_per_version"):
        rule = Rule(lambda p, n: (), lambda *a, **k: None, gradients_per_step=3)
    assert rule.gradients_per_version == 3
    with pytest.warns(DeprecationWarning, match="gradients_per_version"):
        assert rule.gradients_per_step == 3
    with pytest.warns(DeprecationWarning, match="gradients_per_version"):
        assert rule._replace(gradients_per_step=None).gradients_per_version is None
    with pytest.warns(DeprecationWarning, match="buffer_size"):
        assert Buffered(k=3).buffer_size == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Buffered(3).gradients_per_version(10) == buffered(0.1, buffer_size=3).gradients_per_version == 3
        assert Rule(None, None).gradients_per_version == 1


# ------------------------------------------------------------------ the import graph
def import_graph(root: Path, packages) -> dict:
    """Module -> the modules it imports at module level (function-local imports are the declared
    exceptions for heavy optional dependencies). ``from p import m`` of a module ``p.m`` is an edge
    to ``p.m``; an edge to one's own ancestor package is left out (Python loads it first anyway)."""
    modules = {}
    for package in packages:
        for path in (root / package).rglob("*.py"):
            modules[".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")] = path
    graph = {}
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        out = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                out |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = here.split(".")[:len(here.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                submodules = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules}
                out |= submodules or {base}
        graph[name] = {m for m in out if m in modules and m != name and not name.startswith(m + ".")}
    return graph


def cycles(graph: dict) -> list:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, on, stack, found = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_cycle(tmp_path):
    graph = import_graph(ROOT, ("sim", "algorithms", "scenarios", "benchmarks"))
    assert len(graph) > 100 and "scenarios.experiments.workers" in graph["scenarios.experiments.pool"]
    assert cycles(graph) == []
    # the check finds one: a imports b at module level, b imports a back through its package
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "__init__.py").write_text("")
    (tmp_path / "p" / "a.py").write_text("from p.b import g\n")
    (tmp_path / "p" / "b.py").write_text("import os\nfrom p import a\n\ndef g():\n    from p import c\n")
    (tmp_path / "p" / "c.py").write_text("from . import b\n")
    assert cycles(import_graph(tmp_path, ("p",))) == [["p.a", "p.b"]]  # c's import of b is inside g: none
