"""The frozen artifact: one JSON file that runs a trained program without its source.

JSON with fixed indentation and no timestamps, a sha256 of its own content checked
on every read, written to a temporary file and renamed. Keys keep the order they were
built in, never sorted: an example's input and output reach the LM in the field order
the trained program sent them, so the loaded program sends the same requests. It
names its `.icl` source and that file's sha256; `load`, when asked to look, warns
(StaleArtifactWarning) when the source is there and has changed since.

The sha256 catches accidents, not tampering: whoever can edit the file can hash it
again. `sign` adds an HMAC-SHA256 of the content under a secret key, which `load(...,
verify=...)` checks. Everything read is checked before it is built (`StepState.from_json`,
then `language.spec_check.problems`, the rules the checker applies to a file), so a file of
any JSON gives a program or an ArtifactError, never another exception.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import stat
import warnings
from pathlib import Path
from typing import Any, BinaryIO, Mapping, Sequence

from pydantic import PydanticUserError, TypeAdapter, ValidationError
from pydantic_core import SchemaError

from .errors import Error
from .jsontext import JSONTextError, loads
from .language import spec_check
from .lm.base import LMClient, LMConfigError
from .lm.cache import LMCache, Mode
from .lm.trace import Tracer
from .paths import BadEncoding, decode_utf8, read_limited, read_stream, write_atomic
from .runtime.program import Program
from .language.specs import LMSpec, ProgramSpec
from .runtime.state import StepState
from .language.source import MAX_BYTES as SOURCE_MAX_BYTES, Source

FORMAT = "icldsl-artifact"
FORMAT_VERSION = 1
HASH_KEY = "content_sha256"
SIGNATURE_KEY = "signature"  # outside the hashed content: signing does not change the hash
SIGNING_KEY_ENV = "ICLDSL_SIGNING_KEY"
MIN_KEY_BYTES = 32
MAX_BYTES = 64 * 2**20  # an artifact read by `load` or `icldsl run`


class ArtifactError(Error):
    """An artifact that cannot be used: unreadable, tampered with, or of an unknown format."""


class StaleArtifactWarning(UserWarning):
    """The `.icl` source an artifact was trained from has changed since."""


def canonical(doc: Mapping[str, Any]) -> str:
    """The artifact's text; objects keep their order (see the module's docstring)."""
    return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def content_hash(doc: Mapping[str, Any]) -> str:
    body = {k: v for k, v in doc.items() if k not in (HASH_KEY, SIGNATURE_KEY)}
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


# ---- signing -------------------------------------------------------------------------------


def signing_key(key: str | bytes | None = None) -> bytes:
    """`key`, else the value of $ICLDSL_SIGNING_KEY, as bytes; ArtifactError when there is
    none or it is shorter than MIN_KEY_BYTES (a short key can be guessed)."""
    if key is None:
        key = os.environ.get(SIGNING_KEY_ENV)
        if not key:
            raise ArtifactError(f"no signing key: set ${SIGNING_KEY_ENV} (for example to the output of "
                                "`python -c \"import secrets; print(secrets.token_hex(32))\"`)")
    data = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if len(data) < MIN_KEY_BYTES:
        raise ArtifactError(f"the signing key has {len(data)} bytes; use at least {MIN_KEY_BYTES}")
    return data


def _mac(doc: Mapping[str, Any], key: bytes) -> str:
    return hmac.new(key, content_hash(doc).encode("ascii"), hashlib.sha256).hexdigest()


def sign(doc: Mapping[str, Any], key: bytes) -> dict:
    """The document with an HMAC-SHA256 of its content under `key` (see `signing_key`)."""
    return {**{k: v for k, v in doc.items() if k != SIGNATURE_KEY},
            SIGNATURE_KEY: {"algorithm": "hmac-sha256", "value": _mac(doc, key)}}


def verify_signature(doc: Mapping[str, Any], key: bytes, path: str | Path) -> None:
    """ArtifactError unless `doc` carries a signature made with `key`."""
    signature = doc.get(SIGNATURE_KEY)
    if not isinstance(signature, dict) or signature.get("algorithm") != "hmac-sha256":
        raise ArtifactError(f"{path} is not signed, and a signed artifact was asked for (fit it with --sign)")
    value = signature.get("value")
    if not isinstance(value, str) or not hmac.compare_digest(value, _mac(doc, key)):
        raise ArtifactError(f"{path} is signed, but not with this key: its content or signature was changed "
                            "since it was signed, or it was signed with another key")


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


def read(path: str | Path, stream: BinaryIO | None = None) -> dict:
    """Read and verify an artifact (from `stream`, such as standard input, named `path`,
    when given); raise ArtifactError if it is not intact."""
    try:
        doc = loads(decode_utf8(read_limited(path, MAX_BYTES) if stream is None else read_stream(stream, MAX_BYTES)))
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror}") from None
    except BadEncoding as exc:
        raise ArtifactError(f"{path}:{exc.line}: not an artifact: {exc}") from None
    except JSONTextError as exc:
        raise ArtifactError(f"{path}{f':{exc.line}' if exc.line else ''}: not JSON an artifact may hold: "
                            f"{exc.reason}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ArtifactError(f"{path} is not an icldsl artifact")
    if doc.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{path} has format version {str(doc.get('format_version'))[:20]}; this icldsl reads version "
            f"{FORMAT_VERSION}"
        )
    if doc.get(HASH_KEY) != content_hash(doc):
        raise ArtifactError(f"{path} has been modified since it was written (its content hash does not match)")
    return doc


def read_verified(path: str | Path, verify: bool | str | bytes = False, stream: BinaryIO | None = None) -> dict:
    """`read`, then with `verify` ArtifactError unless it is signed with that key (True: the
    key in $ICLDSL_SIGNING_KEY), as `load` and `icldsl.ray.predict` take it."""
    doc = read(path, stream)
    if verify is not False:
        verify_signature(doc, signing_key(None if verify is True else verify), path)
    return doc


def with_lms(spec: ProgramSpec, lms: Mapping[str, Mapping[str, Any]]) -> ProgramSpec:
    """`spec` with some LMs' settings replaced, so the deployment decides where requests go:
    `{"solver": {"base_url": "https://llm.internal/v1", "api_key": {"env": "PROD_KEY"}}}`.
    `target` replaces the model, `None` removes an option; keys only as `{"env": NAME}`.
    LMConfigError for an LM the program does not have or a setting it cannot take."""
    known = {lm.name: lm for lm in spec.lms}
    unknown = sorted(set(lms) - set(known))
    if unknown:
        raise LMConfigError(f"cannot override lm `{unknown[0]}`: the program's lms are {', '.join(known) or 'none'}")
    replaced = []
    for lm in spec.lms:
        change = dict(lms.get(lm.name, {}))
        target = change.pop("target", lm.target)
        options = {k: v for k, v in {**lm.options, **change}.items() if v is not None}
        problems = spec_check.lm_problems(target, options, known) if isinstance(target, str) else ["no target"]
        if problems and lm.name in lms:
            raise LMConfigError(f"cannot override lm `{lm.name}`: {problems[0]}")
        replaced.append(LMSpec(lm.name, target, options))
    return dataclasses.replace(spec, lms=tuple(replaced))


def program_from(doc: Mapping[str, Any], clients: Mapping[str, LMClient] | None = None, *,
                 cache: LMCache | None = None, cache_mode: Mode = "normal", folder: Path | None = None,
                 lms: Mapping[str, Mapping[str, Any]] | None = None, path: str | Path = "the artifact",
                 tracers: Sequence[Tracer] | None = None) -> Program:
    """The program of an artifact document (its LMs' settings changed by `lms`, see `with_lms`);
    ArtifactError, saying what and where, for content that could not run. Its tools are
    imported on first use, from installed modules, never from the artifact's `folder`."""
    part = "program"
    states = {}
    try:
        spec = ProgramSpec.from_json(doc.get(part))
        part = "states"
        for step, state in _STATES.validate_python(doc.get(part)).items():
            part = f"states.{step}"
            try:
                states[step] = StepState.from_json(state)
            except ValidationError:
                raise
            except (KeyError, TypeError, ValueError, IndexError) as exc:  # the retrieval's own form, judged by it
                raise ArtifactError(f"{path} cannot run: {part}.retrieval: {exc!r}"[:400]) from None
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in (part, *error["loc"]))
        raise ArtifactError(f"{path} cannot run: {where}: {error['msg']}") from None
    if lms:
        spec = with_lms(spec, lms)
    problems = spec_check.problems(spec, states)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ArtifactError(f"{path} cannot run: {problems[0]}{more}")
    try:
        return Program(spec, states, clients, cache=cache, cache_mode=cache_mode,
                       barred=(folder.resolve(),) if folder is not None else (), tracers=tracers)
    except (PydanticUserError, SchemaError, TypeError, ValueError) as exc:  # models pydantic cannot build
        raise ArtifactError(f"{path} cannot run: its models cannot be built: {str(exc).splitlines()[0]}") from None


