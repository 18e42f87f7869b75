"""Data loaders (on files written here in the real formats), partitions, metrics, reports."""

import gzip
import io
import pickle
import struct
import tarfile

import numpy as np
import pytest

from scenarios.experiments.config import ExperimentConfig, parse_assignments, run_key

from scenarios.errors import ConfigError
from scenarios.workloads.data import DataError, load_cifar, load_fmnist, read_idx, synthetic
from scenarios.experiments.catalogue import EXPERIMENTS, expand
from scenarios.experiments.results import RunResult
from scenarios.experiments.outcomes import metrics_of
from scenarios.workloads.partition import PartitionError, class_counts, dirichlet, iid, label_shards
from scenarios.reports.tables import aggregate, markdown_table


def write_idx(path, array, compress=False):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(raw)


def make_fmnist(folder, n_train=30, n_test=10, compress=True):
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
              "train-labels-idx1-ubyte": np.arange(n_train) % 10,
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
              "t10k-labels-idx1-ubyte": np.arange(n_test) % 10}
    for name, a in arrays.items():
        write_idx(folder / (name + suffix), a, compress)
    return arrays


@pytest.mark.parametrize("compress", [True, False])
def test_fmnist_loader_reads_idx_files(tmp_path, compress, monkeypatch):
    monkeypatch.delenv("STALESIM_DATA", raising=False)
    arrays = make_fmnist(tmp_path, compress=compress)
    ds = load_fmnist(tmp_path)
    assert ds.x_train.shape == (30, 28, 28, 1) and ds.x_test.shape == (10, 28, 28, 1)
    np.testing.assert_array_equal(ds.x_train[..., 0], arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert ds.num_classes == 10


def test_fmnist_environment_variable(tmp_path, monkeypatch):
    make_fmnist(tmp_path)
    monkeypatch.setenv("STALESIM_DATA", str(tmp_path))
    assert load_fmnist().x_train.shape[0] == 30


def test_fmnist_missing_and_corrupt_files(tmp_path, monkeypatch):
    monkeypatch.delenv("STALESIM_DATA", raising=False)
    monkeypatch.setattr("scenarios.workloads.data.DEBIAN_FMNIST", tmp_path / "nowhere")
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_fmnist()
    with pytest.raises(DataError, match="--data-dir .*only the folder given"):
        load_fmnist(tmp_path)
    make_fmnist(tmp_path, compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])  # truncated
    with pytest.raises(DataError, match="expected .* bytes"):
        load_fmnist(tmp_path)
    path.write_bytes(b"\x01\x02\x03\x04rubbish")
    with pytest.raises(DataError, match="magic"):
        read_idx(path)


@pytest.mark.skipif(not (__import__("pathlib").Path("/usr/share/datasets/fashion-mnist").is_dir()),
                    reason="Debian's dataset-fashion-mnist is not installed (.ci/run installs it)")
def test_real_fashion_mnist_from_debian(monkeypatch):
    monkeypatch.delenv("STALESIM_DATA", raising=False)
    ds = load_fmnist()
    assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(ds.y_train).tolist() == [6000] * 10


def _cifar_batch(n, classes, label_key, seed):
    rng = np.random.default_rng(seed)
    return {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            label_key: (np.arange(n) % classes).tolist(), b"batch_label": b"x"}


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
@pytest.mark.parametrize("as_archive", [False, True])
def test_cifar_loaders_on_generated_files(tmp_path, name, as_archive, monkeypatch):
    monkeypatch.delenv("STALESIM_DATA", raising=False)
    if name == "cifar10":
        folder, members, key, classes = "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + [
            "test_batch"], b"labels", 10
        archive = "cifar-10-python.tar.gz"
    else:
        folder, members, key, classes, archive = "cifar-100-python", ["train", "test"], b"fine_labels", 100, \
            "cifar-100-python.tar.gz"
    blobs = {m: pickle.dumps(_cifar_batch(20 if m != "test" and m != "test_batch" else 10, classes, key, i))
             for i, m in enumerate(members)}
    if as_archive:
        with tarfile.open(tmp_path / archive, "w:gz") as tar:
            for m, blob in blobs.items():
                info = tarfile.TarInfo(f"{folder}/{m}")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
    else:
        (tmp_path / folder).mkdir()
        for m, blob in blobs.items():
            (tmp_path / folder / m).write_bytes(blob)
    ds = load_cifar(name, tmp_path)
    n_train = 100 if name == "cifar10" else 20
    assert ds.x_train.shape == (n_train, 32, 32, 3) and ds.x_test.shape == (10, 32, 32, 3)
    assert ds.num_classes == classes
    # channel-major rows become HWC images
    first = pickle.loads(blobs[members[0]])[b"data"][0]
    np.testing.assert_array_equal(ds.x_train[0, :, :, 0].ravel(), first[:1024])


