"""``stalesim data fetch``: download, verify, resume, atomic rename, offline message.

Every test serves small generated archives (the real CIFAR "python version" layout)
from a local HTTP server on 127.0.0.1; nothing leaves the machine.
"""

import gzip
import hashlib
import io
import pickle
import re
import socket
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from scenarios.workloads import data, fetch as fetch_mod
from scenarios.cli.command import UsageError, _Parser
from scenarios.workloads.data import DataError
from scenarios.workloads.fetch import SOURCES, add_subcommand, fetch

PER_BATCH = 20  # images per batch: 6 batches of 61 KB, several read chunks


def _member(tar, name, obj):
    raw = pickle.dumps(obj, protocol=2)
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(raw), 0
    tar.addfile(info, io.BytesIO(raw))


def make_archive(name: str, seed: int = 0) -> bytes:
    """A small, deterministic archive in the layout of the real one."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        if name == "cifar10":
            folder = "cifar-10-batches-py"
            for batch in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
                _member(tar, f"{folder}/{batch}", {
                    b"batch_label": batch.encode(), b"labels": rng.integers(0, 10, PER_BATCH).tolist(),
                    b"data": rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8),
                    b"filenames": [f"img{i}.png".encode() for i in range(PER_BATCH)]})
            _member(tar, f"{folder}/batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)],
                                                    b"num_cases_per_batch": PER_BATCH, b"num_vis": 3072})
        else:
            folder = "cifar-100-python"
            for split, n in (("train", 3 * PER_BATCH), ("test", PER_BATCH)):
                _member(tar, f"{folder}/{split}", {
                    b"batch_label": split.encode(), b"fine_labels": rng.integers(0, 100, n).tolist(),
                    b"coarse_labels": rng.integers(0, 20, n).tolist(),
                    b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                    b"filenames": [f"img{i}.png".encode() for i in range(n)]})
            _member(tar, f"{folder}/meta", {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                                            b"coarse_label_names": [f"c{i}".encode() for i in range(20)]})
    return buf.getvalue()


ARCHIVES = {name: make_archive(name) for name in ("cifar10", "cifar100")}
SHA = {name: hashlib.sha256(raw).hexdigest() for name, raw in ARCHIVES.items()}


class _Handler(BaseHTTPRequestHandler):
    """GET /NAME.tar.gz with Range support; the server's ``state`` says what to do."""

    def do_GET(self):
        st = self.server.state
        st["requests"].append({"path": self.path, "range": self.headers.get("Range")})
        if st["delay"]:
            time.sleep(st["delay"])
        payload = st["files"].get(self.path.lstrip("/"))
        if payload is None:
            self.send_error(404)
            return
        start, status = 0, 200
        wanted = self.headers.get("Range")
        if wanted and st["honor_range"]:
            start = int(re.fullmatch(r"bytes=(\d+)-", wanted).group(1))
            if start >= len(payload):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(payload)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = payload[start:]
        self.send_response(status)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
        self.end_headers()
        cut = st["cuts"].pop(0) if st["cuts"] else None
        self.wfile.write(body if cut is None else body[:cut])  # then the connection closes
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):  # keep the test output clean
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client that gave up (timeout test)
        pass


@pytest.fixture(autouse=True)
def _no_proxy_no_env(monkeypatch):
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                "STALESIM_DATA"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def server():
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.state = {"files": {f"{n}.tar.gz": raw for n, raw in ARCHIVES.items()}, "requests": [], "cuts": [],
                 "honor_range": True, "delay": 0.0}
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


@pytest.fixture
def canonical(server, monkeypatch):
    """Make the local server the canonical source, with the generated archives' size and sha256."""
    for name in ARCHIVES:
        monkeypatch.setitem(SOURCES, name, SOURCES[name]._replace(
            url=f"{server.url}/{name}.tar.gz", size=len(ARCHIVES[name]), sha256=SHA[name]))
    return server


def quiet(messages):
    return lambda m: messages.append(m)


def assert_loads(name, directory):
    ds = data.load(name, directory)
    n_train = 5 * PER_BATCH if name == "cifar10" else 3 * PER_BATCH
    assert ds.x_train.shape == (n_train, 32, 32, 3) and ds.x_test.shape == (PER_BATCH, 32, 32, 3)
    assert ds.num_classes == (10 if name == "cifar10" else 100)


def files_in(directory):
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_sources_table_matches_data_module():
    for name, src in SOURCES.items():
        assert src.archive == data.CIFAR[name]["archive"] and src.url.endswith("/" + src.archive)
        assert len(src.sha256) == 64 and src.url.startswith("https://www.cs.toronto.edu/~kriz/")
    assert SOURCES["cifar10"].size == 170_498_071 and SOURCES["cifar100"].size == 169_001_437