def stale_source(doc: Mapping[str, Any], path: str | Path | None = None, *,
                 given: str | Path | None = None) -> str | None:
    """Why the artifact `doc` (read from `path`) is stale, or None.

    Its source file is looked up as named, relative to the artifact's folder and to
    the working directory; it is stale when the file is there and none found has the
    recorded sha256. An artifact deployed without its source is not stale. With `given`
    (a file the user named, such as `render FILE`), only that file is read, and only
    when it is one of those places. Only regular files are read: never a device, a FIFO
    or standard input, whatever the artifact names (see `_source_sha256`).
    """
    source = doc.get("source")
    name, recorded = (source.get("file"), source.get("sha256")) if isinstance(source, dict) else (None, None)
    if not (isinstance(name, str) and isinstance(recorded, str) and name and recorded) or "\0" in name:
        return None
    file = Path(name)
    places = [file] if file.is_absolute() else [*([Path(path).parent / file] if path else []), Path.cwd() / file]
    if given is not None:
        try:
            wanted = os.path.realpath(given)
            places = [place for place in places if os.path.realpath(place) == wanted][:1]
        except (OSError, ValueError):  # a name the file system refuses
            return None
    found = {}
    for place in dict.fromkeys(places):
        sha = _source_sha256(place)
        if sha is not None:
            found[place] = sha
    if not found or recorded in found.values():
        return None
    place, sha = next(iter(found.items()))
    return (f"{path or 'the artifact'} is stale: its source {place} has changed since it was trained "
            f"(sha256 {sha[:12]}, was {recorded[:12]}); fit it again to use the change")


