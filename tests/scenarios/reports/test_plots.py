"""Figures: written as PNG and PDF with a caption beside each, censored runs marked, the
stability region drawn for a workers x learning-rate sweep. Results are made up (no runs)."""

import numpy as np
import pytest

from scenarios.reports import plots, style
from scenarios.reports.tables import aggregate, color, write_report
from scenarios.experiments.results import RunResult
from scenarios.experiments.sweep import load_sweep
from scenarios.reports.sweeps import write_sweep_report

pytest.importorskip("matplotlib")

SWEEP = """
name = "region"
experiment = "synthetic"
algorithms = ["asgd", "gsgm"]
bases = ["sgd"]
seeds = 2
target_accuracy = 0.9
[set]
updates = 100
eval_every = 20
[axes]
workers = [4, 8]
lr_sgd = [0.01, 0.1, 1.0]
"""


def fake_result(algorithm="asgd", base="sgd", seed=0, workers=4, lr=0.1, outcome="converged", reach=0.95,
                axis=None, axis_value=None) -> RunResult:
    """A finished run: accuracy rising to ``reach``, a staleness histogram that grows with ``workers``."""
    rng = np.random.default_rng([seed, workers, int(lr * 1000), sum(map(ord, algorithm + base))])  # each its own
    times = np.linspace(0.0, 100.0 + 10 * seed, 6)
    acc = np.clip(0.1 + (reach - 0.1) * (1 - np.exp(-times / 30)) + rng.normal(0, 0.01, len(times)), 0, 1)
    history = [{"update": 20 * i, "sim_time": float(t), "loss": 1.0 / (1 + i), "accuracy": float(a)}
               for i, (t, a) in enumerate(zip(times, acc))]
    policy = "whitelist-wait" if algorithm == "gsgm" else "fifo"
    top = workers * (1 if policy == "fifo" else 0.5)
    hist = {str(v): int(100 * np.exp(-v / max(1.0, top / 2))) + 1 for v in range(int(top) + 1)}
    return RunResult(
        run=f"{algorithm}-{base}-s{seed}", key=f"{algorithm}{seed}{workers}{lr}".ljust(16, "0"), algorithm=algorithm,
        base=base, seed=seed, policy=policy,
        config={"dataset": "synthetic", "model": "mlp", "workers": workers, "updates": 100, "lr_sgd": lr,
                "target_accuracy": 0.9},
        history=history,
        trace={"staleness_histogram": hist, "mean_staleness": top / 2, "p95_staleness": top, "max_staleness": top,
               "sim_time": float(times[-1])},
        final_accuracy=None if outcome == "diverged" else float(acc[-1]),
        accuracy_std=None if outcome == "diverged" else 0.01 + 0.005 * seed,
        outcome=outcome, diverged=outcome == "diverged", axis=axis, axis_value=axis_value)


def _figure_files(folder, name):
    return [folder / f"{name}.{ext}" for ext in ("png", "pdf", "txt")]


def test_style_is_the_one_palette_and_save_writes_png_pdf_caption(tmp_path):
    assert color("gsgm") == style.color("gsgm") and color("asgd") != color("gsgm")
    with style.context():
        fig, axes = style.figure(style.COLUMN)
        axes[0, 0].plot([0, 1], [0, 1])
        png = style.save(fig, tmp_path / "fig" / "line.png", "A line.  ")
    assert png == tmp_path / "fig" / "line.png"
    for path in _figure_files(tmp_path / "fig", "line"):
        assert path.is_file() and path.stat().st_size > 0
    assert (tmp_path / "fig" / "line.pdf").read_bytes().startswith(b"%PDF")
    assert (tmp_path / "fig" / "line.txt").read_text() == "A line.\n"
    assert not list((tmp_path / "fig").glob(".*tmp"))  # no temporary files left


