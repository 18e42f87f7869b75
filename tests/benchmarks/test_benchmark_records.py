"""What the README and benchmarks/README.md quote of measured runs follows from their committed records (benchmarks/records/)."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from benchmarks import halving, protocol
from scenarios.cli import main

ROOT = Path(__file__).resolve().parents[2]
RECORDS = ROOT / "benchmarks" / "records"


def _rows(markdown: str) -> list[list[str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("| ") and "---" not in line]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def _numbers(cell: str) -> list[float]:
    return [float(x) for x in re.findall(r"[-+]?\d+(?:\.\d+)?", cell)]


def largest_differences(cpu_md: str, gpu_md: str) -> dict:
    """Per column, the largest absolute difference between corresponding numbers."""
    cpu, gpu = _rows(cpu_md), _rows(gpu_md)
    assert cpu[0] == gpu[0] and [r[:3] for r in cpu] == [r[:3] for r in gpu]  # same columns and cells
    largest = {}
    for a, b in zip(cpu[1:], gpu[1:]):
        for column, x, y in zip(cpu[0], a, b):
            for p, q in zip(_numbers(x), _numbers(y)):
                largest[column] = max(largest.get(column, 0.0), abs(p - q))
    return largest


def test_readme_states_how_far_the_gpu_table_is_from_the_cpu_table():
    # the CPU table made by the same stalesim version as the GPU record (3 seeds, the tuning of 2026-11-26)
    cpu = (RECORDS / "cpu-fmnist-table-2026-12-01.md").read_text()
    gpu = next(RECORDS.glob("h100-fmnist-table*.md")).read_text()
    diff = largest_differences(cpu, gpu)
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"final accuracies within {diff['final acc. (%)']:.1f} points" in readme
    assert f"stability gains within {diff['stability gain']:.0f} points" in readme


def test_benchmarks_readme_shows_the_gpu_figures_of_the_record():
    record = json.loads(next(RECORDS.glob("*replay*.json")).read_text())
    text = (ROOT / "benchmarks" / "README.md").read_text()
    section = text[text.index("## On a GPU"):]
    for row in record["rows"]:
        assert f"{row['value']:.2f}" in section, row


def test_benchmarks_readme_table_shows_the_cpu_record():
    """The 'now' column of benchmarks/README.md's table is the committed `python -m benchmarks` run."""
    rows = [row for path in sorted(RECORDS.glob("cpu-*.json")) for row in json.loads(path.read_text())["rows"]]
    text = (ROOT / "benchmarks" / "README.md").read_text()
    table = text[text.index("## Figures on the reference machine"):text.index("## Where the time")]
    assert {"end_to_end", "cores", "replay_asgd", "peer_cnn", "resnet"} <= {row["figure"] for row in rows}
    for row in rows:
        if row["figure"] == "end_to_end" and "cache" in row["what"]:
            shown = f"{row['value']:.2f}"
        elif row["figure"].startswith("trace"):
            shown = f"{row['value']:,.0f}"
        else:
            shown = f"{row['value']:.2f}"
        assert shown in table, (row["figure"], row["what"], shown)


def test_benchmarks_readme_time_split_is_the_recorded_one():
    """'Where the time goes' shows the record's split of the whole grid with --jobs 1."""
    rows = [row for path in sorted(RECORDS.glob("cpu-*.json")) for row in json.loads(path.read_text())["rows"]]
    whole = next(r for r in rows if r["figure"] == "end_to_end" and "whole grid" in r["what"] and "--jobs 1" in r["what"])
    text = (ROOT / "benchmarks" / "README.md").read_text()
    section = text[text.index("## Where the time"):text.index("## What bounds each figure")]
    names = {"compile": "compilation", "training": "training (waited for before each evaluation)"}
    parts = re.findall(r"(?:; |, )([a-z][a-z ,()-]*?) ([\d.]+) s", whole["note"].split("; limit")[1])
    assert len(parts) >= 7
    for part, seconds in parts:
        assert f"| {names.get(part, part)} | {seconds} |" in section, (part, seconds)


