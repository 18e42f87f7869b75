"""``stalesim data fetch cifar10|cifar100``: the one place stalesim downloads anything.

The download is explicit and opt-in: nothing else in stalesim touches the network.
The archive is written to ``DIR/.NAME.part``, resumed with an HTTP Range request if
that file is already there, checked (size and sha256) and only then renamed to
``DIR/NAME``, where ``scenarios.workloads.data.load(name, DIR)`` finds it.

``DIR`` is ``--dir``, else ``$STALESIM_DATA`` (the folders ``data.load`` searches for
CIFAR); with neither the command asks for ``--dir`` instead of guessing a folder that
``load`` would not search.

``--url`` replaces the source (a mirror). Without ``--sha256`` the file must still be
the canonical archive (same size and sha256), so a mirror cannot change the data
silently; with ``--sha256`` only that checksum is checked (a different build of the
archive, whose size stalesim does not know).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, NamedTuple, TextIO

from scenarios.workloads.data import CIFAR, DataError

CIFAR_PAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"


class Source(NamedTuple):
    url: str
    archive: str  # file name; the one data.load looks for
    size: int  # bytes
    sha256: str
    md5: str  # as published on the CIFAR page; for reference only


# sha256 values as pinned by torchvision (prototype datasets) and Keras; md5 from the CIFAR page.
SOURCES = {
    "cifar10": Source("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
                      170_498_071, "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
                      "c58f30108f718f92721af3b95e74349a"),
    "cifar100": Source("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "cifar-100-python.tar.gz",
                       169_001_437, "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
                       "eb9058c3a382ffc7106e4002c42a8d85"),
}
assert all(SOURCES[n].archive == CIFAR[n]["archive"] for n in SOURCES)

TIMEOUT_S = 30.0  # per connection attempt and per socket read
ATTEMPTS = 3  # per fetch: an interrupted transfer is resumed this many times in all
CHUNK = 1 << 16
USER_AGENT = "stalesim-data-fetch/1"
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def check_sha256(text: str) -> str:
    """A sha256 given by the user: 64 hex digits, returned lower-case."""
    text = text.strip()
    if not _HEX64.fullmatch(text):
        raise DataError(f"--sha256: expected 64 hexadecimal digits, got {text!r}")
    return text.lower()


def default_dir() -> Path:
    if os.environ.get("STALESIM_DATA"):
        return Path(os.environ["STALESIM_DATA"])
    raise DataError("data fetch: no --dir and no $STALESIM_DATA; give --dir DIR (then run with --data-dir DIR) "
                    "or set $STALESIM_DATA, the folders where stalesim looks for CIFAR")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class _Progress:
    """One text line on a terminal, redrawn at most 10 times a second."""

    def __init__(self, stream: TextIO | None, label: str, total: int | None, start: int):
        self.stream, self.label, self.total, self.start = stream, label, total, start
        self.t0 = self.last = time.monotonic()
        self.drawn = False
        self.width = 0

    def update(self, done: int, final: bool = False) -> None:
        if self.stream is None:
            return
        now = time.monotonic()
        if not final and now - self.last < 0.1:
            return
        self.last = now
        rate = (done - self.start) / max(now - self.t0, 1e-9)
        size = f"{_mb(done)} / {_mb(self.total)} {100 * done // self.total:3d}%" if self.total else _mb(done)
        line = f"{self.label}  {size}  {rate / 1e6:.1f} MB/s"
        self.width = max(self.width, len(line))  # pad over a longer previous line
        self.stream.write("\r" + line.ljust(self.width))
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.stream is not None and self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


def _auto_progress() -> TextIO | None:
    try:
        return sys.stderr if sys.stderr.isatty() else None
    except (AttributeError, ValueError):
        return None


def _kept(part: Path, offset: int) -> str:
    return f" ({_mb(offset)} kept in {part} for a later resume)" if offset else ""


def _by_hand(src: Source, target: Path, url: str, sha256: str, size: int | None) -> str:
    """What to do when the server cannot be reached: where to get the file, what it must
    hash to, and the exact folder and file name to save it as."""
    where = url if url != src.url else f"{src.url} (the 'python version' on {CIFAR_PAGE})"
    bytes_ = f"{size} bytes, " if size is not None else ""
    return (f"To install it by hand, download {where}, check it ({bytes_}sha256 {sha256}, e.g. with "
            f"'sha256sum {src.archive}') and save it as {target} (folder {target.parent}, file {target.name}); "
            f"or give --url for a mirror")


def fetch(name: str, directory=None, url: str | None = None, sha256: str | None = None,
          log: Callable[[str], object] = print, *, timeout: float = TIMEOUT_S, attempts: int = ATTEMPTS,
          progress: TextIO | None | bool = None) -> Path:
    """Download the CIFAR ``name`` archive into ``directory`` and return its path.

    ``directory`` defaults to ``$STALESIM_DATA``. ``url`` replaces the canonical source;
    ``sha256`` replaces the expected checksum (and drops the size check). A file already
    in place that verifies is left alone. ``progress``: a stream for the progress line,
    ``None`` for stderr when it is a terminal, ``False`` for none. Raises ``DataError``
    (one line) on bad input, unreachable server, interrupted transfer or bad checksum;
    an interrupted transfer keeps ``.NAME.part`` so the next call resumes it.
    """
    if name not in SOURCES:
        raise DataError(f"data fetch: unknown dataset {name!r}; allowed: {', '.join(SOURCES)}")
    src = SOURCES[name]
    folder = Path(directory).expanduser() if directory else default_dir()
    target = folder / src.archive
    part = folder / f".{src.archive}.part"
    url = url or src.url
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise DataError(f"--url: expected an http:// or https:// address, got {url!r}")
    expected_sha = check_sha256(sha256) if sha256 else src.sha256
    expected_size = None if sha256 else src.size  # a different build has a size we do not know
    if attempts < 1:
        raise DataError(f"data fetch: attempts must be >= 1, got {attempts}")
    stream = _auto_progress() if progress is None else (progress or None)

    extracted = folder / CIFAR[name]["folder"]
    if target.is_file():
        problem = _verify(target, expected_size, expected_sha)
        if problem is None:
            log(f"{target}: already present, size and sha256 verified; nothing to do")
            return target
        raise DataError(f"{target} exists but {problem}; delete it to download it again (or, for a trusted "
                        f"different build, pass its published checksum with --sha256)")
    if extracted.is_dir() and all((extracted / m).is_file() for m in CIFAR[name]["train"] + CIFAR[name]["test"]):
        log(f"{extracted}: the extracted folder is already present (stalesim reads it first); nothing to do")
        return extracted

    for attempt in range(1, attempts + 1):
        done = _transfer(url, part, target, src, expected_size, expected_sha, timeout, stream, log, attempt,
                         attempts)
        if done:
            break
    problem = _verify(part, expected_size, expected_sha)
    if problem is not None:
        part.unlink(missing_ok=True)
        raise DataError(f"{url}: the downloaded file {problem}; removed it, nothing was saved. If the URL is a "
                        f"mirror of a different build, pass its published checksum with --sha256")
    os.replace(part, target)
    log(f"saved {target} ({_mb(target.stat().st_size)}, sha256 {expected_sha} verified)")
    if not (os.environ.get("STALESIM_DATA") and Path(os.environ["STALESIM_DATA"]).expanduser() == folder):
        log(f"use it with --data-dir {folder} (or STALESIM_DATA={folder})")
    return target


def _verify(path: Path, size: int | None, sha256: str) -> str | None:
    """None if ``path`` has the expected size and sha256, else what is wrong."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        return f"has {actual} bytes, expected {size}"
    got = file_sha256(path)
    if got != sha256:
        return f"has sha256 {got}, expected {sha256}"
    return None


