"""random_few_shot and bootstrap_few_shot: sampling, bounds, frozen steps, per-step
credit, and candidates compared on enough validation examples."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections import Counter

import numpy as np
import pytest

import icldsl
from icldsl import cli
from icldsl.language.compiler import compile_source
from icldsl.datasets import Example
from icldsl.runtime.program import Program
from icldsl.runtime.state import Demo, StepRecord, StepState, Trace, spec_and_states
from icldsl.language.source import Source
from icldsl.training.optimizers import BootstrapFewShot, LabeledFewShot, RandomFewShot
from icldsl.training.scored import Scored
from icldsl.training.omega import Omega
from icldsl.language.catalogue.training import OPTIMIZERS, REWARDS
from icldsl.training.rewards import exact_match
from icldsl.training.history import Evaluation
from icldsl.training.trainer import BudgetReached, fit
from icldsl.training.training_record import HistoryRecord
from tests.scripted import ScriptedLM, last_input
from tests.training.helpers import context
from tests.training.test_trainer import PATH, examples, make_program, reward


def scored_pool(rewards: list[float | None]) -> list[Scored]:
    """One run per reward for the one-step program; None: the step failed."""
    pool = []
    for i, r in enumerate(rewards):
        output = None if r is None else {"thinking": "t", "answer": float(i)}
        trace = Trace({PATH: StepRecord({"question": f"q{i}"}, output)}, output)
        pool.append(Scored(Example({"question": f"q{i}"}, {"answer": float(i)}, f"f:{i + 1}"), trace, r or 0.0))
    return pool


def propose(optimizer, states, pool, rng, **fields):
    return asyncio.run(optimizer.propose(states, pool, context(rng, **fields)))


def origins(state: StepState) -> list[str]:
    return [d.origin for d in state.examples]


def draws(optimizer, pool, seeds) -> list[list[str]]:
    """The origins chosen for the one step, once per seed, on one event loop."""
    async def run():
        return [origins((await optimizer.propose({PATH: StepState("x")}, pool, context(np.random.default_rng(s))))
                        [PATH]) for s in seeds]
    return asyncio.run(run())


# ---- random_few_shot ---------------------------------------------------------------


def test_best_prefers_the_best_predictions() -> None:
    pool = scored_pool([0.0, 1.0, None, 0.0, 1.0, 0.5, None])
    chosen = propose(RandomFewShot(nb_min_examples=3, nb_max_examples=3), {PATH: StepState("do it")}, pool,
                     np.random.default_rng(0))
    demos = chosen[PATH].examples
    assert [d.reward for d in demos] == [1.0, 1.0, 0.5]
    assert {d.origin for d in demos[:2]} == {"f:2", "f:5"}
    assert chosen[PATH].instructions == "do it"
    assert demos[0].inputs == {"question": f"q{int(demos[0].origin[2:]) - 1}"}


def test_best_breaks_ties_at_random() -> None:
    chosen = draws(RandomFewShot(nb_min_examples=1, nb_max_examples=1), scored_pool([1.0] * 4 + [0.0] * 4),
                   range(200))
    assert Counter(o for (o,) in chosen).keys() == {"f:1", "f:2", "f:3", "f:4"}


@pytest.mark.parametrize("sampling", ["best", "random", "softmax"])
def test_never_uses_failed_predictions_and_respects_bounds(sampling: str) -> None:
    optimizer = RandomFewShot(nb_min_examples=1, nb_max_examples=5, sampling=sampling)
    assert draws(optimizer, scored_pool([None, None, 0.0]), range(10)) == [["f:3"]] * 10
    sizes = {len(o) for o in draws(optimizer, scored_pool([1.0, 0.0] * 4), range(60))}
    assert sizes == {1, 2, 3, 4, 5}
    # nb_min_examples is met whenever the pool is large enough
    assert {len(o) for o in draws(RandomFewShot(4, 5, sampling), scored_pool([0.5] * 8), range(20))} == {4, 5}


def test_random_covers_the_whole_pool_uniformly() -> None:
    rewards = [1.0, 0.0, 0.5, 0.0, 0.2, 0.9]
    chosen = draws(RandomFewShot(1, 1, "random"), scored_pool(rewards), range(1200))
    counts = Counter(o for (o,) in chosen)
    assert set(counts) == {f"f:{i + 1}" for i in range(6)}
    assert all(150 < n < 250 for n in counts.values())  # 200 expected each


def test_softmax_follows_exp_reward_over_temperature() -> None:
    chosen = draws(RandomFewShot(1, 1, "softmax", temperature=0.5), scored_pool([0.0, 0.5, 1.0]), range(3000))
    counts = Counter(o for (o,) in chosen)
    weights = np.exp(np.array([0.0, 0.5, 1.0]) / 0.5)
    for i, p in enumerate(weights / weights.sum()):
        assert counts[f"f:{i + 1}"] / 3000 == pytest.approx(p, abs=0.03)


def test_softmax_at_a_low_temperature_picks_the_best_and_draws_without_replacement() -> None:
    pool = scored_pool([0.2, 1.0, 0.0, 0.9, 0.5])
    low = draws(RandomFewShot(2, 2, "softmax", temperature=0.01), pool, range(100))
    assert all(set(o) == {"f:2", "f:4"} for o in low)
    everything = draws(RandomFewShot(5, 5, "softmax", temperature=10.0), pool, range(50))
    assert all(sorted(o) == [f"f:{i}" for i in range(1, 6)] for o in everything)
    assert len({tuple(o) for o in everything}) > 10  # a high temperature shuffles


def test_a_row_gives_a_step_one_example_its_best_run() -> None:
    pool = scored_pool([0.0, 1.0]) + scored_pool([1.0, 0.0])  # the same two rows, run twice
    chosen = propose(RandomFewShot(2, 2, "random"), {PATH: StepState("x")}, pool, np.random.default_rng(0))
    assert sorted((d.origin, d.reward) for d in chosen[PATH].examples) == [("f:1", 1.0), ("f:2", 1.0)]


@pytest.mark.parametrize("sampling", ["best", "random", "softmax"])
def test_the_same_seed_draws_the_same_examples(sampling: str) -> None:
    optimizer, pool = RandomFewShot(1, 4, sampling), scored_pool([1.0, 0.3, 0.7, 0.0, 1.0, 0.5, 0.9])
    assert draws(optimizer, pool, [7] * 3) == [draws(optimizer, pool, [7])[0]] * 3
    assert len({tuple(o) for o in draws(optimizer, pool, range(20))}) > 3


@pytest.mark.parametrize("optimizer", [RandomFewShot(), BootstrapFewShot()], ids=["random", "bootstrap"])
def test_frozen_steps_are_left_alone(optimizer) -> None:
    frozen = StepState("keep", (Demo({"question": "x"}, {"answer": 1.0}, 1.0, "f:9"),), frozen=True)
    assert propose(optimizer, {PATH: frozen}, scored_pool([1.0, 1.0]), np.random.default_rng(0))[PATH] is frozen


def test_a_step_without_any_successful_prediction_keeps_its_examples() -> None:
    state = StepState("x", (Demo({"question": "old"}, {"answer": 1.0}, 1.0, "f:9"),))
    for optimizer in (RandomFewShot(), BootstrapFewShot()):
        assert propose(optimizer, {PATH: state}, scored_pool([None, None]), np.random.default_rng(0))[PATH] is state


@pytest.mark.parametrize("make, message", [
    (lambda: RandomFewShot(nb_min_examples=4, nb_max_examples=3),
     "random_few_shot: nb_min_examples (4) is above nb_max_examples (3)"),
    (lambda: RandomFewShot(nb_min_examples=0, nb_max_examples=0),
     "random_few_shot: option `nb_max_examples`: expected an integer of at least 1, found the integer 0"),
    (lambda: RandomFewShot(sampling="bset"),
     'random_few_shot: option `sampling`: expected one of "best", "random", "softmax", found the string "bset"'),
    (lambda: RandomFewShot(sampling="softmax", temperature=0),
     "random_few_shot: option `temperature`: expected a number above 0, found the integer 0"),
    (lambda: BootstrapFewShot(nb_min_examples=5), "bootstrap_few_shot: nb_min_examples (5) is above nb_max_examples (3)"),
    (lambda: BootstrapFewShot(candidates=0),
     "bootstrap_few_shot: option `candidates`: expected an integer of at least 1, found the integer 0"),
    (lambda: BootstrapFewShot(candidates=3, compare_on=4),
     "bootstrap_few_shot: option `compare_on`: expected an integer of at least 30, found the integer 4"),
])
def test_invalid_settings_are_refused_with_a_clear_message(make, message) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


# ---- the checker and the plan --------------------------------------------------------

TRAIN_FILE = """
model Q {{ question: str "A question" }}
model A {{ answer: float "The number" }}
lm solver = "local/smollm2-135m"
program p {{ input q: Q  a = generate A from q  output a }}
data d = jsonl("rows.jsonl")
train p on d {{
    reward exact_match()
{optimizers}
}}
"""


def check(tmp_path, capsys, *optimizers: str) -> tuple[int, str]:
    (tmp_path / "p.icl").write_text(TRAIN_FILE.format(optimizers="\n".join(f"    optimizer {o}" for o in optimizers)))
    code = cli.main(["check", "--no-data", str(tmp_path / "p.icl")])  # the optimizers, not the data
    return code, capsys.readouterr().err


def test_check_accepts_every_option_and_a_chain(tmp_path, capsys) -> None:
    ok = check(tmp_path, capsys,
               'random_few_shot(nb_min_examples: 1, nb_max_examples: 3, sampling: "softmax", temperature: 0.5)')
    assert ok == (0, f"{tmp_path / 'p.icl'}: ok\n")
    chain = check(tmp_path, capsys,
                  "bootstrap_few_shot(nb_min_examples: 0, nb_max_examples: 4, threshold: 0.8, candidates: 4, "
                  "compare_on: 40)", 'random_few_shot(sampling: "random")')
    assert chain[0] == 0
    compiled = compile_source(Source.from_path(tmp_path / "p.icl"))
    assert [name for name, _ in compiled.train().optimizers] == ["bootstrap_few_shot", "random_few_shot"]


@pytest.mark.parametrize("option, message", [
    ('sampling: "bset"', 'option `sampling` of optimizer `random_few_shot` must be one of "best", "random", "softmax"'),
    ("temperature: 0", "option `temperature` of optimizer `random_few_shot` must be a number above 0"),
    ("nb_max_examples: 0", "option `nb_max_examples` of optimizer `random_few_shot` must be an integer of at least 1"),
])
def test_check_reports_bad_values_with_their_place(tmp_path, capsys, option, message) -> None:
    code, err = check(tmp_path, capsys, f"random_few_shot({option})")
    assert code != 0 and message in err and "p.icl:9:" in err


def test_check_refuses_too_small_a_comparison(tmp_path, capsys) -> None:
    code, err = check(tmp_path, capsys, "bootstrap_few_shot(candidates: 3, compare_on: 4)")
    assert code != 0 and "must be an integer of at least 30" in err


def test_factories_take_their_defaults_from_the_declarations() -> None:
    """The catalogue names each factory without importing it; every option it does not
    require has, in the factory's parameters, the declared default (None: absent unless given)."""
    for function in (*OPTIMIZERS.values(), *REWARDS.values()):
        signature = function.signature
        parameters = inspect.signature(function.make).parameters
        assert signature.doc
        for name in set(signature.options) - set(signature.required):
            assert parameters[name].default == signature.defaults.get(name), name
    assert OPTIMIZERS["random_few_shot"].signature.defaults["sampling"] == "best"
    assert OPTIMIZERS["omega"].signature.defaults["population_size"] == \
        Omega.__dataclass_fields__["population_size"].default