def test_good_download_is_found_by_load(canonical, tmp_path):
    messages, bar = [], io.StringIO()
    target = fetch("cifar10", tmp_path / "d", log=quiet(messages), progress=bar)
    assert target == tmp_path / "d" / "cifar-10-python.tar.gz" and target.read_bytes() == ARCHIVES["cifar10"]
    assert files_in(tmp_path / "d") == ["cifar-10-python.tar.gz"]  # no .part left behind
    assert canonical.state["requests"][0]["range"] is None
    assert any("verified" in m for m in messages) and any("--data-dir" in m for m in messages)
    progress = bar.getvalue()
    assert "100%" in progress and progress.endswith("\n") and progress.count("\n") == 1
    assert_loads("cifar10", tmp_path / "d")


def test_mirror_with_its_own_sha256(server, tmp_path):
    """--url and --sha256 replace the source and the checksum (no size check)."""
    fetch("cifar100", tmp_path, url=f"{server.url}/cifar100.tar.gz", sha256=SHA["cifar100"].upper(),
          log=quiet([]), progress=False)
    assert_loads("cifar100", tmp_path)


def test_mirror_without_sha256_must_be_the_canonical_file(server, tmp_path):
    with pytest.raises(DataError, match=r"offers \d+ bytes, but cifar-10-python.tar.gz has 170498071"):
        fetch("cifar10", tmp_path, url=f"{server.url}/cifar10.tar.gz", log=quiet([]), progress=False)
    assert files_in(tmp_path) == []


def test_wrong_checksum_removes_the_partial_file(server, tmp_path):
    wrong = "ab" * 32
    with pytest.raises(DataError) as e:
        fetch("cifar10", tmp_path, url=f"{server.url}/cifar10.tar.gz", sha256=wrong, log=quiet([]), progress=False)
    message = str(e.value)
    assert wrong in message and SHA["cifar10"] in message and "--sha256" in message and "\n" not in message
    assert files_in(tmp_path) == []


def test_interrupted_download_resumes_in_the_same_call(canonical, tmp_path):
    canonical.state["cuts"] = [100_000]
    messages = []
    target = fetch("cifar10", tmp_path, log=quiet(messages), progress=False)
    ranges = [r["range"] for r in canonical.state["requests"]]
    assert ranges == [None, "bytes=100000-"]
    assert target.read_bytes() == ARCHIVES["cifar10"] and files_in(tmp_path) == ["cifar-10-python.tar.gz"]
    assert any("resuming" in m for m in messages)
    assert_loads("cifar10", tmp_path)


def test_interrupted_download_resumes_on_the_next_run(canonical, tmp_path):
    canonical.state["cuts"] = [150_000]
    with pytest.raises(DataError, match="run the same command again to resume"):
        fetch("cifar10", tmp_path, log=quiet([]), attempts=1, progress=False)
    part = tmp_path / ".cifar-10-python.tar.gz.part"
    assert files_in(tmp_path) == [part.name] and part.stat().st_size == 150_000
    fetch("cifar10", tmp_path, log=quiet([]), progress=False)
    assert canonical.state["requests"][-1]["range"] == "bytes=150000-"
    assert files_in(tmp_path) == ["cifar-10-python.tar.gz"]
    assert_loads("cifar10", tmp_path)


def test_server_ignoring_range_restarts_from_zero(canonical, tmp_path):
    (tmp_path / ".cifar-10-python.tar.gz.part").write_bytes(b"garbage" * 1000)  # not a prefix of the file
    canonical.state["honor_range"] = False
    messages = []
    fetch("cifar10", tmp_path, log=quiet(messages), progress=False)
    assert canonical.state["requests"][0]["range"] == "bytes=7000-"
    assert any("ignored the resume request" in m for m in messages)
    assert (tmp_path / "cifar-10-python.tar.gz").read_bytes() == ARCHIVES["cifar10"]


