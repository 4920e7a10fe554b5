"""What every loader shares: options, reading files, JSONL rows, validation against the
models (with a field -> column mapping), sampling and splitting."""

from __future__ import annotations

import difflib
import math
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from icldsl.datasets.base import DataError, Example
from icldsl.language.catalogue.loaders import problems
from icldsl.language.options import Signature, kind_of
from icldsl.jsontext import JSONTextError, loads
from icldsl.paths import BadEncoding, decode_utf8, read_limited

if TYPE_CHECKING:  # pydantic and numpy load when rows are read
    from pydantic import BaseModel, ValidationError

T = TypeVar("T")

_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


def check_options(loader: str, args: Mapping[str, Any], signature: Signature) -> dict[str, Any]:
    """The loader's options from `args`, checked against its declaration (`icldsl.language.
    catalogue.loaders`: what `icldsl check` refuses in a file, this refuses), over the declared
    defaults; ints widen to floats."""
    unknown = sorted(set(args) - set(signature.options))
    if unknown:
        raise DataError(
            f"{loader} loader: unknown option '{unknown[0]}' (expected one of: {', '.join(signature.options)})"
        )
    for name in signature.required:
        if name not in args:
            raise DataError(f"{loader} loader: missing option '{name}'")
    opts: dict[str, Any] = {}
    for name, value in args.items():
        want = kind_of(signature.options[name])
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if want == dict[str, str]:
            if not (isinstance(value, dict) and all(isinstance(v, str) for v in value.values())):
                raise DataError(
                    f"{loader} loader: option '{name}' should map names to strings, like {{ a: \"x\" }}"
                )
        elif type(value) is not want:
            raise DataError(
                f"{loader} loader: option '{name}' should be {want.__name__}, got {type(value).__name__}"
            )
        opts[name] = value
    for _, message in problems(opts, signature):
        raise DataError(f"{loader} loader: {message}")
    return {**signature.defaults, **opts}


def resolve(path: str, base_dir: Path) -> Path:
    """`path` with `~` expanded, taken relative to `base_dir` unless absolute."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else base_dir / p


MAX_FILE_BYTES = 256 * 2**20  # one data file; a device such as /dev/zero is not read past it


def read_text(path: Path) -> str:
    """The UTF-8 text of a data file, a leading byte order mark dropped (in every format);
    DataError naming the file, and the line of a byte that is not UTF-8, when it cannot be read."""
    file = str(path)
    if "\0" in file:  # open() would raise ValueError
        raise DataError("the file name holds a NUL character (\\u0000), which no file name can",
                        file=file.replace("\0", "\\u0000"))
    try:
        return decode_utf8(read_limited(path, MAX_FILE_BYTES))
    except FileNotFoundError:
        raise DataError("file not found", file=file) from None
    except IsADirectoryError:
        raise DataError("is a directory, not a file", file=file) from None
    except OSError as exc:
        raise DataError(f"cannot read file: {exc.strerror}", file=file) from None
    except BadEncoding as exc:
        raise DataError(str(exc), file=file, line=exc.line) from None


def read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """Every non-blank line of `path` as (1-based line number, JSON object)."""
    file = str(path)
    text = read_text(path)
    rows = []
    # Split on "\n" only: str.splitlines would also break on U+2028 inside JSON strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = loads(line)
        except JSONTextError as exc:
            where = f" (column {exc.column})" if exc.column else ""
            raise DataError(f"invalid JSON: {exc.reason}{where}", file=file, line=number) from None
        if not isinstance(row, dict):
            kind = _JSON_TYPES.get(type(row), "null")
            raise DataError(f"expected a JSON object, got {kind}", file=file, line=number)
        rows.append((number, row))
    if not rows:
        raise DataError("no examples", file=file)
    return rows


def to_example(
    row: Mapping[str, Any], x_model: type[BaseModel], y_model: type[BaseModel], *, file: str, line: int,
    origin: str | None = None,
) -> Example:
    """The row's input and output fields, validated by the program's models, as an Example."""
    return to_examples([(line, row)], x_model, y_model, file=file, origin=origin)[0]


MAX_REPORTED = 10  # bad rows listed in one DataError; the rest are counted


def field_names(model: type[BaseModel]) -> list[str]:
    """A model's fields under their declared names."""
    return [field.alias or name for name, field in model.model_fields.items()]


