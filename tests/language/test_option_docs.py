"""The docs' provider and loader option tables are checked against the declarations
(`icldsl.language.catalogue`): every declared option is named where its provider or loader is
described, and the defaults the tables give are the declared ones."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from icldsl.language.catalogue.lms import DECODING_OPTIONS, HTTP_OPTIONS, PROVIDERS
from icldsl.language.catalogue.loaders import LOADERS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def table(page: str) -> dict[str, list[str]]:
    """The rows of a page's tables, by their first cell (without its backquotes), as cells."""
    rows = {}
    for line in page.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[re.match(r"`([a-z_0-9]+)", cells[0]).group(1)] = cells
    return rows


PROVIDERS_PAGE = (DOCS / "providers.md").read_text(encoding="utf-8")
DATA_PAGE = (DOCS / "language" / "data.md").read_text(encoding="utf-8")
ROWS = table(PROVIDERS_PAGE)


def _default_words(value: object) -> str:
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_each_provider_row_names_its_declared_options(provider: str) -> None:
    header = next(line for line in PROVIDERS_PAGE.splitlines() if line.startswith("| provider |"))
    assert all(f"`{name}`" in header for name in DECODING_OPTIONS)
    row = " | ".join(ROWS[provider])
    for option in PROVIDERS[provider].client_options.options:
        if option in HTTP_OPTIONS:
            assert "HTTP options" in row and option in ROWS, (provider, option)
        else:
            assert f"`{option}`" in row, (provider, option)


def test_the_http_table_gives_the_declared_defaults() -> None:
    for option, declared in HTTP_OPTIONS.items():
        cell = ROWS[option][-1]
        assert cell.startswith(_default_words(declared.default)), (option, cell)
        for provider, spec in PROVIDERS.items():  # a provider's own default is named beside it
            own = spec.client_options.defaults.get(option)
            if option in spec.client_options.options and own != declared.default:
                assert f"(`{provider}`: {_default_words(own)})" in cell, (provider, option, cell)


def test_the_local_row_gives_the_declared_defaults() -> None:
    row = ROWS["local"][-1]
    for option, default in PROVIDERS["local"].client_options.defaults.items():
        described = row[row.index(f"`{option}` ("):]
        assert str(default) in described[:described.index(")")], option


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_each_loader_row_names_its_declared_options(loader: str) -> None:
    signature = LOADERS[loader].signature
    rows = table(DATA_PAGE)
    row = " | ".join(rows[loader])
    file_options = DATA_PAGE[DATA_PAGE.index("The file options:"):].split("\n\n")[0]
    for option in signature.options:
        if option in signature.positional:
            assert row.startswith(f'`{loader}("'), (loader, option)  # the file, first
        elif "the file options" in row:
            assert f"`{option}`" in row or f"`{option}`" in file_options, (loader, option)
        else:
            assert f"`{option}`" in row, (loader, option)
    if "the file options" in row:
        assert f"default {signature.defaults['split']}" in file_options
