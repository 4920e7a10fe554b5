"""What `icldsl check` loads as it starts: none of the heavy libraries the runtime needs, and
the parser's tables from the user's cache (whatever that file holds). Its speed is measured
in bench/startup.py, not here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lark
import pytest

from icldsl import ir, parser
from icldsl.paths import cache_root
from icldsl.source import Source

ROOT = Path(__file__).resolve().parents[1]
GSM8K = ROOT / "programs" / "gsm8k.icl"
HEAVY = ("numpy", "httpx", "jinja2", "urllib.request", "llama_cpp", "pydantic")

# Runs the command, then writes the names of every module it loaded to the file first named.
LOADED = """
import sys
from icldsl.cli import main
code = main(sys.argv[2:])
open(sys.argv[1], "w").write("\\n".join(sorted(sys.modules)))
sys.exit(code)
"""


def loaded_by(tmp_path: Path, *args: str) -> set[str]:
    out = tmp_path / "modules.txt"
    result = subprocess.run([sys.executable, "-c", LOADED, str(out), *args], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    return set(out.read_text(encoding="utf-8").split())


def test_check_loads_no_heavy_library(tmp_path: Path) -> None:
    modules = loaded_by(tmp_path, "check", str(GSM8K))
    assert "lark" in modules and "icldsl.compiler" in modules  # the list is of what the command loaded
    assert [m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY] == []


def test_check_of_a_pattern_loads_only_the_regex_engine_that_runs_it(tmp_path: Path) -> None:
    program = tmp_path / "p.icl"
    program.write_text(GSM8K.read_text(encoding="utf-8").replace("question: str", 'question: str(pattern: "\\\\S")', 1),
                       encoding="utf-8")
    assert "pattern" in program.read_text(encoding="utf-8")
    modules = loaded_by(tmp_path, "check", str(program))
    assert "pydantic_core" in modules  # pydantic's engine judges the pattern (icldsl.patterns)
    assert [m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY] == []


@pytest.fixture
def fresh_parser():
    """The parser built or read again by the next `parse`, and forgotten after the test."""
    parser._lark.cache_clear()
    yield cache_root() / parser.CACHE_NAME
    parser._lark.cache_clear()


def parses() -> str:
    return ir.dump(parser.parse(Source.from_path(GSM8K)))


def test_the_parser_tables_are_cached_then_read_back(fresh_parser: Path, monkeypatch) -> None:
    built = parses()
    assert fresh_parser.is_file() and fresh_parser.stat().st_mode & 0o777 == 0o600
    parser._lark.cache_clear()

    def building(*args, **kwargs):
        raise AssertionError("the parser was built, not read from the cache")

    monkeypatch.setattr(lark.Lark, "__init__", building)
    assert parses() == built


@pytest.mark.parametrize("content", [b"", b"not a cache\n", b"0" * 64 + b"\n" + b"\x80\x05garbage", b"\xff" * 5000],
                         ids=["empty", "text", "another key", "binary"])
def test_a_stale_or_corrupt_cache_is_rebuilt(fresh_parser: Path, content: bytes) -> None:
    expected = parses()
    key = fresh_parser.read_bytes().split(b"\n", 1)[0]
    parser._lark.cache_clear()
    fresh_parser.write_bytes(content)
    assert parses() == expected
    assert fresh_parser.read_bytes().split(b"\n", 1)[0] == key


def test_a_cache_with_the_right_key_but_a_damaged_pickle_is_rebuilt(fresh_parser: Path) -> None:
    expected = parses()
    whole = fresh_parser.read_bytes()
    parser._lark.cache_clear()
    fresh_parser.write_bytes(whole[: len(whole) // 2])
    assert parses() == expected
    key = whole.split(b"\n", 1)[0].decode()
    assert parser._cached(fresh_parser, key) is not None  # written whole again


def test_a_cache_others_could_have_written_is_not_loaded(fresh_parser: Path, monkeypatch) -> None:
    parses()
    fresh_parser.chmod(0o666)
    parser._lark.cache_clear()
    monkeypatch.setattr(lark.Lark, "load", classmethod(lambda cls, f: pytest.fail("an unsafe cache was loaded")))
    parses()
    assert fresh_parser.stat().st_mode & 0o777 == 0o600  # rebuilt, and written as the user's own


def test_an_unwritable_cache_folder_only_costs_the_build(fresh_parser: Path, monkeypatch, tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setenv("ICLDSL_CACHE_DIR", str(blocked / "below"))  # below a file: cannot be made
    assert parses()
