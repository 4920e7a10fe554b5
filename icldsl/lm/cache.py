"""A persistent cache of LM and embedding calls: one SQLite file shared by runs and processes.

Answers are stored by a key hashed from the canonical request: the provider-prefixed
model, the messages, the schema and the decoding settings; never a key or a base_url.
`CachedClient` and `CachedEmbedder` (lm/cached.py) wrap any client, so every provider gets the cache.
Each answer is committed the moment it arrives, so an interrupted run loses no finished
call and a re-run replays them. Failed calls (`LMError`) are never stored.

The file is in WAL mode, so readers never wait for writers, and inserts are atomic; when
two processes answer the same request, the first answer stored is the one kept.

The answers are trusted as the LM's and the prompts are private: the file is the user's
own, mode 0600, and its folder one that no other user can write into (`_private`). A row
that cannot be read (damaged, or written by another version) is a miss, replaced by the
fresh answer; each kind of trouble with the file is logged once per cache, not per call.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import sqlite3
import stat
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

from ..errors import Error
from ..paths import CACHE_DIR_ENV, cache_root, folder_problem

log = logging.getLogger(__name__)

FILE_NAME = "lm.sqlite3"
KEY_VERSION = 1  # bump when the key payload changes; old entries then simply miss

Mode = Literal["normal", "off", "offline"]
MODES: tuple[Mode, ...] = ("normal", "off", "offline")

_BUSY_TIMEOUT = 30.0  # seconds a write waits for another process's write to finish
_FLUSH_EVERY = 256  # hit/miss counts kept in memory before they are written

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key     TEXT PRIMARY KEY,
    kind    TEXT NOT NULL,
    model   TEXT NOT NULL,
    value   TEXT NOT NULL,
    created REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_by_model ON entries (model);
CREATE TABLE IF NOT EXISTS counters (
    model  TEXT PRIMARY KEY,
    hits   INTEGER NOT NULL DEFAULT 0,
    misses INTEGER NOT NULL DEFAULT 0
);
"""


_PRIVATE = 0o600  # the file and its WAL and shared-memory files: prompts are the user's alone
_SIDE_FILES = ("-wal", "-shm")  # SQLite gives them the database file's mode


def default_path() -> Path:
    """`lm.sqlite3` in the cache folder (`paths.cache_root`)."""
    return cache_root() / FILE_NAME


class CacheError(Error):
    """The cache file cannot be opened or is not a cache."""


def cache_key(kind: str, model: str, payload: Mapping[str, Any]) -> str:
    """The key of one call: a sha256 of canonical JSON.

    `kind` names the call ("complete", "embed"), `model` is the provider-prefixed
    target and `payload` holds everything else that decides the answer, as JSON
    values (mappings and sequences of str, numbers, bools, None). Never put a
    secret or an address in `payload`.
    """
    doc = {"v": KEY_VERSION, "kind": kind, "model": model, "request": payload}
    text = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                      default=_plain)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (tuple, list, set, frozenset)):
        return list(value)
    raise TypeError(f"cannot put a {type(value).__name__} in a cache key")


# ---- the store ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelStats:
    """What the cache holds for one model, and how often it answered."""

    model: str
    entries: int
    bytes: int  # of keys and values, before SQLite's own overhead
    hits: int
    misses: int


@dataclass(frozen=True, slots=True)
class CacheStats:
    path: Path
    size: int  # bytes on disk, write-ahead log included
    models: tuple[ModelStats, ...]

    @property
    def entries(self) -> int:
        return sum(m.entries for m in self.models)

    @property
    def hits(self) -> int:
        return sum(m.hits for m in self.models)

    @property
    def misses(self) -> int:
        return sum(m.misses for m in self.models)