def test_planned_calls() -> None:
    sizes = {"train": 100, "validation": 80, "epochs": 3, "batches": 4, "lm_steps": 2}
    assert RandomFewShot().planned_calls(**sizes) == 0
    assert BootstrapFewShot().planned_calls(**sizes) == 0  # one candidate: nothing compared
    assert BootstrapFewShot(candidates=4).planned_calls(**sizes) == 3 * 5 * 50 * 2
    assert BootstrapFewShot(candidates=4, compare_on=100).planned_calls(**sizes) == 3 * 5 * 80 * 2
    assert BootstrapFewShot(candidates=4).planned_calls(**{**sizes, "validation": 0}) == 0


# ---- bootstrap_few_shot: per-step credit ---------------------------------------------

TWO_STEPS = """
model Q { question: str "A question" }
model Plan { plan: str "How to answer" }
model A { answer: float "The number" }
lm solver = "local/smollm2-135m"
program p { input q: Q  plan = generate Plan from q  a = generate A from plan  output a }
"""


def two_step_answer(request) -> dict | str:
    """Row i: the plan step writes `p{i}` (no JSON for i % 5 == 4); the answer step is
    right unless i % 3 == 0."""
    given = last_input(request)
    if "question" in given:
        i = int(given["question"][1:])
        return "no idea" if i % 5 == 4 else {"plan": f"p{i}"}
    i = int(given["plan"][1:])
    return {"answer": float(i) if i % 3 else -1.0}