def _total_from_headers(response, offset: int) -> int | None:
    """The whole file's size as the server states it, if it does."""
    if response.status == 206:
        m = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", response.headers.get("Content-Range", ""))
        if m and m.group(3) != "*":
            return int(m.group(3))
    length = response.headers.get("Content-Length")
    if length and length.isdigit():
        return int(length) + (offset if response.status == 206 else 0)
    return None


def _transfer(url, part: Path, target: Path, src: Source, expected_size, expected_sha: str, timeout, stream,
              log, attempt: int, attempts: int) -> bool:
    """One request. True when the body was received in full (or nothing is left to fetch),
    False when an interrupted transfer should be resumed; raises DataError otherwise."""
    offset = part.stat().st_size if part.is_file() else 0
    if expected_size is not None and offset > expected_size:
        part.unlink()
        offset = 0
    if expected_size is not None and offset == expected_size:
        return True  # complete already: only the checks are left
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        log(f"resuming {part.name} at {_mb(offset)}")
    by_hand = _by_hand(src, target, url if expected_size is None else src.url, expected_sha, expected_size)
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and offset:  # nothing past our end: the file is complete (the checks will tell)
            return True
        raise DataError(f"{url}: HTTP {e.code} {e.reason}; nothing was downloaded{_kept(part, offset)}. "
                        f"{by_hand}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DataError(f"cannot reach {url} ({reason}); nothing was downloaded{_kept(part, offset)}. "
                        f"{by_hand}") from None

    with response:
        if offset and response.status == 206:
            m = re.match(r"\s*bytes\s+(\d+)-", response.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:
                part.unlink()
                if attempt == attempts:
                    raise DataError(f"{url}: the server answered the resume request with a different range; "
                                    f"the partial file was removed, run the same command again to start afresh")
                log("the server answered the resume request with a different range; starting again from zero")
                return False
        elif offset:
            log("the server ignored the resume request (HTTP 200, not 206); starting again from zero")
            offset = 0
        total = _total_from_headers(response, offset)
        if expected_size is not None and total is not None and total != expected_size:
            part.unlink(missing_ok=True)
            raise DataError(f"{url}: the server offers {total} bytes, but {src.archive} has {expected_size}; "
                            f"nothing was saved. If the URL is a mirror of a different build, pass its "
                            f"published checksum with --sha256")
        part.parent.mkdir(parents=True, exist_ok=True)
        bar = _Progress(stream, src.archive, total or expected_size, offset)
        done = offset
        t0 = time.monotonic()
        try:
            with open(part, "ab" if offset else "wb") as f:
                try:
                    while True:
                        block = response.read(CHUNK)
                        if not block:
                            break
                        f.write(block)
                        done += len(block)
                        bar.update(done)
                except (http.client.HTTPException, OSError) as e:
                    f.flush()
                    bar.close()
                    reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                    if attempt < attempts:
                        log(f"download interrupted at {_mb(done)} ({reason}); resuming "
                            f"(attempt {attempt + 1} of {attempts})")
                        return False
                    raise DataError(f"{url}: download interrupted at {_mb(done)} ({reason}); {part} is kept: "
                                    f"run the same command again to resume") from None
                f.flush()
                os.fsync(f.fileno())
            bar.update(done, final=True)
        finally:
            bar.close()
    if total is not None and done < total:  # a clean close before the end (no length check by the library)
        if attempt < attempts:
            log(f"download ended early at {_mb(done)} of {_mb(total)}; resuming (attempt {attempt + 1} of "
                f"{attempts})")
            return False
        raise DataError(f"{url}: download ended early at {_mb(done)} of {_mb(total)}; {part} is kept: run the "
                        f"same command again to resume")
    elapsed = time.monotonic() - t0
    log(f"downloaded {_mb(done - offset)} in {elapsed:.1f} s")
    return True


# ------------------------------------------------------------------ command line
def add_subcommand(sub) -> None:
    """Add ``data fetch`` to an argparse subparsers object (the ``stalesim`` command's)."""
    p = sub.add_parser("data", help="download dataset archives (explicit, opt-in)",
                       description="Dataset files. stalesim downloads nothing unless asked with 'data fetch'.")
    actions = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    f = actions.add_parser(
        "fetch", help="download a CIFAR 'python version' archive",
        description="Download the CIFAR-10 or CIFAR-100 'python version' archive, resume an interrupted "
                    "download, verify its size and sha256, and place it where stalesim finds it "
                    "(--data-dir DIR or $STALESIM_DATA). A verified archive already in place is left alone.")
    f.add_argument("dataset", choices=list(SOURCES), help="which archive")
    f.add_argument("--dir", default=None,
                   help="folder to put the archive in (default: $STALESIM_DATA); pass the same folder as "
                        "--data-dir when running")
    f.add_argument("--url", default=None,
                   help="download from this address instead (a mirror); without --sha256 the file must "
                        "still be the canonical archive (same size and sha256)")
    f.add_argument("--sha256", default=None, type=_sha256_arg,
                   help="expected sha256 of the file instead of the canonical one (then the size is not "
                        "checked)")
    f.set_defaults(func=cmd_fetch)


def _sha256_arg(text: str) -> str:
    try:
        return check_sha256(text).lower()
    except DataError:
        raise argparse.ArgumentTypeError(f"expected 64 hexadecimal digits, got {text!r}") from None


def cmd_fetch(args) -> int:
    fetch(args.dataset, args.dir, url=args.url, sha256=args.sha256)
    return 0
