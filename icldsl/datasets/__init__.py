"""Loading a `data` block's examples with the loader it names; the loaders and their options are
declared in `icldsl.language.catalogue.loaders`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from icldsl.datasets.base import DataError, Dataset, Example
from icldsl.language.catalogue.loaders import LOADERS
from icldsl.language.options import implementation

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["DataError", "Dataset", "Example", "load_dataset"]


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
    return implementation(entry.load)(name, args, base_dir=base_dir, x_model=x_model, y_model=y_model)