def test_cifar_missing_and_corrupt(tmp_path, monkeypatch):
    monkeypatch.delenv("STALESIM_DATA", raising=False)
    with pytest.raises(DataError, match="cifar-10-batches-py"):
        load_cifar("cifar10", tmp_path)
    (tmp_path / "cifar-100-python.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(DataError, match="not a readable"):
        load_cifar("cifar100", tmp_path)
    (tmp_path / "cifar-10-batches-py").mkdir()
    for m in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (tmp_path / "cifar-10-batches-py" / m).write_bytes(b"garbage")
    with pytest.raises(DataError, match="pickle"):
        load_cifar("cifar10", tmp_path)


# ------------------------------------------------------------------ partitions
LABELS = np.repeat(np.arange(10), 50)


def assert_exact_cover(parts, n):
    joined = np.concatenate(parts)
    assert len(joined) == n and len(np.unique(joined)) == n


@pytest.mark.parametrize("workers, c", [(10, 1), (10, 2), (10, 5), (10, 10), (30, 1), (20, 3), (4, 3)])
def test_label_shards_cover_every_sample_once_with_c_classes(workers, c):
    parts = label_shards(LABELS, workers, c)
    assert_exact_cover(parts, len(LABELS))
    counts = class_counts(LABELS, parts)
    assert all(np.count_nonzero(row) == c for row in counts)


def test_label_shards_one_class_per_node_and_split_classes():
    counts = class_counts(LABELS, label_shards(LABELS, 10, 1))
    np.testing.assert_array_equal(counts, 50 * np.eye(10, dtype=int))
    counts = class_counts(LABELS, label_shards(LABELS, 30, 1))
    assert np.all(counts.sum(1) >= 16) and np.all(counts.sum(0) == 50)  # each class split over 3 workers


def test_dirichlet_and_iid_cover_every_sample_once():
    for parts in (dirichlet(LABELS, 7, 0.3, seed=1), iid(LABELS, 7, seed=1)):
        assert_exact_cover(parts, len(LABELS))
    low = class_counts(LABELS, dirichlet(LABELS, 5, 0.05, seed=0))
    high = class_counts(LABELS, dirichlet(LABELS, 5, 100.0, seed=0))
    spread = lambda counts: np.mean(np.std(counts / counts.sum(1, keepdims=True), axis=1))
    assert spread(low) > spread(high)  # small alpha is more non-IID


def test_partition_errors():
    with pytest.raises(PartitionError, match="classes_per_worker"):
        label_shards(LABELS, 3, 1)
    with pytest.raises(PartitionError, match="classes_per_worker"):
        label_shards(LABELS, 10, 11)
    with pytest.raises(PartitionError, match="alpha"):
        dirichlet(LABELS, 3, 0.0)


# ------------------------------------------------------------------ config, metrics, table
def test_config_overrides_and_errors():
    cfg = ExperimentConfig().with_overrides(parse_assignments(["lr_sgd=0.1", "gsgm_k=3", "dcasgd_lam=default"]))
    assert cfg.lr_sgd == 0.1 and cfg.gsgm_k == 3 and cfg.dcasgd_lam is None
    for items, field in [(["nope=1"], "nope"), (["lr_sgd=x"], "lr_sgd"), (["lr_sgd=-1"], "lr_sgd"),
                         (["workers=0"], "workers"), (["gsgm_k=11"], "gsgm_k"), (["lr_adam=nan"], "lr_adam"),
                         (["model=vit"], "model"), (["spread=0.5"], "spread"), (["momentum=1"], "momentum")]:
        with pytest.raises(ConfigError, match=field):
            ExperimentConfig().with_overrides(parse_assignments(items))
    with pytest.raises(ConfigError, match="key=value"):
        parse_assignments(["lr_sgd"])


def test_run_key_depends_on_every_field():
    base = ExperimentConfig()
    keys = {run_key(base, "asgd", "sgd", 0), run_key(base, "asgd", "sgd", 1), run_key(base, "gsgm", "sgd", 0),
            run_key(base.with_overrides({"lr_sgd": 0.1}), "asgd", "sgd", 0)}
    assert len(keys) == 4
    assert run_key(base, "asgd", "sgd", 0) == run_key(ExperimentConfig(), "asgd", "sgd", 0)


def test_scenario_grids():
    # 5 algorithms x 3 bases x 3 seeds, less the two server-state twins on plain SGD (identical to per-node)
    assert len(expand(EXPERIMENTS["fmnist"], EXPERIMENTS["fmnist"].config)) == (5 * 3 - 2) * 3
    scale = expand(EXPERIMENTS["scale"], EXPERIMENTS["scale"].config)
    assert sorted({r.config.workers for r in scale}) == [10, 20, 30]
    noniid = expand(EXPERIMENTS["noniid"], EXPERIMENTS["noniid"].config)
    assert sorted({r.config.classes_per_worker for r in noniid}) == [1, 2, 5, 10]


class FakeHistory:
    def __init__(self, update, accuracy, diverged=False, diverged_at=None):
        self.update, self.accuracy, self.loss = np.asarray(update), np.asarray(accuracy), np.zeros(len(update))
        self.diverged, self.diverged_at = diverged, diverged_at


def test_metrics_hand_computed():
    cfg = ExperimentConfig(updates=100, final_evals=2)
    h = FakeHistory([0, 25, 50, 75, 100], [0.1, 0.5, 0.6, 0.8, 0.7])
    m = metrics_of(h, cfg)
    assert m["final_accuracy"] == pytest.approx(0.75)
    assert m["accuracy_std"] == pytest.approx(np.std([0.6, 0.8, 0.7]))
    assert not m["diverged"]
    d = metrics_of(FakeHistory([0, 25], [0.1, 0.2], True, 50), cfg)
    assert d["diverged"] and d["diverged_at"] == 50 and d["final_accuracy"] is None


def _result(algorithm, seed, acc, std, diverged=False):
    return RunResult(run=f"{algorithm}-s{seed}", key=f"{algorithm}{seed}", algorithm=algorithm, base="sgd", seed=seed,
                     policy="fifo", config={}, history=[], final_accuracy=None if diverged else acc,
                     accuracy_std=None if diverged else std, diverged=diverged,
                     outcome="diverged" if diverged else "converged",
                     trace={"mean_staleness": 9.0, "p95_staleness": 12.0, "sim_time": 5.0})


def test_table_stability_gain_and_divergence():
    results = [_result("asgd", 0, 0.7, 0.04), _result("asgd", 1, 0.8, 0.06),
               _result("gsgm", 0, 0.8, 0.03), _result("gsgm", 1, 0.8, 0.05),
               _result("dcasgd-a", 0, 0, 0, diverged=True), _result("dcasgd-a", 1, 0, 0, diverged=True)]
    rows = {r["algorithm"]: r for r in aggregate(results)}
    assert rows["asgd"]["final_accuracy"][0] == pytest.approx(0.75)
    assert rows["gsgm"]["stability_gain_vs_asgd"] == pytest.approx((0.05 - 0.04) / 0.05)
    assert rows["dcasgd-a"]["diverged"] == 2
    md = markdown_table(aggregate(results))
    assert "| DC-ASGD-a | sgd | — | — | — | — | 0/2, 2 diverged |" in md
    assert "+20%" in md


def test_synthetic_dataset_is_deterministic():
    a, b = synthetic(seed=3), synthetic(seed=3)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.x_train.shape == (2000, 32) and a.num_classes == 10


def test_explicit_data_dir_is_the_only_place_looked(tmp_path, monkeypatch):
    """An explicit --data-dir never falls back to $STALESIM_DATA or Debian's folder."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    make_fmnist(elsewhere)
    monkeypatch.setenv("STALESIM_DATA", str(elsewhere))
    monkeypatch.setattr("scenarios.workloads.data.DEBIAN_FMNIST", elsewhere)
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder in (empty, tmp_path / "missing"):
        with pytest.raises(DataError, match=f"--data-dir {folder}"):
            load_fmnist(folder)
    assert load_fmnist().files[0].parent == elsewhere  # without --data-dir, $STALESIM_DATA is searched