def check_mapping(
    loader: str, mapping: Mapping[str, str], x_model: type[BaseModel], y_model: type[BaseModel]
) -> dict[str, str]:
    """`map: { field: "column" }` checked against the program's fields."""
    known = field_names(x_model) + field_names(y_model)
    for field in mapping:
        if field not in known:
            close = difflib.get_close_matches(field, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f" (fields: {', '.join(known)})"
            raise DataError(
                f"{loader} loader: `map` names '{field}', which is not a field of the program's input "
                f"or output{hint}"
            )
    return dict(mapping)


def check_columns(
    columns: Iterable[str], mapping: Mapping[str, str], x_model: type[BaseModel], y_model: type[BaseModel],
    *, file: str, line: int | None = None,
) -> None:
    """Refuse a file where no row has the column a required field reads (or a mapped column)."""
    present = set(columns)
    shown = ", ".join(sorted(present)) or "none"
    for field, column in mapping.items():
        if column not in present:
            close = difflib.get_close_matches(column, present, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f" (columns: {shown})"
            raise DataError(f"no column '{column}' (mapped to field '{field}'){hint}", file=file, line=line)
    for role, model in (("input", x_model), ("output", y_model)):
        for name, info in model.model_fields.items():
            field = info.alias or name
            if info.is_required() and field not in mapping and field not in present:
                raise DataError(
                    f"no column for {role} field '{field}' (columns: {shown}); name one with "
                    f'`map: {{ {field}: "column" }}`',
                    file=file, line=line,
                )


def to_examples(
    rows: Sequence[tuple[int, Mapping[str, Any]]],
    x_model: type[BaseModel],
    y_model: type[BaseModel],
    *,
    file: str,
    mapping: Mapping[str, str] | None = None,
    text_cells: bool = False,
    origin: str | None = None,
) -> list[Example]:
    """Every row validated into an Example, or one DataError listing the bad rows (all are checked).

    Each example's origin is `<origin>:<line>`; `origin` defaults to `file`, but should
    not depend on the machine (the data block's name and the path as the file wrote it),
    since learned examples carry it into the artifact.
    `mapping` names the column each field reads (default: the field's own name).
    `text_cells` (CSV) turns cell text into what each field's type wants: JSON for
    lists and models, an empty cell for an optional field into null.
    """
    mapping = mapping or {}
    examples: list[Example] = []
    bad: list[tuple[int, str]] = []
    for line, row in rows:
        try:
            x = _validated(row, x_model, "input", mapping, text_cells)
            y = _validated(row, y_model, "output", mapping, text_cells)
        except _BadRow as exc:
            bad.append((line, str(exc)))
            continue
        examples.append(Example(x=x, y=y, origin=f"{origin or file}:{line}"))
    if bad:
        (first_line, first), rest = bad[0], bad[1:]
        lines = [first, *(f"{file}:{line}: {message}" for line, message in rest[: MAX_REPORTED - 1])]
        if len(bad) > MAX_REPORTED:
            lines.append(f"... and {len(bad) - MAX_REPORTED} more")
        if len(bad) > 1:
            lines.append(f"{len(bad)} bad rows of {len(rows)}; nothing was loaded")
        raise DataError("\n".join(lines), file=file, line=first_line)
    return examples


class _BadRow(Exception):
    pass


def _validated(
    row: Mapping[str, Any], model: type[BaseModel], role: str, mapping: Mapping[str, str], text_cells: bool
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        field = info.alias or name
        column = mapping.get(field, field)
        if column in row:
            value = row[column]
            values[field] = _from_text(value, info.annotation) if text_cells and isinstance(value, str) else value
    from pydantic import ValidationError

    try:
        validated = model.model_validate(values).model_dump(mode="json", by_alias=True)
    except ValidationError as exc:
        raise _BadRow(f"{role} {summarize(exc, mapping)}") from exc
    bad = _not_finite(validated)
    if bad:  # a CSV cell "nan" or "inf" reads as a float; no JSON can hold it, no reward compare it
        raise _BadRow(f"{role} field '{bad}': {validated[bad.split('.')[0]]!r} is not a finite number")
    return validated


def _not_finite(value: Any, path: str = "") -> str | None:
    """The dotted path of the first NaN or infinite number in `value`, if any."""
    if isinstance(value, float) and not math.isfinite(value):
        return path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _not_finite(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def text_cells(row: Mapping[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """A CSV row whose cells for `model`'s fields are turned into what the fields expect
    (`_from_text`); other columns stay as they are."""
    values = dict(row)
    for name, info in model.model_fields.items():
        field = info.alias or name
        if isinstance(values.get(field), str):
            values[field] = _from_text(values[field], info.annotation)
    return values


def _from_text(cell: str, annotation: Any) -> Any:
    """A CSV cell as the value a field of type `annotation` expects (pydantic coerces the rest)."""
    optional = typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in typing.get_args(
        annotation
    )
    if optional:
        if not cell.strip():
            return None
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    from pydantic import BaseModel

    structured = typing.get_origin(annotation) is list or (
        isinstance(annotation, type) and issubclass(annotation, BaseModel)
    )
    if structured and cell.lstrip()[:1] in ("[", "{"):
        try:
            return loads(cell)
        except JSONTextError:
            return cell  # pydantic names the field and shows the text
    return cell


def summarize(exc: ValidationError, mapping: Mapping[str, str] | None = None) -> str:
    """A pydantic error on one line: each field (and its column, when mapped) and what is
    wrong with it, no URLs."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        text = f"field '{where}'"
        top = str(error["loc"][0]) if error["loc"] else ""
        if mapping and mapping.get(top, top) != top:
            text += f" (column '{mapping[top]}')"
        text += f": {error['msg']}"
        if error["type"] != "missing":
            shown = repr(error["input"])
            text += f" (got {shown if len(shown) <= 40 else shown[:37] + '...'})"
        parts.append(text)
    return "; ".join(parts)


def sample(items: Sequence[T], limit: int | None, seed: int) -> tuple[T, ...]:
    """All items in order when `limit` is None, else the first `limit` of a seeded permutation.

    A sample with a smaller limit is a prefix of one with a larger limit and the same seed.
    """
    if limit is None:
        return tuple(items)
    import numpy as np

    order = np.random.default_rng(seed).permutation(len(items))[:limit]
    return tuple(items[int(i)] for i in order)


def split(items: Sequence[T], fraction: float, seed: int) -> tuple[tuple[T, ...], tuple[T, ...]]:
    """(train, test): a seeded choice of `fraction` of the items (at least one) for training.

    Both parts keep the items' order; only which item goes where is random.
    """
    n = len(items)
    cut = min(n, max(1, math.floor(n * fraction + 0.5)))
    import numpy as np

    chosen = set(np.random.default_rng(seed).permutation(n)[:cut].tolist())
    train = tuple(item for i, item in enumerate(items) if i in chosen)
    test = tuple(item for i, item in enumerate(items) if i not in chosen)
    return train, test
