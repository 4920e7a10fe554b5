"""Where the files that go beside an artifact are written, and how files are read without trusting them."""

from __future__ import annotations

import codecs
import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO


# Where everything icldsl can rebuild is kept: LM answers, datasets, models, the parser's tables.
CACHE_DIR_ENV = "ICLDSL_CACHE_DIR"


def cache_root() -> Path:
    """`$ICLDSL_CACHE_DIR`, else `$XDG_CACHE_HOME/icldsl`, else `~/.cache/icldsl` (read on each call,
    so a test or a process that sets the variable later is followed)."""
    if base := os.environ.get(CACHE_DIR_ENV):
        return Path(base).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache") / "icldsl"


def stem(artifact_path: str | Path) -> str:
    """`out/adder.artifact.json` -> `adder`: the prefix of the files written beside an artifact."""
    name = Path(artifact_path).name
    for suffix in (".artifact.json", ".json"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def beside(artifact_path: str | Path, suffix: str) -> Path:
    """`out/adder.artifact.json`, `checkpoint.json` -> `out/adder.checkpoint.json`."""
    return Path(artifact_path).parent / f"{stem(artifact_path)}.{suffix}"


def write_atomic(path: str | Path, content: str | bytes) -> Path:
    """Write `content` (text as UTF-8) to a temporary file in the same folder, readable by the
    user alone as mkstemp makes it, then rename it over `path`: a reader never sees half a file."""
    import tempfile  # here: `icldsl --help` reads this module's CACHE_DIR_ENV, and tempfile costs a tenth of it

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content.encode("utf-8") if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def folder_problem(status: os.stat_result) -> str | None:
    """Why files in the folder of this status (from lstat or fstat) might have been placed by
    another user, as the end of a sentence naming the folder; None when only the user (or
    root, who can do anything anyway) could have: the one rule of every cache's folder."""
    if not stat.S_ISDIR(status.st_mode):
        return "is not a folder (a symbolic link or a file)"
    if status.st_uid not in (os.getuid(), 0):
        return f"belongs to another user (uid {status.st_uid})"
    if status.st_mode & 0o022:
        return f"is writable by other users (mode {stat.S_IMODE(status.st_mode):o})"
    return None


def private_folder(path: str | Path) -> bool:
    """Whether `path` is a folder only the user could have put files in (`folder_problem`),
    not a symbolic link."""
    try:
        return folder_problem(os.stat(path, follow_symlinks=False)) is None
    except OSError:
        return False


def read_private(folder: str | Path, name: str, limit: int) -> bytes | None:
    """The bytes of the file `name` in `folder` when only the user could have placed it there
    (the folder passes `folder_problem`; the file is a regular file of the user's, writable by
    no one else; neither is a symbolic link); None when it is missing, unreadable, larger than `limit`, or could
    have been placed by someone else. For caches: what another user (or a repository) could
    have put in a shared folder is never read."""
    try:
        folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        if folder_problem(os.fstat(folder_fd)) is not None:
            return None
        # O_NONBLOCK: opening a FIFO planted under the name returns at once (and is refused below).
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder_fd)
        with os.fdopen(fd, "rb") as f:
            status = os.fstat(f.fileno())
            if not stat.S_ISREG(status.st_mode) or status.st_uid != os.getuid() or status.st_mode & 0o022:
                return None
            data = f.read(limit + 1)
        return data if len(data) <= limit else None
    except OSError:
        return None
    finally:
        os.close(folder_fd)


def read_limited(path: str | Path, limit: int) -> bytes:
    """The bytes of `path`; OSError (EFBIG) when it holds more than `limit`, found without
    reading further, so a device such as /dev/zero or a huge file costs `limit` at most."""
    with open(path, "rb") as f:
        return read_stream(f, limit)


def read_stream(stream: BinaryIO, limit: int) -> bytes:
    """The bytes of a binary stream (such as standard input) to its end, as `read_limited`."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit / 2**20:g} MB, the most icldsl reads from such a file")
    return data


class BadEncoding(ValueError):
    """Bytes that are not UTF-8, with the 1-based line and column of the first bad byte."""

    def __init__(self, byte: int, line: int, column: int) -> None:
        super().__init__(f"byte 0x{byte:02x} at column {column} is not UTF-8; save the file as UTF-8")
        self.line, self.column = line, column


def decode_utf8(data: bytes) -> str:
    """UTF-8 text, one leading byte order mark dropped (as every reader of data does)."""
    data = data.removeprefix(codecs.BOM_UTF8)  # not "utf-8-sig": its error offsets would count the mark
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        column = len(data[line_start:exc.start].decode("utf-8", errors="replace")) + 1  # in characters
        raise BadEncoding(data[exc.start], data.count(b"\n", 0, exc.start) + 1, column) from None