def test_each_step_learns_its_own_input_and_output_from_the_same_successful_runs() -> None:
    spec, states = spec_and_states(compile_source(Source("t.icl", TWO_STEPS)), "p")
    program = Program(spec, states, {"solver": ScriptedLM(two_step_answer)})
    data = [Example({"question": f"q{i}"}, {"answer": float(i)}, f"rows.jsonl:{i + 1}") for i in range(15)]
    right = {i for i in range(15) if i % 3 and i % 5 != 4}
    trained, _ = asyncio.run(fit(program, data, [], reward, BootstrapFewShot(nb_min_examples=4, nb_max_examples=4),
                                 epochs=1, batch_size=15, rng=np.random.default_rng(3), monitor="reward"))
    plan, answer = trained.states["p/plan"].examples, trained.states["p/a"].examples
    assert len(plan) == len(answer) == 4
    assert [d.origin for d in plan] == [d.origin for d in answer]  # the same runs, in the same order
    for p, a in zip(plan, answer):
        i = int(p.origin.split(":")[1]) - 1
        assert i in right and p.reward == a.reward == 1.0
        assert (p.inputs, p.output) == ({"question": f"q{i}"}, {"plan": f"p{i}"})
        assert (a.inputs, a.output) == ({"plan": f"p{i}"}, {"answer": float(i)})