def test_benchmarks_readme_peer_figures_are_the_recorded_output():
    text = " ".join((ROOT / "benchmarks" / "README.md").read_text().split())
    for path in sorted(RECORDS.glob("torch-peer-*.txt")):
        record = path.read_text()
        threads = re.search(r"(\d+) torch threads", record).group(1)
        ratio = re.search(r"stalesim / peer:\s+([\d.]+)", record).group(1)
        peer = re.search(r"PyTorch peer:\s+(\d+) updates/s\s+\[([\d, ]+)\]", record)
        ours = re.search(r"stalesim ASGD replay:\s+(\d+) updates/s\s+\[([\d, ]+)\]", record)
        label = "2 threads" if threads == "2" else "1 thread"
        assert f"| PyTorch peer, {label} | {peer.group(1)} | {peer.group(2)} |" in text, path.name
        assert f"| **{ours.group(1)}** | {ours.group(2)} |" in text, path.name
        assert ratio in text, path.name


def test_choices_quotes_the_recorded_model_speeds():
    rows = json.loads((RECORDS / "cpu-2core-2026-11-26.json").read_text())["rows"]
    scan = {r["what"].split(",")[0]: re.search(r"scan (\d+) steps/s", r["note"]).group(1)
            for r in rows if r["figure"] == "reference" and "10 workers" in r["what"]}
    text = " ".join((ROOT / "docs" / "choices.md").read_text().split())
    assert f"trains at {scan['cnn']} steps/s on the reference 2-core CPU against {int(scan['mlp']):,}" in text
    assert f"about {['', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten'][round(int(scan['mlp']) / int(scan['cnn']))]} times longer" in text


def test_benchmarks_readme_shows_the_recorded_protocol_times_and_halving_judgements():
    """The whole protocol's wall times and the successive-halving table in benchmarks/README.md
    are their records' (benchmarks.protocol, benchmarks.halving)."""
    text = (ROOT / "benchmarks" / "README.md").read_text()
    records = {module: sorted(RECORDS.glob(f"{module.__name__.split('.')[-1]}-*.json")) for module in (protocol, halving)}
    assert records[protocol]
    for module, paths in records.items():
        for path in paths:
            assert module.markdown(json.loads(path.read_text())) in text, path.name


def test_halving_judged_on_tuning_runs_by_hand(tmp_path):
    """benchmarks.halving: a rung at the full budget keeping everyone is the full grid; the cost
    of a rung at half keeping one of two candidates is (2 * 0.5 + 1 * 0.5) / 2."""
    out = tmp_path / "exp"
    assert main(["run", "synthetic", "--seeds", "1", "--updates", "40", "--set", "eval_every=20", "--base", "sgd",
                 "--algorithms", "asgd", "--tune", "lr=x0.1,x1", "--tuning-seeds", "2", "--out", str(out)]) == 0
    cells = halving.tuning_cells(out)
    ((cell, entries),) = cells.items()
    assert cell == ("asgd", "sgd", None) and len(entries) == 4
    keyed = {("exp",) + cell: entries}
    everyone = halving.judge(keyed, 1.0, 2)
    assert everyone["same_choice"] == 1 and everyone["cost_of_full_grid"] == 1.0 and not everyone["differences"]
    assert halving.judge(keyed, 0.5, 1)["cost_of_full_grid"] == 0.75
    r = entries[0][1]
    assert halving.score_at(r, 0) == r.history[0]["accuracy"]  # only the evaluation at update 0 so far
    assert halving.score_at(r, 40) == pytest.approx(np.mean([e["accuracy"] for e in r.history[-5:]]))


