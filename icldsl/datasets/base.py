"""Examples, datasets and the error a bad row raises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from icldsl.errors import Error


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled example: the program's input `x`, the expected output `y`.

    `origin` says where it came from, as `file:line` (or `name:index` for data
    that has no file), so a learned few-shot example can be traced to its row.
    """

    x: Mapping[str, Any]
    y: Mapping[str, Any]
    origin: str


@dataclass(frozen=True, slots=True)
class Dataset:
    """The training and test examples of one `data` block."""

    name: str
    train: tuple[Example, ...]
    test: tuple[Example, ...]


class DataError(Error):
    """A dataset that cannot be loaded; names the file and line when there is one."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        place = file if line is None else f"{file}:{line}"
        super().__init__(f"{place}: {message}" if place else message)
        self.file = file
        self.line = line
