"""The LM cache through the command line: re-runs, --offline, --no-cache, `icldsl cache`, usage."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from icldsl import artifact
from icldsl.cli import main
from icldsl.lm.cache import LMCache, default_path
from tests.loopback import LoopbackServer
from tests.adder import answer_with_examples_only, write_adder
from tests.cli.test_cli import run_cli

# 4 test (untrained) + 3 val + 2 epochs x (9 train + 3 val) + 4 test (trained), no two alike
CALLS = 35


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with LoopbackServer(answer_with_examples_only) as server:
        write_adder(tmp_path, server.openai_url)
        monkeypatch.chdir(tmp_path)
        yield tmp_path, server


def usage_rows(out: str) -> dict[str, list[str]]:
    """The usage table's rows by label: calls, cached, failed, tokens in, tokens out, latency x3."""
    lines = out[out.index("LM usage"):].splitlines()[1:]
    rows = {}
    for line in lines:
        if not line.startswith("  "):
            break
        kind, name, *cells = line.split()
        rows[f"{kind} {name}"] = cells
    return rows


def test_a_second_fit_makes_no_lm_call_and_writes_the_same_bytes(project, capsys) -> None:
    tmp_path, server = project
    assert main(["fit", "adder.icl", "--quiet", "-o", "first.json"]) == 0
    first_out = capsys.readouterr().out
    assert len(server.requests) == CALLS
    assert usage_rows(first_out)["step adder/total"][:3] == [str(CALLS), "0", "0"]

    assert main(["fit", "adder.icl", "--quiet", "-o", "second.json"]) == 0
    second_out = capsys.readouterr().out
    assert len(server.requests) == CALLS  # none more
    assert (tmp_path / "first.json").read_bytes() == (tmp_path / "second.json").read_bytes()
    rows = usage_rows(second_out)
    assert rows["step adder/total"][:3] == [str(CALLS), str(CALLS), "0"]
    assert rows["lm solver"][:3] == [str(CALLS), str(CALLS), "0"]
    assert rows["step adder/total"][5:] == ["-", "-", "-"]  # no call reached the LM, so no latency
    # Tokens are what the calls cost when they were made.
    assert rows["step adder/total"][3:5] == usage_rows(first_out)["step adder/total"][3:5]


def test_the_artifact_keeps_deterministic_usage_per_step_and_lm(project, capsys) -> None:
    tmp_path, server = project
    assert main(["fit", "adder.icl", "--quiet"]) == 0
    record = artifact.read(tmp_path / "adder.artifact.json")["training"]
    prompt = sum(r.json and sum(len(m["content"].split()) for m in r.messages) for r in server.requests)
    expected = {"calls": CALLS, "failures": 0, "prompt_tokens": prompt,
                "completion_tokens": record["total_usage"]["completion_tokens"]}
    assert record["total_usage"] == expected
    assert record["usage_by_step"] == {"adder/total": expected}
    assert record["usage_by_lm"] == {"solver": expected}
    assert record["usage"]["calls"] == CALLS - 8  # the training loop alone: no test-set calls
    text = json.dumps(record)
    assert "latenc" not in text and "cache" not in text


def test_offline_with_an_empty_cache_says_how_many_calls_were_missing(project, capsys) -> None:
    tmp_path, server = project
    assert main(["fit", "adder.icl", "--quiet", "--offline"]) == 1
    captured = capsys.readouterr()
    assert server.requests == []
    assert f"{CALLS} LM calls were missing from the cache and --offline forbids making them" in captured.err
    assert "no artifact written" in captured.err
    assert not (tmp_path / "adder.artifact.json").exists()
    assert usage_rows(captured.out)["step adder/total"][:3] == [str(CALLS), "0", str(CALLS)]

    assert main(["eval", "adder.icl", "--quiet", "--offline"]) == 1
    assert "4 LM calls were missing from the cache" in capsys.readouterr().err