def test_a_run_below_the_threshold_credits_no_step() -> None:
    def run(i: int, final: float) -> Scored:
        steps = {"p/plan": StepRecord({"question": f"q{i}"}, {"plan": f"p{i}"}),
                 "p/a": StepRecord({"plan": f"p{i}"}, {"answer": float(i)})}
        return Scored(Example({"question": f"q{i}"}, {"answer": 0.0}, f"f:{i}"), Trace(steps, {"answer": 1.0}), final)

    pool = [run(0, 0.4), run(1, 0.9), run(2, 0.7), run(3, 1.0)]
    states = {"p/plan": StepState("plan"), "p/a": StepState("answer")}
    for seed in range(10):
        out = propose(BootstrapFewShot(3, 3, threshold=0.7), states, pool, np.random.default_rng(seed))
        assert sorted(origins(out["p/plan"])) == sorted(origins(out["p/a"])) == ["f:1", "f:2", "f:3"]


# ---- bootstrap_few_shot: candidates compared on validation ---------------------------


def validation(n: int) -> list[Example]:
    return [Example({"question": f"v{i}"}, {"thinking": "", "answer": float(i)}, f"val.jsonl:{i + 1}")
            for i in range(n)]


def demo_rows(request) -> list[int]:
    """The training rows a request shows as examples."""
    return [int(json.loads(m.content)["question"][1:]) for m in request.messages[1:-1] if m.role == "user"]


