"""CIFAR's pickles are read by a restricted unpickler: data loads, code does not run.

The genuine files are dicts of numpy arrays, lists, bytes and ints pickled by Python 2
(protocol 2); the loader admits exactly those types. A crafted pickle whose reduce calls
os.system, eval, exec or subprocess is refused with one line naming the file, and the
marker file its code would create never appears.
"""

import builtins
import io
import os
import pickle
import pickletools
import shlex
import struct
import subprocess
import sys
import tarfile
import warnings

import numpy as np
import pytest

from scenarios.cli import command as cli
from scenarios.workloads.data import DataError, load_cifar

PER_BATCH = 8
CIFAR10 = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("STALESIM_DATA", raising=False)


def batch(name: str, seed: int) -> dict:
    """A CIFAR-10 batch as in the real files: keys are bytes, data [n, 3072] uint8, labels a list."""
    rng = np.random.default_rng(seed)
    return {b"batch_label": f"{name} of 5".encode(), b"labels": rng.integers(0, 10, PER_BATCH).tolist(),
            b"data": rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8),
            b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(PER_BATCH)]}


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 wrote its str (BINSTRING), not as Python 3's _codecs.encode."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        n = len(obj)
        self.write((pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n))
                   + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def py2_pickle(obj) -> bytes:
    """``obj`` pickled as Python 2 with numpy 1.x wrote CIFAR: protocol 2, ``numpy.core``, BINSTRING."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    raw = buf.getvalue().replace(b"cnumpy._core.multiarray\n_reconstruct\n", b"cnumpy.core.multiarray\n_reconstruct\n")
    names = {arg for op, arg, _ in pickletools.genops(raw) if op.name == "GLOBAL"}
    assert names == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}, names
    return raw


def py3_pickle(obj) -> bytes:
    return pickle.dumps(obj, protocol=2)  # bytes become _codecs.encode(..., 'latin1') calls


def write_cifar10(directory, blobs: dict, as_archive: bool):
    if as_archive:
        with tarfile.open(directory / "cifar-10-python.tar.gz", "w:gz") as tar:
            for m, blob in blobs.items():
                info = tarfile.TarInfo(f"cifar-10-batches-py/{m}")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
    else:
        (directory / "cifar-10-batches-py").mkdir()
        for m, blob in blobs.items():
            (directory / "cifar-10-batches-py" / m).write_bytes(blob)


# ------------------------------------------------------------------ genuine-looking files still load
@pytest.mark.parametrize("as_archive", [False, True], ids=["folder", "archive"])
@pytest.mark.parametrize("dumps", [py2_pickle, py3_pickle], ids=["python2-numpy1", "python3-numpy2"])
def test_real_shaped_batches_load(tmp_path, dumps, as_archive):
    batches = {m: batch(m, i) for i, m in enumerate(CIFAR10)}
    write_cifar10(tmp_path, {m: dumps(b) for m, b in batches.items()}, as_archive)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy.core's name is resolved without numpy 2's deprecation warning
        ds = load_cifar("cifar10", tmp_path)
    assert ds.x_train.shape == (5 * PER_BATCH, 32, 32, 3) and ds.x_test.shape == (PER_BATCH, 32, 32, 3)
    train = [batches[m] for m in CIFAR10[:5]]
    expected = np.concatenate([b[b"data"] for b in train]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(ds.x_train, expected)
    np.testing.assert_array_equal(ds.y_train, np.concatenate([b[b"labels"] for b in train]))
    np.testing.assert_array_equal(ds.y_test, batches["test_batch"][b"labels"])


def test_every_stdlib_protocol_up_to_4_loads(tmp_path):
    for protocol in range(5):
        folder = tmp_path / str(protocol)
        folder.mkdir()
        write_cifar10(folder, {m: pickle.dumps(batch(m, 0), protocol=protocol) for m in CIFAR10}, False)
        assert load_cifar("cifar10", folder).x_train.shape == (5 * PER_BATCH, 32, 32, 3)


# ------------------------------------------------------------------ crafted pickles are refused
def _touch_code(marker) -> str:
    return f"open({str(marker)!r}, 'w').close()"


class _Reduce:
    """An object whose unpickling calls ``func(*args)``."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker):
    code = _touch_code(marker)
    shell = f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"
    argv = [sys.executable, "-c", code]
    return {
        "os.system": pickle.dumps(_Reduce(os.system, (shell,)), protocol=2),
        "builtins.eval": pickle.dumps(_Reduce(builtins.eval, (code,)), protocol=2),
        "builtins.exec": pickle.dumps(_Reduce(builtins.exec, (code,)), protocol=0),
        "subprocess.call": pickle.dumps(_Reduce(subprocess.call, (argv,)), protocol=4),
        "subprocess.Popen": pickle.dumps(_Reduce(subprocess.Popen, (argv,)), protocol=2),
        # protocol 0's INST opcode, which calls the class it names with the marked arguments
        "INST os.system": b"(S" + repr(shell).encode() + b"\nios\nsystem\n.",
        # hidden in an otherwise genuine batch, after the image data
        "inside a batch": pickle.dumps({**batch("data_batch_3", 3), b"filenames": [_Reduce(builtins.exec, (code,))]},
                                       protocol=2),
    }