def test_complete_partial_file_with_unknown_size(server, tmp_path):
    """A .part that is already whole: the server answers 416, the checks pass, it is renamed."""
    (tmp_path / ".cifar-10-python.tar.gz.part").write_bytes(ARCHIVES["cifar10"])
    fetch("cifar10", tmp_path, url=f"{server.url}/cifar10.tar.gz", sha256=SHA["cifar10"], log=quiet([]),
          progress=False)
    assert files_in(tmp_path) == ["cifar-10-python.tar.gz"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_says_where_to_put_the_file(monkeypatch, tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/cifar-10-python.tar.gz"
    monkeypatch.setitem(SOURCES, "cifar10", SOURCES["cifar10"]._replace(url=url))
    folder = tmp_path / "data"
    with pytest.raises(DataError) as e:
        fetch("cifar10", folder, log=quiet([]), progress=False)
    message = str(e.value)
    assert "\n" not in message and "cannot reach" in message and "nothing was downloaded" in message
    assert str(folder / "cifar-10-python.tar.gz") in message and f"folder {folder}," in message
    src = SOURCES["cifar10"]  # what a hand-downloaded file must be: name, size and sha256
    assert "file cifar-10-python.tar.gz" in message and f"sha256 {src.sha256}" in message
    assert f"{src.size} bytes" in message and "sha256sum cifar-10-python.tar.gz" in message
    assert files_in(folder) == []


def test_offline_message_with_own_sha256_names_that_checksum(tmp_path):
    """With --url and --sha256, the hand-download advice names that mirror and that checksum."""
    url = f"http://127.0.0.1:{_closed_port()}/mirror/cifar-100-python.tar.gz"
    own = "cd" * 32
    with pytest.raises(DataError) as e:
        fetch("cifar100", tmp_path, url=url, sha256=own.upper(), log=quiet([]), progress=False)
    message = str(e.value)
    assert "\n" not in message and f"download {url}," in message and f"sha256 {own}" in message
    assert SOURCES["cifar100"].sha256 not in message and " bytes, " not in message  # size unknown
    assert str(tmp_path / "cifar-100-python.tar.gz") in message and files_in(tmp_path) == []


def test_timeout_is_the_unreachable_message(server, tmp_path):
    server.state["delay"] = 1.0
    start = time.monotonic()
    with pytest.raises(DataError, match=r"cannot reach .*timed out.*nothing was downloaded"):
        fetch("cifar10", tmp_path, url=f"{server.url}/cifar10.tar.gz", sha256=SHA["cifar10"], timeout=0.2,
              log=quiet([]), progress=False)
    assert time.monotonic() - start < 1.0 and files_in(tmp_path) == []


def test_http_error_is_one_line(server, tmp_path):
    with pytest.raises(DataError, match=rf"HTTP 404 .*nothing was downloaded.*sha256 {SHA['cifar10']}.*save it as"):
        fetch("cifar10", tmp_path, url=f"{server.url}/missing.tar.gz", sha256=SHA["cifar10"], log=quiet([]),
              progress=False)


def test_already_present_and_verified_does_nothing(canonical, tmp_path):
    fetch("cifar10", tmp_path, log=quiet([]), progress=False)
    before = len(canonical.state["requests"])
    messages = []
    assert fetch("cifar10", tmp_path, log=quiet(messages), progress=False) == tmp_path / "cifar-10-python.tar.gz"
    assert len(canonical.state["requests"]) == before and "already present" in messages[0]


def test_present_but_different_file_is_not_overwritten(canonical, tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"not it")
    with pytest.raises(DataError, match="exists but has 6 bytes"):
        fetch("cifar10", tmp_path, log=quiet([]), progress=False)
    assert (tmp_path / "cifar-10-python.tar.gz").read_bytes() == b"not it" and canonical.state["requests"] == []


def test_extracted_folder_present_does_nothing(canonical, tmp_path):
    with tarfile.open(fileobj=io.BytesIO(ARCHIVES["cifar10"]), mode="r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    messages = []
    assert fetch("cifar10", tmp_path, log=quiet(messages), progress=False) == tmp_path / "cifar-10-batches-py"
    assert canonical.state["requests"] == [] and "already present" in messages[0]


def test_default_dir_is_stalesim_data(canonical, tmp_path, monkeypatch):
    with pytest.raises(DataError, match=r"no --dir and no \$STALESIM_DATA"):
        fetch("cifar100", log=quiet([]), progress=False)
    monkeypatch.setenv("STALESIM_DATA", str(tmp_path))
    assert fetch("cifar100", log=quiet([]), progress=False) == tmp_path / "cifar-100-python.tar.gz"
    assert_loads("cifar100", None)  # found through $STALESIM_DATA alone


def test_bad_input(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'fmnist'"):
        fetch("fmnist", tmp_path)
    with pytest.raises(DataError, match="--url: expected an http"):
        fetch("cifar10", tmp_path, url="ftp://example.org/x.tar.gz")
    with pytest.raises(DataError, match="--sha256: expected 64 hexadecimal digits"):
        fetch("cifar10", tmp_path, sha256="abc")


def _parser():
    parser = _Parser(prog="stalesim")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    add_subcommand(sub)
    return parser


def test_command_line_wiring(server, tmp_path, capsys):
    parser = _parser()
    args = parser.parse_args(["data", "fetch", "cifar10", "--dir", str(tmp_path), "--url",
                              f"{server.url}/cifar10.tar.gz", "--sha256", SHA["cifar10"]])
    assert args.func is fetch_mod.cmd_fetch and args.func(args) == 0
    assert "verified" in capsys.readouterr().out
    assert_loads("cifar10", tmp_path)
    for argv, expected in ((["data"], "required"), (["data", "fetch", "mnist"], "invalid choice"),
                           (["data", "fetch", "cifar10", "--sha256", "xyz"], "--sha256")):
        with pytest.raises(UsageError, match=expected) as e:
            parser.parse_args(argv)
        assert "\n" not in str(e.value)
