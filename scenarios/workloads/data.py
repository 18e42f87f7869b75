"""Datasets: Fashion-MNIST (IDX), CIFAR-10/100 (python pickles), a synthetic set.

Nothing is downloaded: files are looked up in ``data_dir``, then ``$STALESIM_DATA``,
then (Fashion-MNIST) Debian's ``/usr/share/datasets/fashion-mnist``. A missing or
corrupt file raises ``DataError`` saying where it looked and how to get the files.
CIFAR's python pickles are read by ``_CifarUnpickler``, which builds only numpy arrays
and dtypes, dicts, lists, bytes, str and int: a pickle naming any other code is refused.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")
FMNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
DATASETS = ("fmnist", "cifar10", "cifar100", "synthetic")


class DataError(ValueError):
    """A data file is missing, unreadable or not in the expected format."""


class Dataset(NamedTuple):
    """Images as uint8 ``[n, H, W, C]`` (or float32 ``[n, D]`` for synthetic data), labels int32."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    files: tuple = ()  # the files it was read from (provenance)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def search_dirs(data_dir=None, *extra) -> list[Path]:
    """Where to look: an explicit ``data_dir`` only; else ``$STALESIM_DATA``, then ``extra``
    (the Debian folder). A user's explicit folder is never silently replaced by another."""
    if data_dir:
        return [Path(data_dir)]
    dirs = []
    if os.environ.get("STALESIM_DATA"):
        dirs.append(Path(os.environ["STALESIM_DATA"]))
    dirs.extend(Path(e) for e in extra)
    return dirs


def provenance(files) -> list[dict]:
    """Each file with its size and sha256 (computed once per file and process)."""
    return [_file_record(Path(f)) for f in files]


_RECORDS: dict = {}


def _file_record(path: Path) -> dict:
    key = (str(path.resolve()), path.stat().st_mtime_ns, path.stat().st_size)
    if key not in _RECORDS:

        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _RECORDS[key] = {"path": str(path.resolve()), "bytes": path.stat().st_size, "sha256": digest.hexdigest()}
    return _RECORDS[key]