def test_halving_refuses_a_tuning_run_that_records_only_its_last_evaluations(tmp_path):
    out = tmp_path / "exp"
    assert main(["run", "synthetic", "--seeds", "1", "--updates", "100", "--set", "eval_every=10", "--base", "sgd",
                 "--algorithms", "asgd", "--tune", "lr=x0.1,x1", "--tuning-seeds", "1", "--out", str(out)]) == 0
    r = next(iter(halving.tuning_cells(out).values()))[0][1]
    assert [e["update"] for e in r.history] == [0, 80, 90, 100]
    assert halving.score_at(r, 100) == pytest.approx(np.mean([e["accuracy"] for e in r.history[-3:]]))
    with pytest.raises(ValueError, match="records only the evaluations its selection reads"):
        halving.score_at(r, 50)


RERUN_LOG = """note: something first
fmnist: 130 reported runs -> /x/fmnist
tuning: 13 cells x 10 candidate runs on tuning seeds 1000..1001, scored on validation
130 runs, 0 already finished, 130 to do (2 processes)
[ 130/130] tune-a  acc 0.8  elapsed 0:05:00  left ~0:00:00
78 runs, 0 already finished, 78 to do (2 processes)
reported runs:
130 runs, 0 already finished, 130 to do (2 processes)
finished in 900 s
noniid: 200 reported runs -> /x/noniid
200 runs, 50 already finished, 150 to do (2 processes)
finished in 600 s
"""
SWEEP_RUNS = """reported runs:
800 runs, 0 already finished, 800 to do (2 processes)
[ 799/800] gsgm  elapsed 0:17:58  left ~0:00:01
[ 800/800] gsgm  elapsed 0:18:03  left ~0:00:00
"""


def test_a_claims_rerun_log_is_split_into_its_parts(tmp_path):
    # with the sweep's own header and finish line (since 2026-12-02) and without (the older logs)
    new = RERUN_LOG + "sweep-stability: 800 reported runs -> /x/sweep-stability\n" + SWEEP_RUNS + "finished in 1090 s\n"
    for text, sweep_seconds in ((new, 1090), (RERUN_LOG + SWEEP_RUNS + "written to /x/claims.md\n", 18 * 60 + 3)):
        log = tmp_path / "rerun.log"
        log.write_text(text)
        rec = protocol.record(log)
        assert [(p["part"], p["runs_carried_out"], p["tuning_runs"], p["wall_seconds"]) for p in rec["parts"]] == [
            ("fmnist", 338, 208, 900), ("noniid", 150, 0, 600), ("sweep-stability", 800, 0, sweep_seconds)]
        assert rec["total_wall_seconds"] == 1500 + sweep_seconds
        assert "command_wall_seconds" not in rec and "the whole command" not in protocol.markdown(rec)
    log.write_text(new + "written to /x/claims.md\nclaims --rerun finished in 2700 s\n")  # logged since 2026-12-02
    rec = protocol.record(log)
    assert rec["total_wall_seconds"] == 2590 and rec["command_wall_seconds"] == 2700
    assert protocol.markdown(rec).endswith("| all | 1288 | | 43 min |\n| the whole command, to claims.md | | | 45 min |\n")


def _halving_lines(text: str) -> dict:
    """(algorithm, base) -> (every candidate's value, the kept ones), from tuning.csv's '# halving' lines."""
    cells = {}
    for line in text.splitlines():
        m = re.match(r"# halving \S+ (\S+) on (\S+), rung at \d+ updates: (.*)$", line)
        if m:
            entries = [e.split(": ") for e in m.group(3).split("; ")]
            values = [float(name.split("=")[1]) for name, _ in entries]
            kept = [float(name.split("=")[1]) for name, score in entries if score.endswith("(kept)")]
            cells[(m.group(1), m.group(2))] = (values, kept)
    return cells


