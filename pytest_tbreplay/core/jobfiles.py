"""Reading files other programs wrote (Harbor job folders, pi sessions) without trusting them.

A job folder can come from elsewhere (a teammate's tarball): any file in it may be a FIFO (open()
blocks forever), a symlink to /dev/zero (a read never ends) or to a file outside the folder (its
text would be copied into a shareable cassette), or simply huge. Every read here is of a regular
file inside `root`, bounded in size; anything else is a `JobFileError` naming the file and why.
Text a program wrote may also hold lone UTF-16 surrogates (JSON allows "\\ud83d"; Node writes one
when it slices a string mid-pair): `scrub` replaces them so the text can be saved as UTF-8."""
from __future__ import annotations

import io
import os
import stat
from pathlib import Path

MiB = 1 << 20
MAX_JSON = 64 * MiB  # result.json, the manifest, the request template
MAX_LOG = 1024 * MiB  # a session or print-mode log of a long trial


class JobFileError(ValueError):
    """A file of a job folder that is not read: names the file and why."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        return False


def open_checked(path: Path | str, root: Path | str | None, limit: int) -> io.BufferedReader:
    """`path` opened for reading, once it is known to be a regular file inside `root` of at most
    `limit` bytes. Never blocks: a FIFO swapped in after the check is opened non-blocking."""
    path = Path(path)
    if root is not None and path.is_symlink() and not _inside(path, Path(root)):
        raise JobFileError(f"{path}: a symlink to {os.path.realpath(path)}, outside the job folder: not read")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise JobFileError(f"{path}: cannot be read ({e.strerror})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise JobFileError(f"{path}: {_kind(st.st_mode)}, not a regular file: not read")
    if st.st_size > limit:
        os.close(fd)
        raise JobFileError(f"{path}: {st.st_size:,} bytes, more than the {limit:,} read from one file")
    return os.fdopen(fd, "rb")


def read_bytes(path: Path | str, root: Path | str | None, limit: int) -> bytes:
    with open_checked(path, root, limit) as f:
        return f.read(limit + 1)[:limit]  # a file growing as it is read still stops at the limit


def read_text(path: Path | str, root: Path | str | None, limit: int) -> str:
    """The file as UTF-8 text (a JobFileError naming the byte offset if it is not)."""
    data = read_bytes(path, root, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise JobFileError(f"{path}: not UTF-8 text (byte {e.start}: {data[e.start:e.start + 1]!r})") from None


def tail_text(path: Path | str, root: Path | str | None, chars: int) -> str | None:
    """The last `chars` characters (about) of a log, however big it is; None if it is not there."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return None
    with open_checked(path, root, 1 << 62) as f:
        size = os.fstat(f.fileno()).st_size
        f.seek(max(size - 4 * chars, 0))
        return scrub(f.read(4 * chars).decode("utf-8", errors="replace"))[-chars:]


def scrub(obj):
    """`obj` with lone surrogates in its strings (and keys) replaced by U+FFFD; other text unchanged."""
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
            return obj
        except UnicodeEncodeError:
            # Pairs written as two escapes join up; a lone half (or a surrogate-escaped byte) becomes U+FFFD.
            return obj.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(obj, dict):
        return {scrub(k): scrub(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [scrub(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(scrub(v) for v in obj)
    return obj


def display(path: Path | str) -> str:
    """A path as text that can be printed and saved: a name that is not UTF-8 keeps U+FFFD for its bad bytes."""
    return os.fsencode(path).decode("utf-8", errors="replace")