PAYLOADS = list(_payloads("x"))


def _run_and_wait(obj):
    if isinstance(obj, subprocess.Popen):
        obj.wait(timeout=30)
    return obj


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payload_is_live_with_plain_pickle(tmp_path, payload):
    """The control: plain pickle.loads does run each crafted file's code."""
    marker = tmp_path / "ran"
    result = pickle.loads(_payloads(marker)[payload], encoding="bytes")
    if isinstance(result, dict):
        result = result[b"filenames"][0]
    _run_and_wait(result)
    assert marker.exists()


@pytest.mark.parametrize("as_archive", [False, True], ids=["folder", "archive"])
@pytest.mark.parametrize("payload", PAYLOADS)
def test_crafted_pickle_is_refused_and_does_not_run(tmp_path, payload, as_archive):
    marker = tmp_path / "ran"
    blobs = {m: py2_pickle(batch(m, i)) for i, m in enumerate(CIFAR10)}
    blobs["data_batch_3"] = _payloads(marker)[payload]
    write_cifar10(tmp_path, blobs, as_archive)
    with pytest.raises(DataError) as e:
        load_cifar("cifar10", tmp_path)
    message = str(e.value)
    named = (f"{tmp_path / 'cifar-10-python.tar.gz'}:cifar-10-batches-py/data_batch_3" if as_archive
             else str(tmp_path / "cifar-10-batches-py" / "data_batch_3"))
    assert message.startswith(f"{named}: refused to load, the pickle names ") and "\n" not in message
    assert "numpy arrays and dtypes, dict, list, bytes, str, int" in message
    assert not marker.exists()


@pytest.mark.parametrize("payload, named", [
    (_Reduce(os.system, ("true",)), "posix.system"),
    (_Reduce(getattr, (_Reduce(__import__, ("os",)), "system")), "__builtin__.getattr"),  # Python 2's name
    (_Reduce(np.load, ("x.npy",)), "numpy.load"),
    (_Reduce(pickle.loads, (b"x",)), "pickle.loads"),
])
def test_refusal_names_what_the_pickle_asked_for(tmp_path, payload, named):
    blobs = {m: py3_pickle(batch(m, 0)) for m in CIFAR10}
    blobs["test_batch"] = pickle.dumps(payload, protocol=2)
    write_cifar10(tmp_path, blobs, False)
    with pytest.raises(DataError, match=rf"test_batch: refused to load, the pickle names {named} but"):
        load_cifar("cifar10", tmp_path)


def test_codecs_encode_only_for_latin1_bytes(tmp_path):
    """Python 3's protocol-2 bytes use _codecs.encode(text, 'latin1'); no other codec is admitted."""
    import codecs

    blobs = {m: py3_pickle(batch(m, 0)) for m in CIFAR10}
    blobs["test_batch"] = pickle.dumps(_Reduce(codecs.encode, ("eJwDAAAAAAE=", "base64")), protocol=2)
    write_cifar10(tmp_path, blobs, False)
    with pytest.raises(DataError, match=r"names _codecs.encode with encoding 'base64' \(only 'latin1'"):
        load_cifar("cifar10", tmp_path)


def test_not_a_dict_is_one_line(tmp_path):
    blobs = {m: py3_pickle(batch(m, 0)) for m in CIFAR10}
    blobs["test_batch"] = pickle.dumps([1, 2], protocol=2)
    write_cifar10(tmp_path, blobs, False)
    with pytest.raises(DataError, match=r"test_batch: not a CIFAR batch \(a pickled list, expected a dict\)"):
        load_cifar("cifar10", tmp_path)


def test_command_line_prints_one_line_and_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "ran"
    blobs = {m: py2_pickle(batch(m, i)) for i, m in enumerate(CIFAR10)}
    blobs["data_batch_3"] = _payloads(marker)["os.system"]
    write_cifar10(tmp_path, blobs, False)
    code = cli.main(["reproduce", "cifar10", "--data-dir", str(tmp_path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE and err.count("\n") == 1
    assert err.startswith(f"stalesim: error: {tmp_path / 'cifar-10-batches-py' / 'data_batch_3'}: refused to load")
    assert "posix.system" in err and not marker.exists()
