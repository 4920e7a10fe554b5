"""Where the files that go beside an artifact are written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


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


def write_atomic(path: str | Path, text: str) -> Path:
    """Write `text` to a temporary file in the same folder, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
