"""Shared fixtures: golden-file updating, the shared GSM8K copy, scripted LMs."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_GSM8K = ROOT.parent / "shared" / "datasets" / "gsm8k"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="rewrite golden files from the current output")


@pytest.fixture(autouse=True)
def _own_lm_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets an empty LM cache of its own, never the user's (~/.cache/icldsl)."""
    directory = tmp_path_factory.mktemp("lm-cache")
    monkeypatch.setenv("ICLDSL_CACHE_DIR", str(directory))
    return directory


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture
def gsm8k_dir() -> Path:
    if not (SHARED_GSM8K / "test.jsonl").is_file():
        pytest.skip(f"no GSM8K copy at {SHARED_GSM8K}")
    return SHARED_GSM8K
