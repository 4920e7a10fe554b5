"""The frozen artifact: one JSON file that runs a trained program without its source.

JSON with fixed indentation and no timestamps, a sha256 of its own content checked
on every read, written to a temporary file and renamed. Keys keep the order they were
built in, never sorted: an example's input and output reach the LM in the field order
the trained program sent them, so the loaded program sends the same requests. It
names its `.icl` source and that file's sha256; `load` warns (StaleArtifactWarning)
when the source is there and has changed since.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any, Mapping

from .errors import Error
from .lm.base import LMClient
from .paths import write_atomic
from .lm.cache import LMCache, Mode
from .runtime.program import Program
from .runtime.spec import ProgramSpec
from .runtime.state import StepState
from .source import Source

FORMAT = "icldsl-artifact"
FORMAT_VERSION = 1
HASH_KEY = "content_sha256"


class ArtifactError(Error):
    """An artifact that cannot be used: unreadable, tampered with, or of an unknown format."""


class StaleArtifactWarning(UserWarning):
    """The `.icl` source an artifact was trained from has changed since."""


def canonical(doc: Mapping[str, Any]) -> str:
    """The artifact's text; objects keep their order (see the module's docstring)."""
    return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def content_hash(doc: Mapping[str, Any]) -> str:
    body = {k: v for k, v in doc.items() if k != HASH_KEY}
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


def freeze(program: Program, *, source_file: str, source_sha256: str, training: Mapping[str, Any]) -> dict:
    """The artifact document of a (trained) program."""
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "program": program.spec.to_json(),
        "states": {path: state.to_json() for path, state in sorted(program.states.items())},
        "source": {"file": source_file, "sha256": source_sha256},
        "training": dict(training),
    }
    # A round trip through JSON makes tuples lists, so the hash covers what is written.
    doc = json.loads(canonical(doc))
    doc[HASH_KEY] = content_hash(doc)
    return doc


def write(path: str | Path, doc: Mapping[str, Any]) -> Path:
    """Write atomically: a temporary file in the same directory, then a rename."""
    return write_atomic(path, canonical(doc))


def read(path: str | Path) -> dict:
    """Read and verify an artifact; raise ArtifactError if it is not intact."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path} is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ArtifactError(f"{path} is not an icldsl artifact")
    if doc.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{path} has format version {doc.get('format_version')}; this icldsl reads version {FORMAT_VERSION}"
        )
    if doc.get(HASH_KEY) != content_hash(doc):
        raise ArtifactError(f"{path} has been modified since it was written (its content hash does not match)")
    return doc


def program_from(doc: Mapping[str, Any], clients: Mapping[str, LMClient] | None = None, *,
                 cache: LMCache | None = None, cache_mode: Mode = "normal", folder: Path | None = None) -> Program:
    """The program of an artifact document; its tools are imported on first use, from
    installed modules, never from the artifact's `folder`."""
    try:
        spec = ProgramSpec.from_json(doc["program"])
        states = {path: StepState.from_json(s) for path, s in doc["states"].items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"artifact content is malformed: {exc!r}") from None
    return Program(spec, states, clients, cache=cache, cache_mode=cache_mode,
                   barred=(folder.resolve(),) if folder is not None else ())


def stale_source(doc: Mapping[str, Any], path: str | Path | None = None) -> str | None:
    """Why the artifact `doc` (read from `path`) is stale, or None.

    Its source file is looked up as named, relative to the artifact's folder and to
    the working directory; it is stale when the file is there and none found has the
    recorded sha256. An artifact deployed without its source is not stale.
    """
    source = doc.get("source") or {}
    name, recorded = source.get("file"), source.get("sha256")
    if not name or not recorded:
        return None
    file = Path(name)
    places = [file] if file.is_absolute() else [*([Path(path).parent / file] if path else []), Path.cwd() / file]
    found = [p for p in dict.fromkeys(places) if p.is_file()]
    if not found or any(Source.from_path(p).sha256 == recorded for p in found):
        return None
    return (f"{path or 'the artifact'} is stale: its source {found[0]} has changed since it was trained "
            f"(sha256 {Source.from_path(found[0]).sha256[:12]}, was {recorded[:12]}); fit it again to use the change")


def load(path: str | Path, clients: Mapping[str, LMClient] | None = None, *,
         cache: LMCache | None = None, cache_mode: Mode = "normal") -> Program:
    """The runnable program of a verified artifact; with a `cache` (`icldsl.lm.cache.LMCache`),
    its LM calls are answered from it when they can be. Warns (StaleArtifactWarning) when
    its source has changed since (see `stale_source`)."""
    doc = read(path)
    stale = stale_source(doc, path)
    if stale:
        warnings.warn(stale, StaleArtifactWarning, stacklevel=2)
    return program_from(doc, clients, cache=cache, cache_mode=cache_mode, folder=Path(path).parent)
