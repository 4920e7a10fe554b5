"""The built-in CLINC150 loader: intent classification of short user queries.

CLINC150 (Larson et al., "An Evaluation Dataset for Intent Classification and
Out-of-Scope Prediction", EMNLP-IJCNLP 2019; github.com/clinc/oos-eval, CC BY 3.0):
150 intents in 10 domains, 100 training and 30 test queries each, and out-of-scope
queries (intent `oos`). Each row becomes x = {"query"}, y = {"intent"}.

`domain` keeps one domain's 15 intents; `train_per_intent` and `test_per_intent` take
a seeded sample of each intent's queries (a smaller sample is a prefix of a larger one,
as `rows.sample` does), and `oos: true` adds out-of-scope queries as one more intent,
sampled at the same rates.
"""

from __future__ import annotations

import json
import logging
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from icldsl.datasets.base import DataError, Dataset
from icldsl.datasets.download import Published
from icldsl.datasets.files import element_lines
from icldsl.datasets.rows import check_options, read_text, sample, to_examples
from icldsl.language.catalogue.loaders import CLINC150_PATH_ENV, LOADERS, OOS

if TYPE_CHECKING:
    from pydantic import BaseModel

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://raw.githubusercontent.com/clinc/oos-eval/master/data"
DATA_FILE, DOMAINS_FILE = "data_full.json", "domains.json"
FILES = (DATA_FILE, DOMAINS_FILE)
SOURCE = Published("clinc150", "CLINC150", FILES, CLINC150_PATH_ENV, DEFAULT_BASE_URL)


def load(
    name: str,
    args: Mapping[str, Any],
    *,
    base_dir: Path,
    x_model: type[BaseModel],
    y_model: type[BaseModel],
    base_url: str | None = None,
) -> Dataset:
    """Load CLINC150 as the `data` block `name`, every row validated by `x_model` and `y_model`."""
    opts = check_options("clinc150", args, LOADERS["clinc150"].signature)
    directory = SOURCE.find(opts.get("path"), base_dir=base_dir, base_url=base_url)
    domains = _read_domains(directory / DOMAINS_FILE)
    intents = _intents(domains, opts.get("domain"), directory / DOMAINS_FILE)
    if opts["oos"]:
        intents.append(OOS)
    _check_labels(intents, y_model, opts.get("domain"))
    path = directory / DATA_FILE
    text = read_text(path)
    doc = _parse(text, path)
    seed = opts["seed"]
    splits = []
    for split, per_intent in (("train", opts.get("train_per_intent")), ("test", opts.get("test_per_intent"))):
        keys = (split, f"{OOS}_{split}")
        rows = [(line, {"query": query, "intent": intent})
                for key in keys for line, (query, intent) in zip(element_lines(text, (key,)), doc[key])
                if intent in intents]
        chosen = {line for intent in intents
                  for line, _ in sample([r for r in rows if r[1]["intent"] == intent], per_intent, seed)}
        kept = sorted((r for r in rows if r[0] in chosen), key=lambda r: r[0])
        splits.append(tuple(to_examples(kept, x_model, y_model, file=str(path), origin=f"{name}:{DATA_FILE}")))
    dataset = Dataset(name, *splits)
    log.info("loaded clinc150 from %s: %d intents, %d train, %d test", directory, len(intents),
             len(dataset.train), len(dataset.test))
    return dataset


def _parse(text: str, path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg} (column {exc.colno})", file=str(path), line=exc.lineno) from exc
    for key in ("train", "test", f"{OOS}_train", f"{OOS}_test"):
        rows = doc.get(key) if isinstance(doc, dict) else None
        if not isinstance(rows, list) or not all(
                isinstance(r, list) and len(r) == 2 and all(isinstance(v, str) for v in r) for r in rows):
            raise DataError(f"'{key}' should be a list of [query, intent] pairs", file=str(path))
    return doc


def _read_domains(path: Path) -> dict[str, list[str]]:
    try:
        doc = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg} (column {exc.colno})", file=str(path), line=exc.lineno) from exc
    if not isinstance(doc, dict) or not all(
            isinstance(v, list) and all(isinstance(i, str) for i in v) for v in doc.values()):
        raise DataError("expected an object of domain -> list of intents", file=str(path))
    return doc


def _intents(domains: Mapping[str, list[str]], domain: str | None, path: Path) -> list[str]:
    if domain is None:
        return [intent for intents in domains.values() for intent in intents]
    if domain not in domains:
        raise DataError(f"clinc150 loader: unknown domain '{domain}' (domains: {', '.join(domains)})",
                        file=str(path))
    return list(domains[domain])


def _check_labels(intents: list[str], y_model: type[BaseModel], domain: str | None) -> None:
    """Refuse, before reading any row, an `intent` enum that leaves out intents the data holds."""
    field = y_model.model_fields.get("intent")
    if field is None or typing.get_origin(field.annotation) is not typing.Literal:
        return  # a str field takes any intent; a missing one is the row validation's to report
    labels = typing.get_args(field.annotation)
    missing = [i for i in intents if i not in labels]
    if missing:
        chosen = f"domain '{domain}'" if domain else "CLINC150"
        raise DataError(f"the output's `intent` labels leave out {len(missing)} intent(s) of {chosen}: "
                        f"{', '.join(missing)}; list them in the enum, or choose another `domain`")