def test_offline_after_a_fit_replays_it_and_run_fails_plainly_on_a_new_input(project, capsys) -> None:
    tmp_path, server = project
    assert main(["fit", "adder.icl", "--quiet"]) == 0
    assert main(["fit", "adder.icl", "--quiet", "--offline", "-o", "offline.json"]) == 0
    assert (tmp_path / "offline.json").read_bytes() == (tmp_path / "adder.artifact.json").read_bytes()
    assert main(["eval", "adder.icl", "--quiet", "--offline", "--artifact", "adder.artifact.json"]) == 0
    assert len(server.requests) == CALLS
    capsys.readouterr()

    assert main(["run", "adder.artifact.json", "--offline", "--input", '{"question": "20+22"}']) == 1
    err = capsys.readouterr().err
    assert "offline, and this call is not in the cache" in err and "Traceback" not in err
    assert main(["run", "adder.artifact.json", "--input", '{"question": "20+22"}']) == 0
    assert main(["run", "adder.artifact.json", "--offline", "--input", '{"question": "20+22"}']) == 0
    assert json.loads(capsys.readouterr().out.split("}\n")[-2] + "}") == {"answer": 42.0}
    assert len(server.requests) == CALLS + 1


def test_no_cache_neither_reads_nor_writes(project, capsys) -> None:
    tmp_path, server = project
    assert main(["fit", "adder.icl", "--quiet"]) == 0
    with LMCache(default_path()) as cache:
        before = cache.stats().entries
    assert before == CALLS
    assert main(["fit", "adder.icl", "--quiet", "--no-cache", "-o", "b.json"]) == 0
    assert main(["eval", "adder.icl", "--quiet", "--no-cache"]) == 0
    assert len(server.requests) == 2 * CALLS + 4
    with LMCache(default_path()) as cache:
        assert cache.stats().entries == before
    assert (tmp_path / "b.json").read_bytes() == (tmp_path / "adder.artifact.json").read_bytes()


def test_no_cache_and_offline_exclude_each_other(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["fit", "x.icl", "--no-cache", "--offline"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_cache_stats_and_clear(project, capsys) -> None:
    tmp_path, server = project
    assert main(["cache", "stats"]) == 0
    assert capsys.readouterr().out.startswith("no LM cache at")
    assert main(["fit", "adder.icl", "--quiet"]) == 0
    assert main(["fit", "adder.icl", "--quiet"]) == 0
    capsys.readouterr()

    assert main(["cache", "stats"]) == 0
    out = capsys.readouterr().out
    assert f"{default_path()}: {CALLS} entries" in out and "on disk" in out
    row = next(line.split() for line in out.splitlines() if line.strip().startswith("openai/loopback"))
    assert row[0] == "openai/loopback" and row[1] == str(CALLS)
    assert row[-2:] == [str(CALLS), str(CALLS)]  # hits (second fit), misses (first fit)

    assert main(["cache", "clear", "--model", "openai/other"]) == 1
    assert "models in it: openai/loopback" in capsys.readouterr().err
    assert main(["cache", "clear", "--model", "openai/loopback"]) == 0
    assert f"removed {CALLS} entries of openai/loopback" in capsys.readouterr().out
    assert main(["cache", "stats"]) == 0
    assert "0 entries" in capsys.readouterr().out
    assert main(["fit", "adder.icl", "--quiet"]) == 0
    assert len(server.requests) == 2 * CALLS  # cleared, so called again
    assert main(["cache", "clear"]) == 0
    assert f"removed {CALLS} entries from" in capsys.readouterr().out


def test_eval_shows_usage_per_step_and_lm(project, capsys) -> None:
    assert main(["eval", "adder.icl", "--quiet"]) == 0
    rows = usage_rows(capsys.readouterr().out)
    assert set(rows) == {"step adder/total", "lm solver"}
    assert rows["lm solver"][:3] == ["4", "0", "0"]
    assert all(cell.endswith("ms") or cell.endswith("s") for cell in rows["lm solver"][5:])


def test_an_unusable_cache_file_is_a_clear_error(project, capsys) -> None:
    path = default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"garbage" * 500)
    assert main(["fit", "adder.icl", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "error: the LM cache" in err and "unusable" in err and os.environ["ICLDSL_CACHE_DIR"] in err


@pytest.mark.parametrize("args", [("cache", "--help"), ("cache", "stats", "--help"), ("cache", "clear", "--help")])
def test_cache_verbs_have_help(args) -> None:
    result = run_cli(*args)
    assert result.returncode == 0 and f"usage: icldsl {' '.join(args[:-1])}" in result.stdout