def test_report_figures_with_captions(tmp_path):
    results = [fake_result(a, b, s, outcome="failed" if (a, b) == ("asgd", "adam") else "converged")
               for a in ("asgd", "dcasgd-a", "gsgm") for b in ("sgd", "adam") for s in range(3)]
    table, paths = write_report(results, tmp_path, "a title")
    folder = tmp_path / "plots"
    names = ("accuracy_vs_time", "staleness_histograms", "stability")
    assert [p.name for p in paths] == [f"{n}.png" for n in names]
    for name in names:
        for path in _figure_files(folder, name):
            assert path.is_file(), path
    accuracy = (folder / "accuracy_vs_time.txt").read_text()
    assert "95% t-interval" in accuracy and "3 seeds" in accuracy and "simulated time (s)" in accuracy
    assert "n/c" in (folder / "stability.txt").read_text()  # ASGD on Adam never converged
    assert "versions" in (folder / "staleness_histograms.txt").read_text()
    assert "stalesim" not in accuracy


def test_accuracy_curve_mean_and_interval_on_a_common_grid():
    a, b = fake_result(seed=0), fake_result(seed=1)
    t, mean, half, n = plots._curve([a, b])
    assert n == 2 and t[0] == 0 and t[-1] == pytest.approx(100.0)  # ends where the shorter run ends
    first = np.array([a.history[0]["accuracy"], b.history[0]["accuracy"]])
    assert mean[0] == pytest.approx(first.mean())
    assert half[0] == pytest.approx(12.706 * first.std(ddof=1) / np.sqrt(2))


def test_sweep_figures_mark_censored_runs_and_draw_the_stability_region(tmp_path):
    spec = tmp_path / "region.toml"
    spec.write_text(SWEEP)
    sweep = load_sweep(str(spec))
    results = []
    for algorithm in ("asgd", "gsgm"):
        for workers in (4, 8):
            for lr in (0.01, 0.1, 1.0):
                for seed in range(2):
                    if lr == 1.0 and algorithm == "asgd":
                        outcome, reach = ("diverged" if seed == 0 else "failed"), 0.1
                    elif lr == 0.01:
                        outcome, reach = "converged", 0.8  # never reaches the 90% target: censored
                    else:
                        outcome, reach = "converged", 0.97
                    results.append(fake_result(algorithm, "sgd", seed, workers, lr, outcome, reach))
    write_sweep_report(results, sweep, tmp_path)
    folder = tmp_path / "plots"
    for name in ("stability_vs_staleness", "time_to_target", "staleness_by_shape", "stability_region"):
        for path in _figure_files(folder, name):
            assert path.is_file(), path
    ttt = (folder / "time_to_target.txt").read_text()
    assert "not reached" in ttt and "censored" in ttt and "(s)" in ttt
    region = (folder / "stability_region.txt").read_text()
    assert "fraction of seeds" in region and "workers" in region
    # the learning rate leaves the staleness alone: the panels are the cluster shapes (workers) only
    assert "one panel per cluster shape (workers)" in (folder / "staleness_by_shape.txt").read_text()


def test_censored_runs_are_drawn_as_open_markers_with_a_count(tmp_path, monkeypatch):
    results = [fake_result("asgd", seed=s, workers=4, lr=0.1, reach=0.8 if s else 0.97) for s in range(3)]
    captured = {}
    real_save = style.save

    def keep(fig, path, caption):
        captured["texts"] = [t.get_text() for ax in fig.axes for t in ax.texts]
        captured["open"] = [line for ax in fig.axes for line in ax.get_lines() if line.get_marker() == "^"]
        return real_save(fig, path, caption)

    monkeypatch.setattr(style, "save", keep)
    with style.context():
        plots.time_to_target_figure(results, ["workers", "lr_sgd"], 0.9, tmp_path / "ttt")
    assert "not reached\n2/3" in captured["texts"]  # two of three seeds never reached 90%
    assert len(captured["open"]) == 1 and captured["open"][0].get_markerfacecolor() in ("white", (1, 1, 1, 1))


def test_no_stability_region_without_workers_and_learning_rate(tmp_path):
    results = [fake_result(seed=s) for s in range(2)]
    with style.context():
        assert plots.stability_region(results, ["spread"], tmp_path / "region") is None
    assert aggregate(results)  # the table side still works on the same results
