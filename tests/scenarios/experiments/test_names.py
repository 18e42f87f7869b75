"""Names changed since results were written are read back under their names now, with one notice."""

import json

import pytest

from scenarios import errors
from scenarios.errors import ConfigError
from scenarios.experiments import results
from scenarios.experiments.plan import Options, claim_folder, plan
from scenarios.experiments.sweep import load_sweep


def test_an_experiment_folder_written_with_the_key_scenario_is_still_its_experiment(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(errors, "_SAID", set())
    planned = plan(Options("synthetic", out=str(tmp_path / "exp")))
    identity = planned.options.identity
    assert identity["experiment"] == "synthetic" and "scenario" not in identity
    old = {"scenario": "synthetic", "identity": {"scenario" if k == "experiment" else k: v for k, v in identity.items()}}
    planned.out.mkdir()
    (planned.out / "experiment.json").write_text(json.dumps(old))
    claim_folder(planned.out, identity, force=False)  # the same experiment: accepted
    claim_folder(planned.out, identity, force=False)
    assert capsys.readouterr().err.strip().splitlines() == [
        "stalesim: note: experiment.json: the key 'scenario' is now 'experiment' (read as such)"]  # once
    other = plan(Options("synthetic", seeds="3", out=str(planned.out))).options.identity
    with pytest.raises(ConfigError, match=r"holds a different experiment \(synthetic, other options\)"):
        claim_folder(planned.out, other, force=False)
    assert results.current_names({"experiment": "a", "scenario": "b"}) == {"experiment": "a", "scenario": "b"}


def test_a_sweep_file_naming_its_base_scenario_still_loads(tmp_path, capsys):
    text = (load_sweep("staleness").path.read_text()).replace('experiment = "fmnist"', 'scenario = "fmnist"')
    assert 'scenario = "fmnist"' in text
    old = tmp_path / "old.toml"
    old.write_text(text)
    assert load_sweep(str(old)).identity == {**load_sweep("staleness").identity}
    assert f"sweep {old}: the key 'scenario' is now 'experiment' (read as such)" in capsys.readouterr().err
