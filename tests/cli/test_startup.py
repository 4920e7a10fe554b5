"""What `icldsl check` loads as it starts: none of the heavy libraries the runtime needs, and
the parser's tables from the user's cache (whatever that file holds). Its speed is measured
in bench/startup.py, not here."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import lark
import pytest

from icldsl.language import ir, parser
from icldsl.paths import cache_root
from icldsl.language.source import Source

ROOT = Path(__file__).resolve().parents[2]
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
    assert "lark" in modules and "icldsl.language.compiler" in modules  # the list is of what the command loaded
    assert [m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY] == []


def test_check_of_a_pattern_loads_only_the_regex_engine_that_runs_it(tmp_path: Path) -> None:
    program = tmp_path / "p.icl"
    program.write_text(GSM8K.read_text(encoding="utf-8").replace("question: str", 'question: str(pattern: "\\\\S")', 1),
                       encoding="utf-8")
    assert "pattern" in program.read_text(encoding="utf-8")
    modules = loaded_by(tmp_path, "check", str(program))
    assert "pydantic_core" in modules  # pydantic's engine judges the pattern (icldsl.language.patterns)
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


@pytest.mark.parametrize("content", [b"", b"not a cache\n", b'{"key": "0", "data": {}, "memo": {}}', b"\xff" * 5000,
                                     b"[" * 100_000, b'{"key": 1}'],
                         ids=["empty", "text", "another key", "binary", "deep", "a number for key"])
def test_a_stale_or_corrupt_cache_is_rebuilt(fresh_parser: Path, content: bytes) -> None:
    expected = parses()
    key = json.loads(fresh_parser.read_bytes())["key"]
    parser._lark.cache_clear()
    fresh_parser.write_bytes(content)
    assert parses() == expected
    assert json.loads(fresh_parser.read_bytes())["key"] == key


def test_a_cache_with_the_right_key_but_damaged_tables_is_rebuilt(fresh_parser: Path) -> None:
    expected = parses()
    whole = fresh_parser.read_bytes()
    parser._lark.cache_clear()
    fresh_parser.write_bytes(whole[: len(whole) // 2])
    assert parses() == expected
    key = json.loads(whole)["key"]
    assert parser._cached(fresh_parser.read_bytes(), key) is not None  # written whole again


@pytest.fixture
def builds(monkeypatch) -> list[int]:
    """One entry per parser built from the grammar (not read from the cache)."""
    built: list[int] = []
    build = lark.Lark.__init__

    def counting(self, *args, **kwargs):
        built.append(1)
        build(self, *args, **kwargs)

    monkeypatch.setattr(lark.Lark, "__init__", counting)
    return built


class Planted:
    """Unpickling this runs code: it writes the file it names."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_a_planted_pickle_never_runs(fresh_parser: Path, tmp_path: Path, builds: list[int]) -> None:
    expected = parses()
    key = json.loads(fresh_parser.read_bytes())["key"]
    marker = tmp_path / "ran"
    payload = pickle.dumps(Planted(marker))
    for name, content in [(parser.CACHE_NAME, payload), (parser.CACHE_NAME, f"{key}\n".encode() + payload),
                          ("parser.lark", f"{key}\n".encode() + payload)]:  # the old pickled cache's name
        (fresh_parser.parent / name).write_bytes(content)
        (fresh_parser.parent / name).chmod(0o600)
        parser._lark.cache_clear()
        assert parses() == expected
    assert not marker.exists()
    assert len(builds) == 3  # built at first, then for each damaged file; the old name is never read


def test_a_forged_json_cache_sets_no_hooks(fresh_parser: Path, builds: list[int]) -> None:
    """A file with the right key naming hooks (a post-lexer, lexer callbacks, a tree class) is
    read as data: the hooks are the parser's own, and the parse is the grammar's."""
    expected = parses()
    tables = json.loads(fresh_parser.read_bytes())
    tables["data"]["options"].update(postlex={"__type__": "Rule"}, lexer_callbacks={"NAME": "os.system"},
                                     tree_class="os.system", transformer="os.system", _plugins={"x": 1})
    fresh_parser.write_text(json.dumps(tables), encoding="utf-8")
    fresh_parser.chmod(0o600)
    parser._lark.cache_clear()
    assert parses() == expected
    assert builds == [1]  # only the first build; the forged file was read, as data


def test_a_cache_others_could_have_written_is_not_read(fresh_parser: Path, builds: list[int]) -> None:
    parses()
    fresh_parser.chmod(0o666)
    parser._lark.cache_clear()
    parses()
    assert len(builds) == 2
    assert fresh_parser.stat().st_mode & 0o777 == 0o600  # rebuilt, and written as the user's own


def test_a_symlinked_cache_file_is_not_read(fresh_parser: Path, tmp_path: Path, builds: list[int], monkeypatch) -> None:
    parses()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (elsewhere / parser.CACHE_NAME).symlink_to(fresh_parser)
    monkeypatch.setenv("ICLDSL_CACHE_DIR", str(elsewhere))
    parser._lark.cache_clear()
    parses()
    assert len(builds) == 2
    assert not (elsewhere / parser.CACHE_NAME).is_symlink()  # replaced by the user's own file


def test_a_symlinked_cache_folder_is_not_used(fresh_parser: Path, tmp_path: Path, builds: list[int], monkeypatch) -> None:
    parses()
    link = tmp_path / "link"
    link.symlink_to(fresh_parser.parent)
    monkeypatch.setenv("ICLDSL_CACHE_DIR", str(link))
    parser._lark.cache_clear()
    parses()
    assert len(builds) == 2


def test_a_group_writable_cache_folder_is_not_used(fresh_parser: Path, builds: list[int]) -> None:
    parses()
    before = fresh_parser.stat().st_mtime_ns
    fresh_parser.parent.chmod(0o775)
    parser._lark.cache_clear()
    parses()
    assert len(builds) == 2
    assert fresh_parser.stat().st_mtime_ns == before  # nothing written where others could change it


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="giving a file away needs root")
def test_a_cache_file_of_another_user_is_not_read(fresh_parser: Path, builds: list[int]) -> None:
    parses()
    os.chown(fresh_parser, 65534, 65534)
    parser._lark.cache_clear()
    parses()
    assert len(builds) == 2


def test_a_fifo_in_place_of_the_cache_does_not_hang(fresh_parser: Path, builds: list[int]) -> None:
    fresh_parser.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(fresh_parser, 0o600)
    assert parses()  # opened without blocking, refused as not a regular file
    assert builds == [1]


def test_an_unwritable_cache_folder_only_costs_the_build(fresh_parser: Path, monkeypatch, tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setenv("ICLDSL_CACHE_DIR", str(blocked / "below"))  # below a file: cannot be made
    assert parses()


@pytest.mark.parametrize("damage", ["data a list", "unknown class", "memo missing", "bad regex", "no states"])
def test_tables_damaged_in_any_shape_are_refused_as_data(fresh_parser: Path, damage: str) -> None:
    parses()
    tables = json.loads(fresh_parser.read_bytes())
    terminal = [t for t in tables["memo"].values() if t["__type__"] == "TerminalDef" and "_width" in t["pattern"]][-1]
    if damage == "data a list":
        tables["data"] = []
    elif damage == "unknown class":
        terminal["pattern"]["__type__"] = "Popen"  # lark builds only the classes it names itself
    elif damage == "memo missing":
        tables["memo"] = {}
    elif damage == "bad regex":
        terminal["pattern"]["value"] = "(("
    else:
        del tables["data"]["parser"]["parser"]["states"]
    assert parser._cached(json.dumps(tables).encode(), tables["key"]) is None
