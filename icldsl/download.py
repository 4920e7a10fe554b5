"""Files fetched once over HTTP into the user's cache (built-in datasets, the bundled model's
weights): streamed into a temporary file beside the destination, checked against a pinned
sha256 when there is one, then renamed into place, so no reader ever sees half a file."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

TIMEOUT = 30.0  # seconds without a byte before a download gives up


class DownloadError(Exception):
    """Why a download failed (the caller's error says what to do instead)."""


def fetch(url: str, dest: Path, *, sha256: str | None = None, timeout: float = TIMEOUT) -> None:
    """Fetch `url` into `dest` atomically; with `sha256`, refuse content of another digest.

    Raises DownloadError for a failed request, an empty body or a wrong digest, and
    OSError when `dest` cannot be written.
    """
    import httpx  # here, not at the top: checking a file names the loaders, and must not load httpx

    log.info("downloading %s to %s", url, dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    digest = hashlib.sha256()
    try:
        with (_failures(), os.fdopen(fd, "wb") as out,
              httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as resp):
            resp.raise_for_status()
            for chunk in resp.iter_bytes():
                digest.update(chunk)
                out.write(chunk)
            if not out.tell():
                raise DownloadError("the response was empty")
        if sha256 is not None and digest.hexdigest() != sha256:
            raise DownloadError(f"its sha256 is {digest.hexdigest()}, not the {sha256} expected")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def get_text(url: str, *, accept: str, timeout: float = TIMEOUT) -> tuple[str, str, str]:
    """The body of a small page, its content type and its final URL (after redirects)."""
    import httpx

    with _failures():
        resp = httpx.get(url, headers={"Accept": accept}, timeout=timeout, follow_redirects=True)
        resp.raise_for_status()
    return resp.text, resp.headers.get("content-type", ""), str(resp.url)


@contextmanager
def _failures() -> Iterator[None]:
    """httpx's errors as DownloadError: the status of a refused request, else what failed."""
    import httpx

    try:
        yield
    except httpx.HTTPStatusError as exc:
        raise DownloadError(f"HTTP {exc.response.status_code} {exc.response.reason_phrase}") from exc
    except httpx.HTTPError as exc:
        raise DownloadError(str(exc) or type(exc).__name__) from exc