def judged_lm(plain: set[int], taught: set[int], teachers: set[int]) -> ScriptedLM:
    """Training questions are always answered right. Validation question `v{i}` is right
    when i is in `taught` if an example comes from a row in `teachers`, else in `plain`."""
    def answer(request) -> dict:
        question = last_input(request)["question"]
        i = int(question[1:])
        good = plain if not set(demo_rows(request)) & teachers else taught
        return {"thinking": "t", "answer": float(i) if question[0] == "q" or i in good else -1.0}
    return ScriptedLM(answer)


def bootstrap_fit(lm: ScriptedLM, n_val: int = 30, **options):
    optimizer = BootstrapFewShot(nb_min_examples=1, nb_max_examples=1, candidates=4, **options)
    trained, history = asyncio.run(fit(make_program(lm), examples(12), validation(n_val), reward, optimizer,
                                       epochs=1, batch_size=6, rng=np.random.default_rng(0)))
    return optimizer, trained, history


def test_a_better_candidate_is_kept_and_every_comparison_is_noted() -> None:
    lm = judged_lm(plain=set(), taught={i for i in range(30) if i % 4}, teachers={0, 1, 2, 3, 4, 5, 6, 7})
    optimizer, trained, history = bootstrap_fit(lm)
    # the epoch runs with the states it started with: no example is added between batches
    assert all(len(r.messages) == 2 for r in lm.requests if last_input(r)["question"][0] == "q")
    (event,) = history.events
    assert event["optimizer"] == "bootstrap_few_shot" and event["epoch"] == 1
    assert event["compared_on"] == 30 and event["runs"] == 12
    assert event["current"] == {"mean": 0.0, "std": 0.0, "n": 30, "stderr": 0.0}
    means = [c["mean"] for c in event["candidates"]]
    assert {round(m, 6) for m in means} == {0.0, round(22 / 30, 6)}  # taught by a good row, by a bad one
    assert all(c["n"] == 30 and c["stderr"] > 0 for c in event["candidates"] if c["mean"])
    best = event["candidates"][event["best"]]
    assert best["mean"] == max(means) and event["kept"]
    assert event["difference"]["mean"] == pytest.approx(22 / 30)
    assert origins(trained.states[PATH]) == best["origins"]
    assert int(best["origins"][0].split(":")[1]) - 1 in range(8)
    assert history.best_epoch == 1 and history.history["val_reward"] == [pytest.approx(22 / 30)]
    # validation before and after the epoch, the 12 training runs, the current states and each candidate
    extra = history.usage.calls - (30 + 12 + 30)
    assert extra == 30 * (1 + len(event["candidates"])) <= optimizer.planned_calls(
        train=12, validation=30, epochs=1, batches=2, lm_steps=1)
    assert json.loads(json.dumps(HistoryRecord.of(history).to_json()))["optimizer_events"] == history.events


def test_a_higher_mean_within_its_standard_error_is_not_kept() -> None:
    # Taught by a good row, v0 and v1 become right but v2 wrong: 29/30 against 28/30.
    plain = set(range(2, 30))
    lm = judged_lm(plain=plain, taught=set(range(30)) - {2}, teachers={0, 1, 2, 3, 4, 5, 6, 7})
    _, trained, history = bootstrap_fit(lm)
    (event,) = history.events
    best = event["candidates"][event["best"]]
    assert (best["mean"], event["current"]["mean"]) == (pytest.approx(29 / 30), pytest.approx(28 / 30))
    assert event["difference"]["mean"] < event["difference"]["stderr"]
    assert not event["kept"]
    assert not trained.states[PATH].examples and history.best_epoch == 0


