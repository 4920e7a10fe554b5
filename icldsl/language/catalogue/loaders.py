"""Data loaders, as a `data` block's `from` clause names them, and every option each takes,
declared once: the checker, the language server, the data checks and the docs read these, and
each loader takes its defaults and refusals from them (`icldsl.datasets.rows.check_options`).
Each loader's `load` is named as `"module:name"`, imported when data is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

from ..options import CHARACTER, AtLeast, Option, Signature, Within, kind_of, type_name

GSM8K_PATH_ENV = "ICLDSL_GSM8K_PATH"
CLINC150_PATH_ENV = "ICLDSL_CLINC150_PATH"
OOS = "oos"  # the intent of CLINC150's out-of-scope queries

_SEED = Option(AtLeast(int, 0), 0, "the seed of the samples (and of the split)")
_TRAIN_LIMIT = Option(AtLeast(int, 0), doc="train on a seeded sample of this many rows")
_TEST_LIMIT = Option(AtLeast(int, 0), doc="test on a seeded sample of this many rows")


@dataclass(frozen=True, slots=True)
class Loader:
    """A loader: its `load` as `"module:name"` (called `load(name, args, *, base_dir, x_model,
    y_model) -> Dataset`, `args` keyed by option name), its options, one paragraph of doc, and,
    for a loader with a fixed shape, the fields it gives (input, expected output: field -> type
    name), so the checker can match them with the program's models before anything runs."""

    load: str
    signature: Signature
    doc: str
    provides: tuple[Mapping[str, str], Mapping[str, str]] | None = None


def _range(t: Any) -> str:
    """The words for the values a ranged option type takes: "0 or more", "one character"."""
    if isinstance(t, AtLeast):
        return f"above {t.low}" if t.strict else f"{t.low} or more"
    if isinstance(t, Within):
        return f"{'above' if t.strict else 'at least'} {t.low} and at most {t.high}"
    return "one character" if t is CHARACTER else type_name(t)


def problems(given: Mapping[str, Any], signature: Signature) -> list[tuple[str, str]]:
    """(option, why) for each value `given` (of the right kind) that its declaration refuses, alone
    or with another: the checker reports them all on the file, and the loader raises the first."""
    found = [(name, f"option '{name}' should be {_range(signature.options[name])}, got {value!r}")
             for name, value in given.items() if _ranged_kind(value, signature.options.get(name))
             and signature.refusal(name, value)]
    if "test" in given and "split" in given:
        found.append(("split", "give either a `test` file or a `split`, not both"))
    return found


def _ranged_kind(value: Any, t: Any) -> bool:
    """Whether `t` has a range and a Python value is of its kind (an int is a float)."""
    kind = kind_of(t)
    if kind is t:
        return False
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return type(value) is kind


_FILE_OPTIONS: Mapping[str, Option] = {
    "path": Option(str, doc="the file, relative to the .icl file"),
    "test": Option(str, doc="a separate test file"),
    "split": Option(Within(float, 0, 1, strict=True), 0.8,
                    "the seeded share of the rows that trains when there is no `test` file"),
    "train_limit": _TRAIN_LIMIT,
    "test_limit": _TEST_LIMIT,
    "seed": _SEED,
    "map": Option(dict[str, str], doc="the column each field reads: `{ field: \"column\" }` (default: the "
                  "column of the field's own name)"),
}
_FILE_DOC = (
    "`test` names a separate test file; otherwise a seeded choice of `split` (default "
    f"{_FILE_OPTIONS['split'].default}) of the rows trains. `map: {{ field: \"column\" }}` names the column a field "
    "reads (default: the column of the field's own name). Relative paths are relative to the .icl "
    "file. train_limit/test_limit take a sample seeded by `seed` (default 0)."
)


def _file_loader(name: str, extra: Mapping[str, Option], doc: str) -> Loader:
    return Loader(f"icldsl.datasets.files:{name.upper()}.load",
                  Signature.declare({**_FILE_OPTIONS, **extra}, required=("path",), positional=("path",)),
                  doc + " " + _FILE_DOC)


LOADERS: Mapping[str, Loader] = MappingProxyType({
    "gsm8k": Loader(
        "icldsl.datasets.gsm8k:load",
        Signature.declare({
            "path": Option(str, doc=f"a directory with train.jsonl and test.jsonl; else ${GSM8K_PATH_ENV}, "
                           "else downloaded once into the cache"),
            "train_limit": _TRAIN_LIMIT, "test_limit": _TEST_LIMIT, "seed": _SEED,
        }),
        "GSM8K grade-school maths (7,473 train, 1,319 test). x: question; y: thinking, answer (float). "
        f"Read from `path`, else ${GSM8K_PATH_ENV}, else downloaded once into the cache. "
        "train_limit/test_limit take a sample seeded by `seed` (default 0).",
        provides=({"question": "str"}, {"thinking": "str", "answer": "float"}),
    ),
    "clinc150": Loader(
        "icldsl.datasets.clinc150:load",
        Signature.declare({
            "path": Option(str, doc=f"a directory with data_full.json and domains.json; else "
                           f"${CLINC150_PATH_ENV}, else downloaded once into the cache"),
            "domain": Option(str, doc="keep one domain's 15 intents"),
            "train_per_intent": Option(AtLeast(int, 1), doc="train on a seeded sample of each intent's queries"),
            "test_per_intent": Option(AtLeast(int, 1), doc="test on a seeded sample of each intent's queries"),
            "oos": Option(bool, False, f"add out-of-scope queries as the intent \"{OOS}\", at the same rates"),
            "seed": _SEED,
        }),
        "CLINC150 intents (Larson et al. 2019, CC BY 3.0): 150 intents in 10 domains, 100 train and 30 test "
        "queries each. x: query; y: intent. `domain` keeps one domain's 15 intents; train_per_intent/"
        "test_per_intent sample each intent (seeded by `seed`); `oos: true` adds out-of-scope queries as the "
        f"intent \"{OOS}\". Read from `path`, else ${CLINC150_PATH_ENV}, else downloaded once into the cache.",
        provides=({"query": "str"}, {"intent": "label"}),
    ),
    "jsonl": _file_loader(
        "jsonl", {},
        "Examples from a JSONL file (the first argument), one object per line holding the input and "
        "output fields."),
    "json": _file_loader(
        "json", {"key": Option(str, doc="the dotted key of the array of rows in the file's object (\"data.rows\")")},
        "Examples from a JSON file (the first argument) holding an array of objects, or an object "
        "whose `key` (dotted for nested objects: \"data.rows\") holds that array."),
    "csv": _file_loader(
        "csv", {"delimiter": Option(CHARACTER, doc="the cell separator: a comma, or a tab for .tsv files")},
        "Examples from a CSV file (the first argument) whose first line names the columns; `delimiter` "
        "defaults to a comma (a tab for .tsv). Cells are text, converted to each field's type; lists and "
        "models are written as JSON, and an empty cell is null for an optional field."),
})
