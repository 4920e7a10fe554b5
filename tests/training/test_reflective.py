"""reflective against scripted LMs: the reflecting LM writes the words that make the
program's step right, and the Pareto front keeps the candidates that win different examples."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np

import icldsl
from icldsl.language.compiler import compile_source
from icldsl.datasets import Example
from icldsl.lm.base import LMError
from icldsl.runtime.program import Program
from icldsl.language.specs import LMSpec
from icldsl.language.source import Source
from icldsl.training.chain import Chain
from icldsl.training.instructions import Candidate
from icldsl.training.optimizers import RandomFewShot
from icldsl.training.reflective import Reflective, pareto_front, wins
from icldsl.training.resources import Resources
from icldsl.training.rewards import exact_match
from icldsl.training.trainer import evaluate, fit, score
from icldsl.runtime.state import spec_and_states
from tests.scripted import ScriptedLM, last_input
from tests.training.helpers import INSTRUCTION_SOURCE, assert_refused, context, question_number, with_data

SOURCE = INSTRUCTION_SOURCE
PATH = "p/a"
reward = exact_match()


number = question_number


def magic(request) -> dict:
    """The program's step: right only when its instructions say MAGIC."""
    return {"answer": number(request) if "MAGIC" in request.messages[0].content else -1}


def parity(request) -> dict:
    """The program's step: right on even questions when told EVEN only, on odd ones when told ODD only."""
    system, n = request.messages[0].content, number(request)
    told = {"EVEN"} if "EVEN" in system and "ODD" not in system else {"ODD"} if "ODD" in system else set()
    return {"answer": n if ("EVEN" if n % 2 == 0 else "ODD") in told else -1}


def add_magic(request) -> dict:
    return {"reflection": "the word is missing", "instructions": f"{last_input(request)['current_instructions']} MAGIC"}


def scripted(solve, reflect) -> ScriptedLM:
    return ScriptedLM(lambda r: reflect(r) if r.schema_name == "Reflection" else
                      {"hint": "think"} if r.schema_name == "H" else solve(r))


def judge(lm: ScriptedLM) -> tuple[Resources, object]:
    resources = Resources(lms={"judge": LMSpec("judge", "scripted/test", {})}, clients={"judge": lm})
    return resources, resources.lm("judge", "optimizer reflective")


def examples(numbers) -> list[Example]:
    return [Example({"question": f"q{i}"}, {"answer": float(i)}, f"d:{i}") for i in numbers]


def run_once(optimizer, lm: ScriptedLM, train, val, *, name: str = "p"):
    """One end-of-epoch proposal; the new states and the note."""
    spec, states = spec_and_states(compile_source(Source("t.icl", SOURCE)), name)
    program = Program(spec, states, {"solver": lm})

    async def go():
        async def evaluate_states(candidate, data, label):
            return await evaluate(program.with_states(candidate), data, reward)

        scored = await score(program, train, reward, concurrency=4)
        ctx = context(np.random.default_rng(0), program=program, reward=reward, train=train, validation=val,
                      evaluate=evaluate_states, end_of_epoch=True)
        return await optimizer.propose(program.states, scored, ctx), ctx.events

    return asyncio.run(go())


def test_reflection_on_failures_and_feedback_finds_the_magic_word() -> None:
    lm = scripted(magic, add_magic)
    _, bound = judge(lm)
    states, (note,) = run_once(Reflective(bound, proposals=1, minibatch_size=4), lm, examples(range(8)),
                               examples(range(8, 14)))
    assert states[PATH].instructions == "Answer. MAGIC"
    assert note["optimizer"] == "reflective" and note["sample"] == 6 and note["candidates"] == 2
    (attempt,) = note["proposals"]
    assert attempt["minibatch"] == {"parent": 0.0, "child": 4.0} and attempt["reward"]["mean"] == 1.0
    assert note["front_size"] == 1 and note["front"][0]["id"] == 1 and note["front"][0]["wins"] == 6
    assert note["difference"] == {"mean": 1.0, "std": 0.0, "n": 6, "stderr": 0.0}
    (asked,) = [last_input(r) for r in lm.requests if r.schema_name == "Reflection"]
    assert asked["current_instructions"] == "Answer." and len(asked["predictions"]) == 4
    assert all(row["feedback"].startswith("answer: expected") for row in asked["predictions"])


def test_the_front_keeps_the_winners_of_different_examples() -> None:
    words = iter(["EVEN", "ODD", "EVEN", "ODD"])
    lm = scripted(parity, lambda r: {"reflection": "-", "instructions": f"Answer. {next(words)}"})
    _, bound = judge(lm)
    train = examples([0, 2, 4, 6, 1, 3, 5, 7, 9, 11, 13, 15])  # more odd than even: ODD beats EVEN there
    states, (note,) = run_once(Reflective(bound, proposals=4, minibatch_size=12), lm, train, examples(range(20, 26)))
    first, second, *repeats = note["proposals"]
    assert first["minibatch"] == {"parent": 0.0, "child": 4.0}
    assert second["parent"] == 1 and second["minibatch"] == {"parent": 4.0, "child": 8.0}
    assert [r["skipped"] for r in repeats] == ["a candidate seen before"] * 2
    # The incoming instructions win no example; EVEN and ODD each win half of them.
    assert [(c["id"], c["wins"], c["reward"]["mean"]) for c in note["front"]] == [(1, 3, 0.5), (2, 3, 0.5)]
    assert note["front_size"] == 2 and note["kept"] == 1 and states[PATH].instructions == "Answer. EVEN"