def test_candidates_are_compared_on_a_fixed_sample_of_a_large_validation_set() -> None:
    asked: list[list[str]] = []

    async def evaluate(states, examples, label):
        asked.append([e.origin for e in examples])
        return Evaluation(0.0, tuple(Scored(e, Trace(), 0.0) for e in examples))

    optimizer = BootstrapFewShot(1, 2, candidates=3, compare_on=30)
    pool = scored_pool([1.0] * 10)
    for epoch in (1, 2):
        propose(optimizer, {PATH: StepState("x")}, pool, np.random.default_rng(epoch), validation=validation(60),
                evaluate=evaluate, end_of_epoch=True, epoch=epoch)
    assert len(asked) >= 4 and all(a == asked[0] for a in asked) and len(asked[0]) == 30
    order = [e.origin for e in validation(60)]
    assert asked[0] == sorted(asked[0], key=order.index)  # in the validation set's order


def test_nothing_is_evaluated_when_no_candidate_differs() -> None:
    rng = np.random.default_rng(0)
    ctx = context(rng, validation=validation(30), end_of_epoch=True)
    optimizer = BootstrapFewShot(1, 1, candidates=3)
    states = {PATH: StepState("x")}
    assert asyncio.run(optimizer.propose(states, scored_pool([0.0, None]), ctx)) == states
    taught = {PATH: StepState("x", propose(RandomFewShot(1, 1), states, scored_pool([1.0]), rng)[PATH].examples)}
    assert asyncio.run(optimizer.propose(taught, scored_pool([1.0]), ctx)) == taught
    assert [e["reason"] for e in ctx.events] == ["no run reached the threshold",
                                                 "no candidate differs from the current states"]


def test_budget_reached_during_a_comparison_propagates() -> None:
    async def evaluate(states, examples, label):
        raise BudgetReached(label)

    with pytest.raises(BudgetReached, match="bootstrap_few_shot: current"):
        propose(BootstrapFewShot(candidates=2), {PATH: StepState("x")}, scored_pool([1.0] * 4),
                np.random.default_rng(0), validation=validation(30), evaluate=evaluate, end_of_epoch=True)


def test_one_candidate_is_redrawn_after_every_batch_without_evaluating() -> None:
    lm = ScriptedLM(lambda r: {"thinking": "t", "answer": int(last_input(r)["question"][1:])})
    _, history = asyncio.run(fit(make_program(lm), examples(12), [], reward, BootstrapFewShot(2, 2),
                                 epochs=1, batch_size=4, rng=np.random.default_rng(0), monitor="reward"))
    shown = [len(r.messages) for r in lm.requests]
    assert shown[:4] == [2] * 4 and shown[4:] == [6] * 8  # 2 examples from the second batch on
    assert not history.events and history.usage.calls == 12


# ---- through a .icl file -------------------------------------------------------------

FILE = """
model Q { question: str "A question" }
model A { answer: float "The number" }
lm m = "local/smollm2-135m"
program p { input q: Q  a = generate A from q  output a }
data d = jsonl("rows.jsonl", split: 0.8)
train p on d {
    reward           exact_match()
    optimizer        bootstrap_few_shot(nb_max_examples: 2, candidates: 3, compare_on: 30)
    epochs           2
    batch_size       10
    validation_split 0.5
}
"""