class LMCache:
    """The answers of past calls, by key, in one SQLite file.

    Open it with `LMCache(path)` (the file and its directory are created) and
    `close()` it, or use `with`. One object may serve many clients and tasks of one
    process; other processes open their own. Hits and misses are counted per model
    and written now and then and on `close()`.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._pending = 0
        self._warned: set[str] = set()  # the kinds of trouble already logged
        self.unreadable = 0  # rows that could not be read, counted as misses
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"cannot create the cache directory {self.path.parent}: {exc.strerror}") from None
        _private(self.path)
        try:
            self._db: sqlite3.Connection | None = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise CacheError(f"cannot open the LM cache {self.path}: {exc}") from None
        try:
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")  # durable across crashes; an OS crash may lose the last
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            self._db.close()
            self._db = None
            raise CacheError(
                f"the LM cache {self.path} is unusable ({exc}); delete the file or set {CACHE_DIR_ENV} elsewhere"
            ) from None

    def __repr__(self) -> str:
        return f"LMCache({str(self.path)!r})"

    def __enter__(self) -> LMCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Write the hit and miss counts and close the file; safe to call twice."""
        if self._db is None:
            return
        try:
            self._flush()
        finally:
            with self._lock:
                self._db.close()
                self._db = None

    # -- entries ------------------------------------------------------------------

    def get(self, key: str) -> str | None:
        """The stored value for `key`, or None; an unreadable cache logs and misses."""
        try:
            with self._lock:
                row = self._conn().execute("SELECT value FROM entries WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            self._warn("read", "cannot read (%s); calling the LM instead", exc)
            return None
        return None if row is None else row[0]

    def discard(self, key: str, problem: Exception) -> None:
        """Drop the entry of `key`, which could not be read (`problem`), so that the fresh
        answer takes its place; counted in `unreadable`, logged once per cache."""
        self.unreadable += 1
        self._warn("unreadable", "an entry cannot be read (%s: %s), so it counts as a miss; "
                   "later ones are counted, not logged", type(problem).__name__, problem)
        try:
            with self._lock:
                self._conn().execute("DELETE FROM entries WHERE key = ?", (key,))
        except sqlite3.Error as exc:
            self._warn("write", "cannot store answers (%s); a re-run will call the LM again", exc)

    def put(self, key: str, kind: str, model: str, value: str) -> bool:
        """Store `value` unless `key` is already there (the first answer stays).

        Returns whether the value is now stored; a failed write is logged, not raised,
        since the answer itself is good.
        """
        try:
            with self._lock:
                self._conn().execute(
                    "INSERT OR IGNORE INTO entries (key, kind, model, value, created) VALUES (?, ?, ?, ?, ?)",
                    (key, kind, model, value, time.time()),
                )
        except sqlite3.Error as exc:
            self._warn("write", "cannot store answers (%s); a re-run will call the LM again", exc)
            return False
        return True

    def _warn(self, kind: str, message: str, *args: object) -> None:
        """Log `message` the first time this cache meets trouble of `kind` (a full disk
        would otherwise log once per answer). Called under `_lock` too, so it takes none."""
        if kind in self._warned:
            return
        self._warned.add(kind)
        log.warning("LM cache %s: " + message, self.path, *args)

    def count(self, model: str, *, hits: int = 0, misses: int = 0) -> None:
        """Count lookups for `stats()`."""
        with self._lock:
            self._counts[model, "hits"] += hits
            self._counts[model, "misses"] += misses
            self._pending += hits + misses
            due = self._pending >= _FLUSH_EVERY
        if due:
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            counts, self._counts, self._pending = self._counts, Counter(), 0
            models = sorted({model for model, _ in counts})
            rows = [(m, counts[m, "hits"], counts[m, "misses"]) for m in models]
            if not rows:
                return
            try:
                self._conn().executemany(
                    "INSERT INTO counters (model, hits, misses) VALUES (?, ?, ?) ON CONFLICT (model) "
                    "DO UPDATE SET hits = hits + excluded.hits, misses = misses + excluded.misses",
                    rows,
                )
            except sqlite3.Error as exc:
                self._warn("count", "cannot record hit counts (%s)", exc)

    # -- maintenance --------------------------------------------------------------

    def stats(self) -> CacheStats:
        """Entries, bytes and hit counts per model, and the size on disk."""
        self._flush()
        with self._lock:
            db = self._conn()
            sizes = {
                model: (n, size)
                for model, n, size in db.execute(
                    "SELECT model, COUNT(*), SUM(LENGTH(CAST(key AS BLOB)) + LENGTH(CAST(value AS BLOB))) "
                    "FROM entries GROUP BY model"
                )
            }
            counters = {model: (h, m) for model, h, m in db.execute("SELECT model, hits, misses FROM counters")}
        models = tuple(
            ModelStats(model, *sizes.get(model, (0, 0)), *counters.get(model, (0, 0)))
            for model in sorted(set(sizes) | set(counters))
        )
        return CacheStats(self.path, self.size_on_disk(), models)

    def size_on_disk(self) -> int:
        files = (self.path, self.path.with_name(self.path.name + "-wal"), self.path.with_name(self.path.name + "-shm"))
        return sum(f.stat().st_size for f in files if f.exists())

    def clear(self, model: str | None = None) -> int:
        """Delete every entry (or those of `model`) and their counts; return how many entries went."""
        self._flush()
        where, args = ("WHERE model = ?", (model,)) if model is not None else ("", ())
        with self._lock:
            db = self._conn()
            removed = db.execute(f"DELETE FROM entries {where}", args).rowcount
            db.execute(f"DELETE FROM counters {where}", args)
            try:
                db.execute("VACUUM")
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.OperationalError as exc:  # another process holds the file
                log.info("LM cache %s: not compacted now (%s)", self.path, exc)
        return removed

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise CacheError(f"the LM cache {self.path} is closed")
        return self._db


def _private(path: Path) -> None:
    """Check that no other user could have placed or changed the cache at `path`, and make
    it the user's alone: its folder is the user's (or root's) and not writable by group or
    others, the file (created here if missing) is a regular file of the user's, not a link,
    and it and its side files get mode 0600. CacheError says what is wrong otherwise."""
    if not hasattr(os, "getuid"):  # no POSIX owners (Windows): the folder's ACLs decide
        return
    folder = path.parent
    move = f"use a folder of your own: set {CACHE_DIR_ENV}, or pass another path"
    problem = folder_problem(os.stat(folder))
    if problem is not None:
        fix = f"run `chmod go-w {folder}`, or {move}" if problem.startswith("is writable") else move
        raise CacheError(f"the LM cache folder {folder} {problem}, so another user could plant answers in it "
                         f"or read its prompts; {fix}")
    for name, create in ((path.name, True), *((path.name + s, False) for s in _SIDE_FILES)):
        flags = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(folder / name, flags | (os.O_CREAT if create else 0), _PRIVATE)
        except FileNotFoundError:
            continue
        except OSError as exc:
            why = "is a symbolic link" if exc.errno == errno.ELOOP else f"cannot be opened ({exc.strerror})"
            raise CacheError(f"the LM cache file {folder / name} {why}; remove it, or {move}") from None
        try:
            status = os.fstat(fd)
            if not stat.S_ISREG(status.st_mode):
                raise CacheError(f"the LM cache file {folder / name} is not a regular file; remove it, or {move}")
            if status.st_uid != os.getuid():
                raise CacheError(f"the LM cache file {folder / name} belongs to another user (uid {status.st_uid}); "
                                 f"remove it, or {move}")
            if stat.S_IMODE(status.st_mode) != _PRIVATE:
                os.fchmod(fd, _PRIVATE)
        finally:
            os.close(fd)
