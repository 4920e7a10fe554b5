"""Shared fixtures: golden-file updating, the shared GSM8K and CLINC150 copies, the adder project."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.adder import answer_with_examples_only, write_adder
from tests.loopback import LoopbackServer

ROOT = Path(__file__).resolve().parents[1]
SHARED_GSM8K = ROOT.parent / "shared" / "datasets" / "gsm8k"
SHARED_CLINC150 = ROOT.parent / "shared" / "datasets" / "clinc150"


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


@pytest.fixture
def clinc150_dir() -> Path:
    if not (SHARED_CLINC150 / "data_full.json").is_file():
        pytest.skip(f"no CLINC150 copy at {SHARED_CLINC150}")
    return SHARED_CLINC150


@pytest.fixture
def shared_datasets(gsm8k_dir: Path, clinc150_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The built-in loaders read the shared copies, as the README's commands do."""
    monkeypatch.setenv("ICLDSL_GSM8K_PATH", str(gsm8k_dir))
    monkeypatch.setenv("ICLDSL_CLINC150_PATH", str(clinc150_dir))


@pytest.fixture
def project(tmp_path: Path):
    """The adder project (tests/adder.py) in `tmp_path`, its LM a loopback server answering
    right only with few-shot examples: (tmp_path, the server)."""
    with LoopbackServer(answer_with_examples_only) as server:
        write_adder(tmp_path, server.openai_url)
        yield tmp_path, server