def test_pareto_front_drops_candidates_whose_wins_others_cover() -> None:
    def candidate(i: int, *scores: float) -> Candidate:
        return Candidate(i, (f"c{i}",), "-", scores)

    a, b, c, twin, zero = (candidate(0, 1, 1, 0, 0), candidate(1, 0, 0, 1, 0), candidate(2, 1, 0, 0, 0),
                           candidate(3, 1, 1, 0, 0), candidate(4, 0, 0, 0, 0))
    front = pareto_front([a, b, c, twin, zero])
    assert front == [a, b]  # c is beaten where it wins, the twin repeats a, zero only ties where all fail
    assert wins(front) == [3, 2]
    assert pareto_front([zero]) == [zero] and pareto_front([]) == []


def test_failed_reflections_are_counted_and_skipped() -> None:
    answers = iter([LMError("server said no")])
    lm = scripted(magic, lambda r: next(answers, None) or add_magic(r))
    resources, bound = judge(lm)
    states, (note,) = run_once(Reflective(bound, proposals=2, minibatch_size=4), lm, examples(range(8)),
                               examples(range(8, 14)))
    assert note["failures"] == 1 and note["proposals"][0]["skipped"] == "the LM gave no instructions"
    assert states[PATH].instructions == "Answer. MAGIC"
    assert [r.output is None for _, r in resources.records] == [True, False]


def test_frozen_steps_are_left_alone() -> None:
    lm = scripted(magic, add_magic)
    _, bound = judge(lm)
    states, _ = run_once(Reflective(bound, proposals=2), lm, examples(range(8)), examples(range(8, 14)), name="two")
    assert states["two/h"].instructions == "Hint." and "MAGIC" in states["two/a"].instructions
    assert {last_input(r)["step"]["step"] for r in lm.requests if r.schema_name == "Reflection"} == {"a"}


def fit_with(optimizer_of, seed: int, reflect):
    lm = scripted(magic, reflect)
    resources, bound = judge(lm)
    reflective = Reflective(bound, proposals=2, minibatch_size=4)
    trained, history = asyncio.run(fit(
        Program(*spec_and_states(compile_source(Source("t.icl", SOURCE)), "p"), {"solver": lm}),
        examples(range(12)), examples(range(12, 18)), reward, optimizer_of(reflective),
        epochs=2, batch_size=4, rng=np.random.default_rng(seed), resources=resources,
    ))
    return lm, reflective, trained, history


def test_fit_chains_after_random_few_shot_and_stays_within_its_plan() -> None:
    lm, reflective, trained, history = fit_with(lambda o: Chain((RandomFewShot(nb_max_examples=2), o)), 0,
                                                add_magic)
    assert history.initial_val_reward == 0.0 and history.history["val_reward"] == [1.0, 1.0]
    assert "MAGIC" in trained.states[PATH].instructions and trained.states[PATH].examples
    first, second = history.events
    assert first["kept"] == 1 and first["rescored"] == [0]
    assert second["rescored"] == [1]  # the front, scored again under the new few-shot examples
    reflections = history.usage_table.steps["optimizer reflective"].calls
    assert reflections == sum(r.schema_name == "Reflection" for r in lm.requests) > 0
    program_calls = sum(r.schema_name == "A" for r in lm.requests) - 2 * 12 - 3 * 6
    assert program_calls + reflections <= reflective.planned_calls(train=12, validation=6, epochs=2, batches=3,
                                                                   lm_steps=1)


def test_the_same_seed_gives_the_same_result() -> None:
    def reflect(request) -> dict:
        return {"reflection": "-", "instructions": f"MAGIC {request.seed}"}

    def run(seed: int):
        _, _, trained, history = fit_with(lambda o: o, seed, reflect)
        return trained.states[PATH].instructions, json.dumps(history.events, sort_keys=True)

    assert run(5) == run(5)
    assert run(5)[0] != run(6)[0]


FILE = """
model Q { question: str "A question" }
model A { answer: float "The number" }
lm solver = "openai/solver" { base_url: "http://127.0.0.1:9/v1" }
lm judge = "openai/judge" { base_url: "http://127.0.0.1:9/v1" }
program p "Answer questions" { input q: Q  a = generate A from q using solver instructions "Answer."  output a }
data d = jsonl("d.jsonl", split: 0.5)
train p on d {
    reward exact_match()
    optimizer random_few_shot(nb_max_examples: 2)
    optimizer reflective(lm: judge, proposals: 2, minibatch_size: 4, temperature: 1)
    epochs 1
}
"""


def test_fit_of_a_file_with_given_clients(tmp_path: Path) -> None:
    compiled = compile_source(with_data(tmp_path, FILE))
    judge_lm = scripted(magic, add_magic)
    report = icldsl.fit(compiled, clients={"solver": scripted(magic, add_magic), "judge": judge_lm}, write=False,
                        report=False).report
    assert report.program.states[PATH].instructions == "Answer. MAGIC" and report.program.states[PATH].examples
    training = report.artifact["training"]
    (note,) = training["optimizer_events"]
    assert note["optimizer"] == "reflective" and note["sample"] == report.sizes["validation"]
    assert training["usage_by_step"]["optimizer reflective"]["calls"] == len(judge_lm.requests) >= 1
    assert report.trained.mean == 1.0 and report.untrained.mean == 0.0
    assert {r.temperature for r in judge_lm.requests} == {1}


def test_the_checker_verifies_reflective_options(tmp_path: Path) -> None:
    assert_refused(tmp_path, FILE, [("lm: judge", "lm: jduge", "undefined-name"),
                                    ("proposals: 2", "proposals: 0", "wrong-type"),
                                    ("temperature: 1", "temperature: -1", "wrong-type"),
                                    ("temperature: 1", "temprature: 1", "unknown-option")])
