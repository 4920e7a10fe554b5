"""The language package (parser, IR, checker, compiler, catalogue, ...) stands alone: no module
under icldsl/language imports the back ends that implement what it names, at the top or inside
a function, so checking a file never needs them and they can change without it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "icldsl"
BACK_ENDS = ("icldsl.runtime", "icldsl.training", "icldsl.lm", "icldsl.datasets")


def imported(path: Path) -> list[tuple[int, str]]:
    """Every module `path` imports, with its line: absolute names, relative ones resolved."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            # `from .. import training` imports a module as a name: then the name is the module
            found += [(node.lineno, base)] if _back_end(base) else \
                [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def _back_end(name: str) -> bool:
    return any(name == b or name.startswith(b + ".") for b in BACK_ENDS)


def offences(path: Path) -> list[str]:
    return [f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}" for line, name in sorted(imported(path))
            if _back_end(name)]


def test_the_walk_sees_relative_absolute_and_nested_imports(tmp_path: Path, monkeypatch) -> None:
    fake = tmp_path / "icldsl" / "language" / "checker"
    fake.mkdir(parents=True)
    (fake / "rules.py").write_text("from ...training.registry import X\nimport icldsl.lm.base\n"
                                   "def f():\n    from ... import datasets\n    from ..options import Option\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path / "icldsl")
    assert offences(fake / "rules.py") == ["icldsl/language/checker/rules.py:1 imports icldsl.training.registry",
                                           "icldsl/language/checker/rules.py:2 imports icldsl.lm.base",
                                           "icldsl/language/checker/rules.py:4 imports icldsl.datasets"]


@pytest.mark.parametrize("path", sorted((PACKAGE / "language").rglob("*.py")),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_language_package_imports_no_back_end(path: Path) -> None:
    assert offences(path) == []