# ------------------------------------------------------------------ Fashion-MNIST
def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    if len(raw) < 4:
        raise DataError(f"{path}: truncated IDX file")
    zero, dtype_code, ndim = raw[0] * 256 + raw[1], raw[2], raw[3]
    if zero != 0 or dtype_code != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DataError(f"{path}: expected {expected} bytes of data for shape {shape}, found {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find(name: str, dirs: list[Path]) -> Path | None:
    for d in dirs:
        for candidate in (d / name, d / f"{name}.gz", d / "fashion-mnist" / name, d / "fashion-mnist" / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def load_fmnist(data_dir=None) -> Dataset:
    """Fashion-MNIST from its four IDX files (plain or .gz)."""
    dirs = search_dirs(data_dir, DEBIAN_FMNIST)
    found = {key: _find(name, dirs) for key, name in FMNIST_FILES.items()}
    missing = [FMNIST_FILES[k] for k, p in found.items() if p is None]
    if missing:
        looked = ", ".join(str(d) for d in dirs)
        if data_dir:
            raise DataError(f"--data-dir {data_dir}: missing {', '.join(missing)} (plain or .gz); only the folder "
                            f"given is searched")
        raise DataError(f"Fashion-MNIST: missing {', '.join(missing)} (looked in {looked}); on Debian/Ubuntu "
                        f"run 'apt-get install dataset-fashion-mnist', or put the four IDX files in --data-dir "
                        f"or $STALESIM_DATA")
    arrays = {k: read_idx(p) for k, p in found.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"Fashion-MNIST {split}: images {images.shape} and labels {labels.shape} do not match")
        if labels.max() >= 10:
            raise DataError(f"Fashion-MNIST {split}: labels must lie in 0..9")
    return Dataset("fmnist", arrays["train_images"][..., None], arrays["train_labels"].astype(np.int32),
                   arrays["test_images"][..., None], arrays["test_labels"].astype(np.int32), 10,
                   tuple(found.values()))


# ------------------------------------------------------------------ CIFAR-10 / 100
CIFAR = {
    "cifar10": dict(folder="cifar-10-batches-py", archive="cifar-10-python.tar.gz",
                    train=[f"data_batch_{i}" for i in range(1, 6)], test=["test_batch"], label=b"labels", classes=10),
    "cifar100": dict(folder="cifar-100-python", archive="cifar-100-python.tar.gz", train=["train"], test=["test"],
                     label=b"fine_labels", classes=100),
}


def _latin1_encode(text, encoding="utf-8", errors="strict"):
    """``_codecs.encode`` as Python 3 pickles (protocol < 3) use it for bytes: latin-1 only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise _Refused(f"_codecs.encode with encoding {encoding!r} (only 'latin1' is allowed)")
    return codecs.encode(text, "latin1")


def _numpy_reconstruct():
    try:  # numpy >= 2; numpy.core is then a deprecated alias of it
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


# What CIFAR's pickles may name: numpy arrays (written by numpy 1.x as numpy.core, by 2.x as
# numpy._core), their dtypes, and the builtins that pickles of bytes/containers use.
CIFAR_PICKLE_TYPES = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("builtins", "dict"): lambda: dict,
    ("builtins", "list"): lambda: list,
    ("builtins", "bytes"): lambda: bytes,
    ("builtins", "str"): lambda: str,
    ("builtins", "int"): lambda: int,
    ("_codecs", "encode"): lambda: _latin1_encode,  # bytes in a protocol-2 pickle written by Python 3
}
_PY2_MODULES = {"__builtin__": "builtins"}  # Python 2 names (the real files were pickled by Python 2)
ALLOWED_IN_PICKLE = "numpy arrays and dtypes, dict, list, bytes, str, int"


class _Refused(pickle.UnpicklingError):
    """The pickle names something outside ``CIFAR_PICKLE_TYPES``."""


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that resolves only ``CIFAR_PICKLE_TYPES``; anything else (os.system,
    eval, subprocess, any class) is refused before it is even imported."""

    def find_class(self, module, name):
        key = (_PY2_MODULES.get(module, module), name)
        if key not in CIFAR_PICKLE_TYPES:
            raise _Refused(f"{module}.{name}")
        return CIFAR_PICKLE_TYPES[key]()

    def persistent_load(self, pid):
        raise _Refused("a persistent id")


def _unpickle(raw: bytes, where: str) -> dict:
    """One CIFAR batch: a dict read by ``_CifarUnpickler`` (``encoding='bytes'``, as the
    files were written by Python 2)."""
    try:
        obj = _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except _Refused as e:
        raise DataError(f"{where}: refused to load, the pickle names {e} but a CIFAR file holds only "
                        f"{ALLOWED_IN_PICKLE}; not the genuine file (compare its sha256 with docs/data.md)") from None
    except Exception as e:  # a corrupt pickle can raise almost anything
        raise DataError(f"{where}: not a readable CIFAR python pickle ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: not a CIFAR batch (a pickled {type(obj).__name__}, expected a dict)")
    return obj


def _cifar_arrays(batches: list[dict], label_key: bytes, where: str, classes: int):
    xs, ys = [], []
    for b in batches:
        if b"data" not in b or label_key not in b:
            raise DataError(f"{where}: batch lacks 'data' or '{label_key.decode()}'")
        data = np.asarray(b[b"data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3072:
            raise DataError(f"{where}: 'data' must be [n, 3072] uint8, got {data.shape}")
        xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(np.asarray(b[label_key], dtype=np.int32))
    x, y = np.concatenate(xs), np.concatenate(ys)
    if len(x) != len(y) or (len(y) and (y.min() < 0 or y.max() >= classes)):
        raise DataError(f"{where}: labels do not match the images or lie outside 0..{classes - 1}")
    return x, y


def load_cifar(name: str, data_dir=None) -> Dataset:
    """CIFAR-10 or CIFAR-100 from the python version: the extracted folder or the .tar.gz."""
    spec = CIFAR[name]
    dirs = search_dirs(data_dir)
    members = spec["train"] + spec["test"]
    for d in dirs:
        folder = d / spec["folder"]
        if folder.is_dir() and all((folder / m).is_file() for m in members):
            raw = {m: (folder / m).read_bytes() for m in members}
            where = str(folder)
            files = tuple(folder / m for m in members)
            name_of = {m: str(folder / m) for m in members}  # how errors name each batch's file
            break
        archive = d / spec["archive"]
        if archive.is_file():
            where = str(archive)
            files = (archive,)
            name_of = {m: f"{archive}:{spec['folder']}/{m}" for m in members}
            try:
                with tarfile.open(archive, "r:gz") as tar:
                    raw = {}
                    for m in members:
                        f = tar.extractfile(f"{spec['folder']}/{m}")
                        if f is None:
                            raise KeyError(m)
                        raw[m] = f.read()
            except KeyError as e:
                raise DataError(f"{archive}: archive lacks {spec['folder']}/{e.args[0]}") from None
            except (tarfile.TarError, OSError, EOFError) as e:
                raise DataError(f"{archive}: not a readable .tar.gz ({e})") from None
            break
    else:
        looked = ", ".join(str(d) for d in dirs) or "(no --data-dir and no $STALESIM_DATA)"
        raise DataError(f"{name}: found neither {spec['folder']}/ nor {spec['archive']} in {looked}; nothing is "
                        f"downloaded implicitly: run 'stalesim data fetch {name} --dir DIR' (or put the 'python "
                        f"version' archive in DIR by hand) and pass --data-dir DIR")
    x_train, y_train = _cifar_arrays([_unpickle(raw[m], name_of[m]) for m in spec["train"]], spec["label"],
                                     where, spec["classes"])
    x_test, y_test = _cifar_arrays([_unpickle(raw[m], name_of[m]) for m in spec["test"]], spec["label"],
                                   where, spec["classes"])
    return Dataset(name, x_train, y_train, x_test, y_test, spec["classes"], files)


# ------------------------------------------------------------------ synthetic
def synthetic(num_classes: int = 10, dim: int = 32, train_per_class: int = 200, test_per_class: int = 50,
              separation: float = 1.5, seed: int = 0) -> Dataset:
    """Gaussian clusters, one per class, in ``dim`` dimensions: instant, no files."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(num_classes, dim)) * separation / np.sqrt(dim) * 3

    def draw(per_class):
        y = np.repeat(np.arange(num_classes), per_class)
        x = means[y] + rng.normal(size=(len(y), dim))
        order = rng.permutation(len(y))
        return x[order].astype(np.float32), y[order].astype(np.int32)

    x_train, y_train = draw(train_per_class)
    x_test, y_test = draw(test_per_class)
    return Dataset("synthetic", x_train, y_train, x_test, y_test, num_classes)


def load(name: str, data_dir=None) -> Dataset:
    if name == "fmnist":
        return load_fmnist(data_dir)
    if name in CIFAR:
        return load_cifar(name, data_dir)
    if name == "synthetic":
        return synthetic()
    raise DataError(f"dataset: unknown {name!r}; allowed: {', '.join(DATASETS)}")


def available(name: str, data_dir=None) -> bool:
    """Whether ``load(name, data_dir)`` would find its files (without reading them all)."""
    if name == "synthetic":
        return True
    if name == "fmnist":
        dirs = search_dirs(data_dir, DEBIAN_FMNIST)
        return all(_find(n, dirs) for n in FMNIST_FILES.values())
    spec = CIFAR[name]
    return any((d / spec["folder"]).is_dir() or (d / spec["archive"]).is_file() for d in search_dirs(data_dir))
