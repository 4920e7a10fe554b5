"""`icldsl plan`: its LM calls are the calls a fit makes, its prompt tokens those of the
prompts a fit sends, and it makes no LM call (nor creates a client) itself."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pytest

import icldsl
from icldsl.cli import main
from icldsl.language.compiler import compile_file, compile_source
from icldsl.datasets.base import DataError
from icldsl.datasets.rows import read_text
from icldsl.language.options import LM_NAME, Function, Signature
from icldsl.plan import plan_compiled
from icldsl.runtime import prompt
from icldsl.language.source import Source
from icldsl.language.catalogue import training as registry
from icldsl.training.context import Optimizer
from tests.adder import right_with_examples, sum_of
from tests.loopback import LoopbackServer
from tests.schema_faker import fake
from tests.scripted import ScriptedLM, last_input

ROOT = Path(__file__).resolve().parents[1]

FILE = """
model Sum {{ question: str "Two numbers to add, like 2+3" }}
model Total {{ answer: float "Their sum" }}
lm solver = "openai/solver" {{ base_url: "{url}", max_tokens: 20 }}
program adder {{ input q: Sum  total = generate Total from q  output total }}
data sums = jsonl("sums.jsonl", split: 0.75)
train adder on sums {{
    reward exact_match()
    optimizer {optimizer}
    epochs 2
    batch_size 3
    validation_split 0.25
    runs 2
{extra}}}
"""


def project(tmp_path: Path, *, url: str = "http://127.0.0.1:9/v1", extra: str = "",
            optimizer: str = "random_few_shot(nb_min_examples: 2, nb_max_examples: 2)") -> Path:
    rows = [{"question": f"{i}+{i + 1}", "answer": 2 * i + 1} for i in range(20)]
    (tmp_path / "sums.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    path = tmp_path / "adder.icl"
    path.write_text(FILE.format(url=url, extra=extra, optimizer=optimizer), encoding="utf-8")
    return path


def right(request) -> dict:
    return {"answer": sum_of(last_input(request)["question"])}


@dataclass(frozen=True)
class Comparing(Optimizer):
    """Scores the states on the validation set at the end of every epoch, as an optimizer
    comparing candidates does, and says so in `planned_calls`."""

    lm: object = None
    asked: list = None

    def planned_calls(self, *, train: int, validation: int, epochs: int, batches: int, lm_steps: int) -> int:
        self.asked.append({"train": train, "validation": validation, "epochs": epochs, "batches": batches,
                           "lm_steps": lm_steps})
        return epochs * validation * lm_steps

    async def propose(self, states, scored, ctx):
        if ctx.end_of_epoch:
            await ctx.evaluate(states, ctx.validation, "candidate")
        return dict(states)


@pytest.fixture
def comparing(monkeypatch) -> list:
    """Registers the `comparing(lm: ...)` optimizer; returns what its planned_calls was asked."""
    asked: list = []
    monkeypatch.setitem(registry.OPTIMIZERS, "comparing", Function(
        Signature({"lm": LM_NAME}, doc="scores the states on the validation set each epoch"),
        lambda lm=None: Comparing(lm, asked)))
    return asked


def fit_calls(compiled, answer) -> tuple[ScriptedLM, object]:
    lm = ScriptedLM(answer)
    clients = {name: lm for name in compiled.lms}
    report = icldsl.fit(compiled, clients=clients, write=False, report=False).report
    return lm, report


def test_calls_are_the_calls_a_fit_makes_with_optimizer_extras(tmp_path, comparing) -> None:
    path = project(tmp_path, optimizer="random_few_shot(nb_min_examples: 2, nb_max_examples: 2)\n"
                                       "    optimizer comparing(lm: solver)")
    compiled = compile_file(path)
    plan = plan_compiled(compiled, compiled.train())
    assert plan.sizes == {"train": 11, "validation": 4, "test": 5}
    assert comparing == [{"train": 11, "validation": 4, "epochs": 2, "batches": 4, "lm_steps": 1}]
    assert [(p.name, p.runs, p.calls) for p in plan.phases] == [
        ("test, untrained: 2 runs of 5", 10, 10), ("validation, before training", 4, 4),
        ("epoch 1: training", 11, 11), ("epoch 1: validation", 4, 4),
        ("epoch 2: training", 11, 11), ("epoch 2: validation", 4, 4),
        ("optimizer random_few_shot", 0, 0), ("optimizer comparing", 0, 8),
        ("test, trained: 2 runs of 5", 10, 10)]
    assert not plan.upper_bound

    lm, report = fit_calls(compiled, right)
    assert len(lm.requests) == plan.total.calls == 62
    assert report.history.usage.calls == plan.training.calls == 42


def test_an_optimizer_learning_from_the_data_alone_plans_no_training_runs(tmp_path) -> None:
    compiled = compile_file(project(tmp_path, optimizer="labeled_few_shot(candidates: 2)"))
    plan = plan_compiled(compiled, compiled.train())
    assert [(p.name, p.runs, p.calls) for p in plan.phases] == [
        ("test, untrained: 2 runs of 5", 10, 10), ("validation, before training", 4, 4),
        ("epoch 1: validation", 4, 4), ("epoch 2: validation", 4, 4),
        ("optimizer labeled_few_shot", 0, 2 * 3 * 4), ("test, trained: 2 runs of 5", 10, 10)]
    assert any("learn from the data alone" in note for note in plan.notes)
    lm, report = fit_calls(compiled, right)
    assert len(lm.requests) == plan.total.calls
    assert report.history.usage.calls == plan.training.calls


@pytest.mark.parametrize("name", ["sentiment", "support"])
def test_calls_of_the_example_programs_are_those_of_a_fit(name: str) -> None:
    compiled = compile_file(ROOT / "programs" / f"{name}.icl")
    plan = plan_compiled(compiled, compiled.train())
    lm, _ = fit_calls(compiled, lambda request: fake(request.schema))
    assert len(lm.requests) == plan.total.calls
    assert plan.upper_bound == (name == "support")  # a branch: its arms make one call each, so exact here


def test_prompt_tokens_are_those_of_the_prompts_a_fit_sends(tmp_path) -> None:
    compiled = compile_file(project(tmp_path))
    plan = plan_compiled(compiled, compiled.train())
    assert plan.counting == {"openai/solver": "ceil(characters / 4) of the messages' text"}
    lm, report = fit_calls(compiled, right_with_examples)
    assert len(report.program.states["adder/total"].examples) == 2
    tokens = [math.ceil(sum(len(m.content) for m in r.messages) / 4) for r in lm.requests]
    untrained, trained = plan.phases[0], plan.phases[-1]
    assert untrained.prompt_tokens == sum(tokens[:10])  # every test example rendered: exact
    assert trained.prompt_tokens == pytest.approx(sum(tokens[-10:]), rel=0.1)  # other rows as examples
    assert trained.prompt_tokens > untrained.prompt_tokens
    answer = math.ceil(len(prompt.to_json({"answer": 27.0})) / 4)
    assert untrained.completion_tokens == 10 * answer and untrained.completion_max == 10 * 20


def test_plan_makes_no_lm_call_and_creates_no_client(tmp_path, monkeypatch, comparing, capsys) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("plan created an LM client")

    monkeypatch.setattr("icldsl.lm.connect.make_client", refuse)  # every client is made there
    monkeypatch.setattr("icldsl.lm.connect.connect_embedder", refuse)
    with LoopbackServer(right) as server:
        path = project(tmp_path, url=server.openai_url, optimizer="comparing(lm: solver)")
        assert main(["plan", str(path)]) == 0
        assert server.requests == []
    out = capsys.readouterr().out
    assert "test, trained: 2 runs of 5" in out and "budget: none" in out


def test_budget_is_compared_with_what_training_plans(tmp_path, capsys) -> None:
    path = project(tmp_path, extra="    budget { calls: 30, tokens: 1000000 }\n")
    assert main(["plan", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["budget"] == {"calls": 30, "tokens": 1000000}
    assert doc["training"]["calls"] == 34 and doc["exceeds"] == {"calls": True, "tokens": False}
    assert main(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert "budget calls 30: training plans 34, exceeds it" in out
    assert "budget tokens 1,000,000: training plans ~" in out and "within it" in out


def test_branches_and_agents_are_upper_bounds(gsm8k_dir, monkeypatch) -> None:
    monkeypatch.setenv("ICLDSL_GSM8K_PATH", str(gsm8k_dir))
    compiled = compile_file(ROOT / "programs" / "gsm8k_agent.icl")
    plan = plan_compiled(compiled, compiled.train())
    assert plan.upper_bound and plan.calls_per_run == 5  # max_steps 4, then the answer
    assert any("agent `answer` makes up to 5 calls" in note for note in plan.notes)
    lm, _ = fit_calls(compiled, lambda request: fake(request.schema))
    assert 0 < len(lm.requests) <= plan.total.calls


def test_frozen_steps_get_no_examples_and_train_blocks_are_chosen_by_program(capsys) -> None:
    compiled = compile_file(ROOT / "programs" / "support.icl")
    plan = plan_compiled(compiled, compiled.train())
    assert {s.path: s.examples for s in plan.steps} == {
        "support/route": 0, "support/answer.billing": 2, "support/answer.technical": 2, "support/answer.default": 2}
    assert any(s.frozen for s in plan.steps)
    assert main(["plan", str(ROOT / "programs" / "support.icl"), "--program", "nope"]) == 1
    assert "no train block for program `nope`" in capsys.readouterr().err


def test_a_file_without_a_train_block_cannot_be_planned(capsys) -> None:
    assert main(["plan", str(ROOT / "programs" / "outline.icl")]) == 1
    assert "has no train block" in capsys.readouterr().err


def test_a_data_file_name_holding_a_nul_is_a_diagnostic(tmp_path, capsys) -> None:
    path = project(tmp_path)
    path.write_text(path.read_text(encoding="utf-8").replace('"sums.jsonl"', '"su\\u0000ms.jsonl"'), encoding="utf-8")
    assert main(["plan", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error[missing-data]: data `sums` reads a file whose name holds a NUL character (\\u0000)")
    assert "adder.icl:6:" in err and "Traceback" not in err
    with pytest.raises(DataError, match=r"su\\u0000ms.jsonl: the file name holds a NUL character"):
        read_text(tmp_path / "su\0ms.jsonl")  # what a loader says when the data was not checked first


def test_a_judge_rewards_calls_are_counted_one_per_prediction(tmp_path) -> None:
    path = project(tmp_path)
    text = path.read_text()
    judge = 'lm judge = "openai/judge" { base_url: "http://127.0.0.1:9/v1" }\n'
    for old, new in [("exact_match()", "lm_judge(lm: judge)"), ("from q ", "from q using solver "),
                     ("program adder", judge + "program adder")]:
        text = text.replace(old, new)
    compiled = compile_source(Source(str(path), text))
    plan = plan_compiled(compiled, compiled.train())
    judged = {p.name: p.calls for p in plan.phases if p.name.startswith("reward ")}
    assert judged == {"reward lm_judge: training predictions": 4 + 2 * (11 + 4),
                      "reward lm_judge: test predictions": 2 * 2 * 5}
    assert not any(p.estimated for p in plan.phases if p.name.startswith("reward "))
    lm, report = fit_calls(compiled, lambda request: right(request) if request.schema_name == "Total"
                           else {"critique": "fine", "score": 5})
    assert len(lm.requests) == plan.total.calls
    assert report.history.usage.calls == plan.training.calls


@pytest.mark.local_model
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="needs the local extra")
def test_local_prompt_tokens_are_those_the_local_client_counts() -> None:
    from icldsl.lm.base import LMRequest, Message
    from icldsl.lm.local import LocalClient, Vocabulary

    compiled = compile_file(ROOT / "programs" / "sentiment.icl")
    plan = plan_compiled(compiled, compiled.train())
    assert "llama.cpp" in plan.counting["local/smollm2-135m"]
    messages = (Message("system", "Answer in JSON."), Message("user", '{"text": "Great blender é"}'))
    vocabulary = Vocabulary("smollm2-135m")  # what the plan counts with
    client = LocalClient("smollm2-135m", n_parallel=1)
    try:
        response = asyncio.run(client.complete(LMRequest(messages, max_tokens=1)))
        assert vocabulary.messages(messages) == response.usage.prompt_tokens
    finally:
        vocabulary.close()
        asyncio.run(client.aclose())


def test_plan_has_help(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["plan", "--help"])
    assert exit_.value.code == 0 and "usage: icldsl plan" in capsys.readouterr().out