def test_fit_keeps_a_candidate_that_wins_on_validation(tmp_path) -> None:
    rows = [{"question": f"q{i}", "answer": float(i)} for i in range(75)]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "p.icl").write_text(FILE)
    compiled = compile_source(Source.from_path(tmp_path / "p.icl"))

    def answer(request) -> dict:  # right on even rows, and on every row once shown an example
        i = int(last_input(request)["question"][1:])
        return {"answer": float(i) if i % 2 == 0 or len(request.messages) > 2 else -1.0}

    report = icldsl.fit(compiled, clients={"m": ScriptedLM(answer)}, write=False, report=False).report
    training = report.artifact["training"]
    assert report.sizes == {"train": 30, "validation": 30, "test": 15}
    first = training["optimizer_events"][0]
    assert first["epoch"] == 1 and first["compared_on"] == 30 and first["kept"]
    assert first["candidates"][first["best"]]["mean"] == 1.0
    assert report.trained.mean == 1.0 > report.untrained.mean
    demos = report.program.states["p/a"].examples
    lines = [d.origin.rsplit(":", 1) for d in demos]
    assert demos and all(file.endswith("rows.jsonl") and d.reward == 1.0 for (file, _), d in zip(lines, demos))
    assert all(int(line) % 2 == 1 for _, line in lines)  # rows 0, 2, ... are lines 1, 3, ...


# ---- labeled_few_shot ---------------------------------------------------------------

MOODS = """
model Review { text: str "A review" }
model Mood { label: enum("good", "bad", "meh") "The feeling" }
model Note { text: str "A note" }
lm m = "local/smollm2-135m"
program p { input r: Review  s = decide Mood from r  output s }
program chained { input r: Review  n = generate Note from r  s = decide Mood from n  output s }
"""


def moods(n: int, start: int = 0) -> list[Example]:
    labels = ("good", "bad", "meh")
    return [Example({"text": f"t{i}"}, {"label": labels[i % 3]}, f"d:rows.jsonl:{i + 1}") for i in range(start, start + n)]


def meh_only_when_shown(request) -> dict:
    """A model that never answers `meh` unless an example showed it, and is otherwise right."""
    i = int(last_input(request)["text"][1:])
    truth = ("good", "bad", "meh")[i % 3]
    shown = any('"meh"' in m.content for m in request.messages if m.role == "assistant")
    return {"label": truth if truth != "meh" or shown else "good"}


def moods_program(lm, name="p") -> Program:
    spec, states = spec_and_states(compile_source(Source("m.icl", MOODS)), name)
    return Program(spec, states, {"m": lm})


def test_labeled_few_shot_shows_a_label_the_model_never_gives_and_keeps_it_for_the_win() -> None:
    lm = ScriptedLM(meh_only_when_shown)
    program = moods_program(lm)
    trained, history = asyncio.run(fit(program, moods(30), moods(36, start=100), exact_match(), LabeledFewShot(
        nb_min_examples=3, nb_max_examples=3, candidates=2), epochs=1, batch_size=30, rng=np.random.default_rng(0)))
    demos = trained.states["p/s"].examples
    assert sorted(d.output["label"] for d in demos) == ["bad", "good", "meh"]  # balanced: one of each
    assert all(d.origin.startswith("d:rows.jsonl:") and d.reward == 1.0 for d in demos)
    (event,) = history.events
    assert event["kept"] and event["compared_on"] == 36 and event["current"]["mean"] == pytest.approx(2 / 3)
    assert history.history["val_reward"] == [1.0]


def test_labeled_few_shot_leaves_a_step_that_does_not_read_the_input_alone() -> None:
    lm = ScriptedLM(lambda r: {"text": "n"} if r.schema_name == "Note" else {"label": "good"})
    program = moods_program(lm, "chained")
    trained, history = asyncio.run(fit(program, moods(6), moods(3, start=50), exact_match(), LabeledFewShot(),
                                       epochs=1, batch_size=6, rng=np.random.default_rng(0)))
    assert all(not state.examples for state in trained.states.values())
    assert history.events[0]["reason"].startswith("no step reads the program's input alone")


def test_labeled_few_shot_planned_calls() -> None:
    assert LabeledFewShot(candidates=3).planned_calls(train=40, validation=60, epochs=2, batches=3,
                                                      lm_steps=1) == 2 * 4 * 50