def test_the_fmnist_halving_record_drops_the_full_grids_winner_in_the_two_per_node_adam_cells():
    """docs/protocol.md and benchmarks/README.md say that --halving 3@1/6 on fmnist dropped the
    full grid's winner in 2 of 13 cells, per-node ASGD and DC-ASGD-a on Adam, whose winner (the
    smallest rate) starts slowly and so missed the rung's best three."""
    rung = _halving_lines((RECORDS / "halving-fmnist-tuning-2026-12-02.csv").read_text())
    committed = [r for r in csv.DictReader(l for l in (ROOT / "docs/claims-data/fmnist/tuning.csv").read_text()
                                           .splitlines() if not l.startswith("#")) if r["chosen"] == "True"]
    winners = {(r["algorithm"], r["base"]): float(r["value"]) for r in committed}
    assert len(rung) == len(winners) == 13
    dropped = sorted(cell for cell, (_, kept) in rung.items() if winners[cell] not in kept)
    assert dropped == [("asgd", "adam"), ("dcasgd-a", "adam")]
    for cell in dropped:
        values, kept = rung[cell]
        assert winners[cell] == min(values) == 3e-05 and len(kept) == 3


def test_the_whole_protocols_quoted_times_are_its_records():
    """The README's and benchmarks/README.md's time of the whole claims --rerun, its --dry-run
    estimate and the --jobs 1 / --jobs 2 comparison are their records'."""
    before = json.loads((RECORDS / "protocol-cpu-2core-avx512-2026-12-02.json").read_text())
    rec = json.loads((RECORDS / "protocol-cpu-2core-avx512-lr-in-state-2026-12-02.json").read_text())
    readme = " ".join((ROOT / "README.md").read_text().split())
    bench = " ".join((ROOT / "benchmarks" / "README.md").read_text().split())
    minutes, minutes_before = (round(r["total_wall_seconds"] / 60) for r in (rec, before))
    assert f"`claims --rerun` took {minutes} minutes from scratch" in readme
    assert f"**Now: the protocol's own settings, {minutes} minutes.**" in bench
    assert f"**Before the last two levers: the protocol's own settings, {minutes_before} minutes.**" in bench
    assert f"The whole command: {minutes_before} -> {minutes} minutes." in bench
    parts, parts_before = ({p["part"]: p["wall_seconds"] / 60 for p in r["parts"]} for r in (rec, before))
    for part in ("fmnist", "noniid", "scale"):
        assert f"`{part}` {parts_before[part]:.1f} -> {parts[part]:.1f}" in bench
    assert f"the sweep {parts_before['sweep-stability']:.1f} -> {parts['sweep-stability']:.1f}" in bench
    for r in (rec, before):
        assert "halving" not in " ".join(p["part"] for p in r["parts"]) and all(
            p["tuning_runs"] * 2 == p["runs_carried_out"] for p in r["parts"] if p["tuning_runs"])  # full grids
    for name in ("protocol-dry-run-2026-12-02.txt", "protocol-dry-run-lr-in-state-2026-12-02.txt"):
        dry = (RECORDS / name).read_text()
        midpoint = re.search(r"the whole protocol: about (\d+) min", dry).group(1)
        assert f"estimated the whole protocol at about {midpoint} min" in bench
        assert re.search(r"to do: 1280 runs, (7,680,000) applied updates", dry).group(1) == "7,680,000"
    timed = re.findall(r"^--jobs (\d): ([\d.]+) s wall, ([\d.]+) s user", (RECORDS / "jobs-1-vs-2-2026-12-02.txt")
                       .read_text(), re.M)
    (one, wall1, user1), (two, wall2, _) = timed
    assert (one, two) == ("1", "2")
    assert f"took {float(wall1):.1f} s with `--jobs 1` and {float(wall2):.1f} s with `--jobs 2`" in bench
    readme_words = " ".join((ROOT / "README.md").read_text().split())
    assert f"a second process adds little ({float(wall1) / float(wall2):.2f}x," in readme_words
    pinned = re.search(r"^pinned to one core \(taskset -c 0\), --jobs 1, .*: ([\d.]+) s wall", (
        RECORDS / "jobs-1-vs-2-2026-12-02.txt").read_text(), re.M).group(1)
    assert f"pinned to one core, the one process took {float(pinned):.1f} s" in bench
    assert f"about {float(pinned) / float(wall2):.1f}x of one core" in bench
    cores = float(user1) / float(wall1)
    assert f"about {cores:.1f} cores busy (its user time, {float(user1):.1f} s, over its wall time)" in bench


