"""Built-in datasets a user has no copy of: fetched once from their public source into
the user's cache (`$ICLDSL_CACHE_DIR/datasets/<name>`, by default under `~/.cache/icldsl`)."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import httpx

from icldsl.datasets.base import DataError

log = logging.getLogger(__name__)

CACHE_ENV = "ICLDSL_CACHE_DIR"
TIMEOUT = 30.0


def cache_dir(name: str) -> Path:
    """`$ICLDSL_CACHE_DIR/datasets/<name>`, by default under `~/.cache/icldsl`."""
    root = os.environ.get(CACHE_ENV)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "icldsl"
    return base / "datasets" / name


def download(url: str, dest: Path, *, what: str, env: str) -> None:
    """Fetch `url` into `dest` atomically: a temporary file beside it, then `os.replace`.

    `what` names the dataset and `env` the variable that points at a local copy, so a
    failed download says how to do without it.
    """
    log.info("downloading %s to %s", url, dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as exc:
        raise DataError(f"cannot create the {what} cache: {exc}", file=str(dest.parent)) from exc

    def failed(cause: str) -> str:
        return f"could not download {what} from {url}: {cause}; set {env} to a local copy"

    try:
        with (
            os.fdopen(fd, "wb") as out,
            httpx.stream("GET", url, timeout=TIMEOUT, follow_redirects=True) as resp,
        ):
            resp.raise_for_status()
            for chunk in resp.iter_bytes():
                out.write(chunk)
            if not out.tell():
                raise DataError(failed("the response was empty"))
        os.replace(tmp, dest)
    except httpx.HTTPStatusError as exc:
        raise DataError(failed(f"HTTP {exc.response.status_code} {exc.response.reason_phrase}")) from exc
    except httpx.HTTPError as exc:
        raise DataError(failed(str(exc) or type(exc).__name__)) from exc
    except OSError as exc:
        raise DataError(f"cannot write the {what} cache: {exc}", file=str(dest)) from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
