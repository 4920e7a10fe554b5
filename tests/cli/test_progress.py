"""Progress bars: one per evaluation and per epoch, redrawn on a terminal, one finished line
per pass otherwise, nothing with --quiet; an epoch's batches count as one pass."""

from __future__ import annotations

import asyncio
import io
import json

import numpy as np

from icldsl.cli import main
from icldsl.cli.progress import ProgressLine
from icldsl.training.optimizers import RandomFewShot
from icldsl.training.trainer import fit
from tests.loopback import LoopbackServer
from tests.scripted import ScriptedLM
from tests.test_report import CLI_SOURCE, loopback_answer


class Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_line_has_bar_counts_percent_reward_rate_time_left_and_cache_hits() -> None:
    line = ProgressLine.line("epoch 1", 10, 40, 0.5123, elapsed=5.0, cache_hits=3)
    assert line == ("epoch 1              [██████░░░░░░░░░░░░░░░░░░] 10/40  25%  reward 0.512  2.0 ex/s  5s  "
                    "~15s left  cache 3 hits")
    done = ProgressLine.line("val 1", 40, 40, 1.0, elapsed=70.0)
    assert done.startswith("val 1                [████████████████████████] 40/40 100%  reward 1.000")
    assert done.endswith("0.6 ex/s  1m10s") and "left" not in done and "cache" not in done
    start = ProgressLine.line("test", 0, 8, 0.0, elapsed=0.0)
    assert start == "test                 [░░░░░░░░░░░░░░░░░░░░░░░░] 0/8   0%  reward 0.000  0s"
    assert "cache 1 hit" in ProgressLine.line("x", 1, 2, 1.0, elapsed=1.0, cache_hits=1)


def test_off_a_terminal_only_finished_passes_are_printed() -> None:
    stream = Stream(tty=False)
    progress = ProgressLine(quiet=False, stream=stream)
    for done in range(6):
        progress("val 0", done, 5, 0.2 * done, cache_hits=done)
    for done in range(3):
        progress("epoch 1", done, 2, 1.0)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in stream.getvalue()
    assert lines[0].startswith("val 0") and " 5/5 100%" in lines[0] and "cache 5 hits" in lines[0]
    assert lines[1].startswith("epoch 1") and "2/2" in lines[1]


def test_on_a_terminal_the_bar_is_redrawn_and_ends_with_a_newline() -> None:
    stream = Stream(tty=True)
    progress = ProgressLine(quiet=False, stream=stream)
    progress("test", 0, 3, 0.0)
    progress("test", 3, 3, 1.0)
    out = stream.getvalue()
    assert out.count("\r\x1b[2K") == 2 and out.endswith("\n") and out.count("\n") == 1


def test_quiet_prints_nothing() -> None:
    for tty in (True, False):
        stream = Stream(tty)
        progress = ProgressLine(quiet=True, stream=stream)
        progress("test", 0, 1, 0.0)
        progress("test", 1, 1, 1.0)
        assert stream.getvalue() == ""


def test_an_epochs_batches_make_one_bar() -> None:
    from tests.training.test_trainer import examples, make_program, reward, right_only_with_examples

    calls: list[tuple] = []
    asyncio.run(fit(
        make_program(ScriptedLM(right_only_with_examples)), examples(5), (), reward, RandomFewShot(nb_max_examples=1),
        epochs=1, batch_size=3, rng=np.random.default_rng(0),
        progress=lambda *a, **k: calls.append((*a, k.get("cache_hits"))),
    ))
    epoch = [c for c in calls if c[0] == "epoch 1"]
    assert {c[2] for c in epoch} == {5}  # one bar over the whole training set
    assert [c[1] for c in epoch] == [0, 1, 2, 3, 3, 4, 5]  # the second batch starts where the first ended
    # Batch 1 has no examples yet (all wrong); batch 2 has one (all right): the running mean spans both.
    assert [round(c[3], 3) for c in epoch][-3:] == [0.0, 0.25, 0.4]


def test_fit_through_the_cli_prints_one_line_per_pass(tmp_path, monkeypatch, capsys) -> None:
    with LoopbackServer(loopback_answer) as server:
        rows = [{"question": f"{i}+{i + 1}", "answer": 2 * i + 1, "note": "n"} for i in range(20)]
        (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
        source = CLI_SOURCE.format(url=server.openai_url, runs=1).replace("epochs 2", "epochs 1")
        (tmp_path / "adder.icl").write_text(source, encoding="utf-8")
        monkeypatch.chdir(tmp_path)
        assert main(["fit", "adder.icl", "--no-report"]) == 0
    lines = capsys.readouterr().err.splitlines()  # stderr is not a terminal here
    assert [line.split("[")[0].strip() for line in lines] == [
        "test (untrained)", "val 0", "epoch 1", "val 1", "test (trained)"]
    # 12 training rows less 2 for validation, in batches of 4: still one bar for the epoch
    assert " 10/10 100%" in lines[2]