def test_benchmarks_readme_shows_the_regression_record():
    """'Reported again after the whole-protocol work' shows its record's figures."""
    text = (ROOT / "benchmarks" / "README.md").read_text()
    section = " ".join(text[text.index("### Reported again after"):text.index("## Where the time")].split())
    for row in json.loads((RECORDS / "regression-cpu-2core-avx512-lr-in-state-2026-12-02.json").read_text())["rows"]:
        if row["figure"] in ("replay_asgd", "replay_dcasgd", "replay_gsgm", "memory") and (
                row["what"].startswith("mlp") or row["figure"] == "memory"):
            assert f"| **{row['value']:.2f}** |" in section, row["what"]
        if row["figure"] == "end_to_end" and "whole grid" in row["what"]:
            seconds = re.search(r"in (\d+) s;", row["note"]).group(1)
            assert f"**{row['value']:.2f}** ({seconds} s) |" in section, row["what"]
    rows = json.loads((RECORDS / "regression-cpu-2core-avx512-2026-12-02.json").read_text())["rows"]
    section = section.replace("**", "")  # the morning's column is plain now
    for row in rows:
        if row["figure"] in ("replay_asgd", "replay_dcasgd", "replay_gsgm") and row["what"].startswith("mlp"):
            assert f"| {row['value']:.2f} |" in section, row["what"]
        if row["figure"] == "end_to_end" and "whole grid" in row["what"]:
            seconds, limit = re.search(r"in (\d+) s; limit (\d+) s", row["note"]).groups()
            assert f"| {row['value']:.2f} ({seconds} s) |" in section, row["what"]
            if "auto" in row["what"]:
                assert f"{seconds} s against 125 s" in section and f"({limit} s for the grid's" in section
        if row["figure"] == "memory":
            assert f"| {row['value']:.2f} |" in section


def test_readme_setup_times_are_the_newcomer_record():
    """The set-up section's times and test count are the fresh-clone record's."""
    rec = (RECORDS / "newcomer-lr-in-state-2026-12-02.txt").read_text()
    main_job = re.search(r"main job command: (\d+) s in all, exit 0; .* finished in (\d+) s", rec)
    tests = re.search(r"test command \(pytest\): (\d+) passed.*\((\d+):(\d\d):(\d\d)\)", rec)
    ci = re.search(r"\.ci/run: (\d+) s in all, exit 0; README.md's Fashion-MNIST table matches", rec)
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"{main_job.group(1)} s in all, of which the 39 runs took {main_job.group(2)} s in 2 processes" in readme
    count, _, minutes, seconds = tests.groups()
    assert f"pytest took {int(minutes)} min {int(seconds)} s for the {count} tests" in readme
    assert f"`reproduce fmnist` checked against the README's table) {ci.group(1)} s" in readme


def test_the_levers_timed_apart_are_their_record():
    """benchmarks/README.md's times of the two levers of 2026-12-02 are the means of their record's rounds."""
    text = (RECORDS / "levers-2026-12-02.txt").read_text()
    rounds = re.findall(r"^(\w+) round (\d): ([\d.]+) s wall", text, re.M)
    means = {c: np.mean([float(t) for cc, _, t in rounds if cc == c]) for c, _, _ in rounds}
    assert len(rounds) == 6 and all(sum(cc == c for cc, _, _ in rounds) == 2 for c in means)
    bench = " ".join((ROOT / "benchmarks" / "README.md").read_text().split())
    before, rate, both = (means[c] for c in ("d762262", "b459680", "83c06ed"))
    assert (f"{before:.1f} s before both (mean of the rounds), {rate:.1f} s with the rate in the state, "
            f"{both:.1f} s with the fewer evaluations too") in bench