_NEVER_READ = ("/dev/", "/proc/", "/sys/")  # /dev/stdin, /proc/self/fd/0, ...: not a source, whatever their kind


def _source_sha256(place: Path) -> str | None:
    """The sha256 of `place` as a `.icl` source, or None when it is not a regular file
    (checked before opening it and again, on what was opened, with fstat), is under
    /dev, /proc or /sys, is larger than a source may be, or cannot be read. It is opened
    non-blocking, so a FIFO put there after the first check cannot hang the caller."""
    try:
        real = os.path.realpath(place)
        if real.startswith(_NEVER_READ) or not stat.S_ISREG(os.stat(real).st_mode):
            return None
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except (OSError, ValueError):  # not there, unreadable, or a name the file system refuses
        return None
    with open(fd, "rb") as f:
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > SOURCE_MAX_BYTES:
                return None
            return Source.from_stream(str(place), f).sha256
        except OSError:
            return None


def load(path: str | Path, clients: Mapping[str, LMClient] | None = None, *,
         cache: LMCache | None = None, cache_mode: Mode = "normal", verify: bool | str | bytes = False,
         lms: Mapping[str, Mapping[str, Any]] | None = None, stream: BinaryIO | None = None,
         tracers: Sequence[Tracer] | None = None, check_source: bool | str | Path | None = None) -> Program:
    """The runnable program of a verified artifact (read from `stream`, named `path`, when given).

    With a `cache` (`icldsl.lm.cache.LMCache`), its LM calls are answered from it when they
    can be. `verify` refuses (ArtifactError) an artifact not signed with the key given, or
    with the key in $ICLDSL_SIGNING_KEY when it is True. `lms` replaces the settings of
    its LMs (see `with_lms`). `tracers` receive every LM call (`icldsl.lm.trace`; by
    default OpenTelemetry's spans, when it is installed).

    The source file the artifact names is read only when asked: `check_source=True`, or
    a path (that file, when it is the artifact's source), or by default when `verify` is
    given (a signed artifact names its signer's file). It warns (StaleArtifactWarning)
    when that source has changed since (see `stale_source`).
    """
    doc = read_verified(path, verify, stream)
    if check_source is None:
        check_source = verify is not False
    if check_source is not False:
        stale = stale_source(doc, path, given=None if check_source is True else check_source)
        if stale:
            warnings.warn(stale, StaleArtifactWarning, stacklevel=2)
    folder = Path(path).parent if stream is None else None  # a stream comes from no folder of tools
    return program_from(doc, clients, cache=cache, cache_mode=cache_mode, folder=folder, lms=lms, path=path,
                        tracers=tracers)


_STATES = TypeAdapter(dict[str, Any])  # step path -> its state, which `StepState.from_json` checks
