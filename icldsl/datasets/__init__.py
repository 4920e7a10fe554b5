"""Dataset loaders by name, as a `data` block's `from` clause names them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from icldsl.datasets import clinc150, files, gsm8k
from icldsl.datasets.base import DataError, Dataset, Example
from icldsl.datasets.rows import option_problems

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["LOADERS", "DataError", "Dataset", "Example", "Loader", "load_dataset"]


@dataclass(frozen=True, slots=True)
class Loader:
    """A loader's options (name -> str/int/float/bool or dict[str, str]), its positional names,
    and its `load`.

    `load(name, args, *, base_dir, x_model, y_model) -> Dataset`, with `args` keyed by option name.
    """

    options: Mapping[str, type]
    positional: tuple[str, ...]
    load: Callable[..., Dataset]
    doc: str
    required: tuple[str, ...] = ()
    # The fields a loader with a fixed shape gives (input, expected output): field -> type
    # name, so the checker can match them with the program's models before anything runs.
    provides: tuple[Mapping[str, str], Mapping[str, str]] | None = None
    # (option, why) for option values that cannot work, so `check` reports what `load` would raise.
    problems: Callable[[Mapping[str, Any]], list[tuple[str, str]]] = option_problems


LOADERS: Mapping[str, Loader] = MappingProxyType(
    {
        "gsm8k": Loader(MappingProxyType(dict(gsm8k.OPTIONS)), (), gsm8k.load, gsm8k.DOC,
                        provides=({"question": "str"}, {"thinking": "str", "answer": "float"})),
        "clinc150": Loader(MappingProxyType(dict(clinc150.OPTIONS)), (), clinc150.load, clinc150.DOC,
                           provides=({"query": "str"}, {"intent": "label"})),
        **{
            fmt.name: Loader(fmt.options, ("path",), fmt.load, fmt.doc, ("path",))
            for fmt in files.FORMATS.values()
        },
    }
)


def load_dataset(
    name: str,
    loader: str,
    args: Mapping[str, Any],
    *,
    base_dir: Path,
    x_model: type[BaseModel],
    y_model: type[BaseModel],
) -> Dataset:
    """Load the `data` block `name` with `loader`; every row is validated before it returns."""
    entry = LOADERS.get(loader)
    if entry is None:
        raise DataError(f"unknown dataset loader '{loader}' (known: {', '.join(sorted(LOADERS))})")
    return entry.load(name, args, base_dir=base_dir, x_model=x_model, y_model=y_model)
