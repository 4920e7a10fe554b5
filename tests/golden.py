"""Compare text with a golden file, or rewrite it under --update-golden."""

from __future__ import annotations

from pathlib import Path


def assert_golden(actual: str, path: Path, update: bool) -> None:
    if update or not path.exists():
        path.write_text(actual, encoding="utf-8")
        if not update:
            raise AssertionError(f"golden file {path.name} did not exist; written, review it and rerun")
        return
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"output differs from {path.name}; rerun with --update-golden and review the diff"
