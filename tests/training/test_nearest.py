"""nearest_few_shot: pools from the data or from runs, k chosen on validation, no training
runs when the data suffices, the artifact keeping what was scored, and bad input."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

import icldsl
from icldsl import artifact, cli
from icldsl.language.compiler import compile_source
from icldsl.diff import diff_docs, format_diff
from icldsl.lm.cache import LMCache
from icldsl.language.source import Source
from tests.scripted import ScriptedLM, last_input

# Queries `<word> <n>`; the intent is the word's. The scripted model answers an input with
# the intent of the last example whose query starts with the same word (what a model that
# follows its nearest example does), else "other".
WORDS = {"freeze": "lock", "balance": "money", "transfer": "move", "card": "plastic"}

SOURCE = """
model M {{ query: str "A message" }}
model I {{ intent: enum("lock", "money", "move", "plastic", "other") "What it asks for" }}
lm small = "local/smollm2-135m" {{ temperature: 0.0 }}
program p {{ input m: M  i = decide I from m  output i }}
data d = jsonl("d.jsonl", test: "t.jsonl")
train p on d {{
    reward exact_match()
    optimizer nearest_few_shot({options})
    {extra}
}}
"""


def rows(n: int, start: int = 0) -> list[dict]:
    words = list(WORDS)
    return [{"query": f"{words[i % 4]} {i}", "intent": WORDS[words[i % 4]]} for i in range(start, start + n)]


def write(tmp_path: Path, options: str = "", extra: str = "validation_split 0.25", train: list[dict] | None = None,
          test: list[dict] | None = None, source: str = SOURCE) -> Source:
    for name, data in (("d.jsonl", train if train is not None else rows(120)),
                       ("t.jsonl", test if test is not None else rows(40, 500))):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in data), encoding="utf-8")
    text = source.format(options=options, extra=extra)
    (tmp_path / "p.icl").write_text(text, encoding="utf-8")
    return Source(str(tmp_path / "p.icl"), text)


def follower(request) -> dict:
    word = last_input(request)["query"].split()[0]
    shown = [json.loads(m.content) for m in request.messages[1:-1]]
    pairs = list(zip(shown[::2], shown[1::2]))
    labels = [out["intent"] for inp, out in pairs if inp["query"].split()[0] == word]
    return {"intent": labels[-1] if labels else "other"}


def fit(source: Source, lm: ScriptedLM, cache: LMCache | None = None):
    compiled = compile_source(source)
    return icldsl.fit(compiled, clients={"small": lm}, cache=cache, write=False, report=False).report


def test_retrieval_trains_from_the_data_without_training_runs(tmp_path: Path) -> None:
    lm = ScriptedLM(follower)
    report = fit(write(tmp_path, "k: [1, 2]"), lm)
    assert (report.untrained.mean, report.trained.mean) == (0.0, 1.0)
    # untrained test 40, validation 30 before training, then two candidates on it (the current
    # states again first), the epoch's validation, the trained test: no run over the 90 training rows.
    assert len(lm.requests) == 40 + 30 + 3 * 30 + 30 + 40
    assert "reward" not in report.history.history and report.history.history["val_reward"] == [1.0]
    state = report.artifact["states"]["p/i"]
    assert state["examples"] == [] and state["retrieval"]["k"] == 1
    pool = state["retrieval"]["examples"]
    validation = {s.example.origin for s in report.history.validation.scored}
    assert len(pool) == 90 and not validation & {e["origin"] for e in pool}
    (event,) = report.history.events
    assert event["optimizer"] == "nearest_few_shot" and event["kept"] is True
    assert event["pools"] == {"p/i": {"source": "data", "size": 90, "duplicates": 0}}
    assert [c["k"] for c in event["candidates"]] == [{"p/i": 1}, {"p/i": 2}]
    assert event["compared_on"] == 30


def test_the_loaded_artifact_sends_exactly_what_was_scored(tmp_path: Path) -> None:
    lm = ScriptedLM(follower)
    report = fit(write(tmp_path, "k: 3"), lm)
    path = artifact.write(tmp_path / "p.artifact.json", report.artifact)
    scored = {json.dumps(last_input(r)): r.messages for r in lm.requests[-40:]}  # the trained test run
    (tmp_path / "p.icl").unlink()  # loads without its source
    again = ScriptedLM(follower)
    loaded = icldsl.load(path, clients={"small": again})
    for row in rows(40, 500)[:5]:
        assert loaded(query=row["query"]).intent == row["intent"]
        assert again.requests[-1].messages == scored[json.dumps({"query": row["query"]})]
    loaded.close()


def test_render_shows_the_examples_an_input_would_get(tmp_path: Path, capsys) -> None:
    report = fit(write(tmp_path, "k: 2"), ScriptedLM(follower))
    path = artifact.write(tmp_path / "p.artifact.json", report.artifact)
    assert cli.main(["render", str(tmp_path / "p.icl"), "--artifact", str(path),
                     "--input", '{"query": "card 7"}']) == 0
    out = capsys.readouterr().out
    assert "(retrieved for this input, in prompt order: " in out
    assert out.count('{"intent": "plastic"}') == 2 and out.rstrip().endswith('{"query": "card 7"}')
    assert cli.main(["render", str(tmp_path / "p.icl"), "--artifact", str(path)]) == 0
    assert "(retrieves the 2 examples nearest each input from a pool of 90; give --input to see them)" in \
        capsys.readouterr().out


def test_diff_names_the_pool_rows_that_changed(tmp_path: Path) -> None:
    a = fit(write(tmp_path, "k: 2"), ScriptedLM(follower)).artifact
    b = fit(write(tmp_path, "k: 2", train=rows(119) + [{"query": "card 999", "intent": "plastic"}]),
            ScriptedLM(follower)).artifact
    result = diff_docs(a, b)
    pool = result["steps"]["p/i"]["retrieval"]["pool"]
    in_b = {e["origin"]: e for e in b["states"]["p/i"]["retrieval"]["examples"]}
    if "d:d.jsonl:120" in in_b:  # the new row went to the pool, not to validation
        assert pool["changed"] == [{"a": next(e for e in a["states"]["p/i"]["retrieval"]["examples"]
                                              if e["origin"] == "d:d.jsonl:120"), "b": in_b["d:d.jsonl:120"]}]
    c = fit(write(tmp_path, "k: 2", train=rows(120, 1000)), ScriptedLM(follower)).artifact
    result = diff_docs(a, c)
    pool = result["steps"]["p/i"]["retrieval"]["pool"]
    assert len(pool["changed"]) == 90  # the same rows (origins), other queries
    text = format_diff(result, "a", "c")
    assert "  pool: 90 changed (the first 12 of each shown; --json has them all)" in text
    assert "retriever.sha256" in text and text.count("    ~ d:d.jsonl:") == 12


def test_k_above_the_pool_and_duplicate_rows(tmp_path: Path) -> None:
    train = rows(4) * 3  # four distinct queries, each three times
    report = fit(write(tmp_path, "k: [2, 8, 50]", "validation_split 0.1", train=train), ScriptedLM(follower))
    (event,) = report.history.events
    (pool,) = event["pools"].values()
    assert pool["source"] == "data" and pool["size"] + pool["duplicates"] == 11 and pool["size"] <= 4
    # 8 and 50 both mean "the whole pool": one candidate, not two
    assert [c["k"]["p/i"] for c in event["candidates"]] == [2, pool["size"]]


def test_a_step_that_reads_an_earlier_step_pools_its_successful_runs(tmp_path: Path) -> None:
    source = SOURCE.replace(
        'program p {{ input m: M  i = decide I from m  output i }}',
        'model N {{ note: str "A note" }}\n'
        'program p {{ input m: M  n = generate N from m  i = decide I from m + n  output i }}')

    def answer(request):
        if "note" in json.dumps(request.schema):
            return {"note": last_input(request)["query"].split()[0]}
        return {"intent": WORDS[last_input(request)["note"]] if "0" in last_input(request)["query"] else "other"}

    report = fit(write(tmp_path, "k: 2", source=source), ScriptedLM(answer))
    (event,) = report.history.events
    # neither step's answer is all in the data (no `note` column; p/i reads p/n): both pool their runs,
    # and only the runs whose reward reached 1 (queries with a 0 in them) count
    assert {p["source"] for p in event["pools"].values()} == {"runs"}
    assert 0 < event["pools"]["p/i"]["size"] == event["pools"]["p/n"]["size"] < 90


def test_every_pool_empty_is_noted_and_nothing_changes(tmp_path: Path) -> None:
    source = SOURCE.replace(
        'program p {{ input m: M  i = decide I from m  output i }}',
        'model N {{ note: str "A note" }}\n'
        'program p {{ input m: M  n = frozen generate N from m  i = decide I from m + n  output i }}')
    lm = ScriptedLM(lambda r: {"note": "x"} if "note" in json.dumps(r.schema) else {"intent": "other"})
    report = fit(write(tmp_path, "", source=source), lm)
    (event,) = report.history.events
    assert event["kept"] is False and "every pool is empty" in event["reason"]
    assert "retrieval" not in report.artifact["states"]["p/i"]


def test_inputs_that_are_not_text_are_compared_by_their_json(tmp_path: Path) -> None:
    source = SOURCE.replace('model M {{ query: str "A message" }}',
                            'model M {{ query: str "A message"  urgent: bool "Now?" }}')
    train = [{**r, "urgent": i % 2 == 0} for i, r in enumerate(rows(120))]  # 30 validation rows: enough to switch
    test = [{**r, "urgent": True} for r in rows(20, 500)]
    report = fit(write(tmp_path, "k: 2", train=train, test=test, source=source), ScriptedLM(follower))
    assert report.trained.mean == 1.0


def test_an_embedding_retriever_embeds_each_text_once(tmp_path: Path, monkeypatch) -> None:
    embedded: list[str] = []

    class Words:
        """Vectors that count each intent word: a query is nearest its own word's examples."""

        name = "fake/words"

        async def embed(self, texts):
            embedded.extend(texts)
            return [[float(t.startswith(w)) for w in WORDS] + [0.1] for t in texts]

        async def aclose(self):
            pass

    monkeypatch.setattr("icldsl.lm.connect.connect_embedder", lambda *a, **k: Words())
    source = SOURCE.replace('lm small', 'embedding e = "openai/text-embedding-3-small"\nlm small')
    report = fit(write(tmp_path, "k: [1, 2], retriever: e", source=source), ScriptedLM(follower))
    assert report.trained.mean == 1.0
    assert len(embedded) == len(set(embedded)) == 90 + 30 + 40  # the pool, validation, test: once each
    retriever = report.artifact["states"]["p/i"]["retrieval"]["retriever"]
    assert retriever["kind"] == "embedding" and retriever["dimension"] == 5
    assert retriever["embedding"] == {"name": "e", "target": "openai/text-embedding-3-small", "options": {}}


@pytest.mark.parametrize("options, message", [
    ("retriever: nope", "unknown embedding `nope`"),
    ('retriever: "bm2"', 'must be one of "bm25" or the name of an embedding'),
    ('order: "middle"', 'must be one of "nearest_last", "nearest_first"'),
    ("k: [4, 0]", "must be an integer of at least 1 or a non-empty list, each an integer of at least 1"),
    ("compare_on: 10", "must be an integer of at least 30"),
    ("cascade: [0.5, 2]", "must be true or false or a number from 0 to 1 or a non-empty list, each true or false "
                          "or a number from 0 to 1"),
    ("cascade: 1.5", "must be true or false or a number from 0 to 1 or a non-empty list"),
])
def test_bad_settings_get_a_message(tmp_path: Path, capsys, options: str, message: str) -> None:
    write(tmp_path, options)
    code = cli.main(["fit", str(tmp_path / "p.icl"), "-q", "--no-report"])
    assert code == 1 and message in capsys.readouterr().err


def test_plan_counts_no_training_runs(tmp_path: Path, capsys) -> None:
    write(tmp_path, "k: [2, 4]")
    assert cli.main(["plan", str(tmp_path / "p.icl")]) == 0
    out = capsys.readouterr().out
    assert "epoch 1: training" not in out and "optimizer nearest_few_shot" in out
    assert "the optimizers learn from the data alone" in out


def test_a_cached_refit_writes_the_same_bytes(tmp_path: Path) -> None:
    with LMCache(tmp_path / "c.sqlite3") as cache:
        first = fit(write(tmp_path, "k: [1, 2]"), ScriptedLM(follower), cache)
        again = ScriptedLM(follower)
        second = fit(write(tmp_path, "k: [1, 2]"), again, cache)
    assert again.requests == [] and artifact.canonical(first.artifact) == artifact.canonical(second.artifact)
    assert np.isclose(first.trained.mean, 1.0)


# A tiny pool for the retriever-alone baselines and the restricted labels (bm25, by hand:
# "red" is in three of four queries, every other word in one; all queries are two words long).
POOL = [("red apple", "lock"), ("red car", "move"), ("red bus", "move"), ("green pear", "lock")]
# query, truth, and what 3 nearest it retrieves (nearest first): vote, 1-nearest
PROBES = [("red apple", "lock"),    # red apple L, red car M, red bus M: vote M (0), 1-nearest L (1)
          ("red bus", "move"),      # red bus M, red apple L, red car M: vote M (1), 1-nearest M (1)
          ("green apple", "lock"),  # red apple L, green pear L (tie: earlier first), red car M: L (1), L (1)
          ("blue pear", "move")]    # green pear L, red apple L, red car M: vote L (0), 1-nearest L (0)


def tiny_program(lm: ScriptedLM, k: int = 3, **retrieval):
    from icldsl.runtime.retrieval import BM25, Pool, Retrieval
    from icldsl.runtime.state import Demo
    from icldsl.training.session import program_of

    compiled = compile_source(Source("p.icl", SOURCE.format(options="", extra="")))
    program = program_of(compiled, "p", {"small": lm})
    demos = tuple(Demo({"query": q}, {"intent": i}, 1.0, f"pool:{n}") for n, (q, i) in enumerate(POOL))
    pool = Pool(demos, BM25([q for q, _ in POOL]))
    state = program.states["p/i"].with_retrieval(Retrieval(pool, k, **retrieval))
    return program.with_states({"p/i": state})


def score_probes(program):
    from icldsl.datasets.base import Example
    from icldsl.training.rewards import exact_match
    from icldsl.training.trainer import evaluate

    examples = [Example({"query": q}, {"intent": i}, f"t:{n}") for n, (q, i) in enumerate(PROBES)]
    return asyncio.run(evaluate(program, examples, exact_match()))


def test_the_retriever_alone_votes_and_takes_the_nearest_without_an_lm_call() -> None:
    from icldsl.runtime.retrieval import vote
    from icldsl.training.baselines import baselines

    lm = ScriptedLM(lambda r: {"intent": "move"})
    program = tiny_program(lm)
    evaluation = score_probes(program)
    assert len(lm.requests) == 4  # the program's calls; the baselines make none
    (found,) = baselines(program, evaluation.scored)
    assert found["step"] == "p/i" and found["field"] == "intent" and found["k"] == 3
    assert found["vote"]["mean"] == 0.5 and found["nearest1"]["mean"] == 0.75
    # trained (always "move") [0, 1, 0, 1] - vote [0, 1, 1, 0]
    diff = found["trained_minus_vote"]
    assert diff["mean"] == 0.0 and diff["n"] == 4 and np.isclose(diff["se"], np.sqrt(2 / 3) / 2)
    assert np.isclose(found["vote"]["se"], np.sqrt(1 / 3) / 2)
    assert vote(["a", "b", "b", "a"]) == "a" and vote(["a", "b", "b"]) == "b" and vote([]) is None
    assert len(lm.requests) == 4


def test_fit_prints_and_stores_the_baselines(tmp_path: Path, capsys) -> None:
    def half(request):  # follows its examples for `card` queries only
        return follower(request) if last_input(request)["query"].startswith("card") else {"intent": "other"}

    report = fit(write(tmp_path, "k: 2"), ScriptedLM(half))
    (found,) = report.artifact["training"]["baselines"]
    # every query's nearest examples share its word, so the retriever alone is always right
    assert found["vote"] == {"mean": 1.0, "se": 0.0} and found["nearest1"]["mean"] == 1.0
    assert found["trained_minus_vote"]["mean"] == -0.75 and found["trained_minus_vote"]["n"] == 40
    from icldsl.cli import tables

    lines = tables.baseline_lines(report.baselines)
    assert lines == ["retrieval alone (p/i, intent, k=2): vote of the retrieved labels 1.000, 1-nearest 1.000",
                     "trained - vote: -0.750 ± 0.069 (paired over 40 examples; more than two standard errors)"]
    # `fit -q` shows only the worst labels (by the trained F1; ties in declared order)
    table = tables.labels_table([("untrained", report.untrained), ("trained", report.trained)], worst=2).splitlines()
    assert [line.split()[0] for line in table[1:3]] == ["intent=lock", "intent=money"]
    assert table[3] == "(the 2 labels with the lowest trained F1 of 5; report.html and the artifact have them all)"
    assert len(tables.labels_table([("trained", report.trained)]).splitlines()) == 6


def test_retrieved_labels_restrict_the_enum_in_the_prompt_and_the_request() -> None:
    lm = ScriptedLM(lambda r: {"intent": r.schema["properties"]["intent"]["enum"][0]})
    program = tiny_program(lm, labels="retrieved")
    evaluation = score_probes(program)
    enums = [r.schema["properties"]["intent"]["enum"] for r in lm.requests]
    by_query = {last_input(r)["query"]: e for r, e in zip(lm.requests, enums)}
    assert by_query == {"red apple": ["lock", "move"], "red bus": ["lock", "move"], "green apple": ["lock", "move"],
                        "blue pear": ["lock", "move"]}
    system = lm.requests[0].messages[0].content
    assert '"enum": ["lock", "move"]' in system and "plastic" not in system
    assert [s.trace.output for s in evaluation.scored] == [{"intent": "lock"}] * 4
    # k=1: one label, shown alone
    lm = ScriptedLM(lambda r: {"intent": r.schema["properties"]["intent"]["enum"][0]})
    score_probes(tiny_program(lm, k=1, labels="retrieved"))
    assert [r.schema["properties"]["intent"]["enum"] for r in lm.requests] == [["lock"], ["move"], ["lock"], ["lock"]]


def test_render_shows_the_retrieved_labels(tmp_path: Path, capsys) -> None:
    report = fit(write(tmp_path, 'k: 2, labels: "retrieved"'), ScriptedLM(follower))
    assert report.artifact["states"]["p/i"]["retrieval"]["labels"] == "retrieved"
    path = artifact.write(tmp_path / "p.artifact.json", report.artifact)
    assert cli.main(["render", str(tmp_path / "p.icl"), "--artifact", str(path),
                     "--input", '{"query": "card 7"}']) == 0
    out = capsys.readouterr().out
    assert '"enum": ["plastic"]' in out and '"lock"' not in out.split("{\"query\"")[0]


def test_a_cascade_answers_unanimous_examples_without_a_call() -> None:
    lm = ScriptedLM(lambda r: {"intent": "other"})
    program = tiny_program(lm, k=2, cascade=1.0)
    evaluation = score_probes(program)
    # 2 nearest: red apple L + red car M; red bus M + red apple L; red apple L + green pear L (unanimous);
    # green pear L + red apple L (unanimous)
    asked = [last_input(r)["query"] for r in lm.requests]
    assert asked == ["red apple", "red bus"]
    records = [s.trace.steps["p/i"] for s in evaluation.scored]
    assert [r.cascaded for r in records] == [False, False, True, True]
    assert [s.trace.output for s in evaluation.scored][2:] == [{"intent": "lock"}] * 2
    from icldsl.training.usage import UsageTable

    total = UsageTable.of(evaluation.scored).total
    assert (total.calls, total.cascaded) == (2, 2) and total.to_json()["cascaded"] == 2


def test_a_cascade_share_lets_the_vote_answer_when_enough_examples_carry_it() -> None:
    from icldsl.training.baselines import baselines

    # k = 3: each probe's vote is carried by 2 of its 3 examples (PROBES)
    for share, calls in ((0.7, 4), (2 / 3, 0), (0.5, 0), (0.3, 0), (0.0, 0)):
        lm = ScriptedLM(lambda r: {"intent": "other"})
        evaluation = score_probes(tiny_program(lm, k=3, cascade=share))
        assert len(lm.requests) == calls
        if not calls:  # every probe answered by the vote, exactly as the vote baseline scores it
            assert [s.trace.output["intent"] for s in evaluation.scored] == ["move", "move", "lock", "lock"]
            (found,) = baselines(evaluation_program := tiny_program(lm, k=3, cascade=share), evaluation.scored)
            assert evaluation_program.states["p/i"].retrieval.cascade == share
            assert found["trained_minus_vote"]["mean"] == 0.0 and found["trained_minus_vote"]["se"] == 0.0
    # k = 2, share 0.5: a tie goes to the nearest example's output, as the vote's does
    lm = ScriptedLM(lambda r: {"intent": "other"})
    evaluation = score_probes(tiny_program(lm, k=2, cascade=0.5))
    assert not lm.requests and [s.trace.output["intent"] for s in evaluation.scored] == \
        ["lock", "move", "lock", "lock"]


def test_a_cascade_share_round_trips_and_true_keeps_its_bytes() -> None:
    from icldsl.runtime.retrieval import Retrieval, RetrievalError, cascade_share

    program = tiny_program(ScriptedLM(lambda r: {"intent": "other"}), k=2, cascade=0.75)
    retrieval = program.states["p/i"].retrieval
    doc = retrieval.to_json()
    assert doc["cascade"] == 0.75 and Retrieval.from_json(doc).cascade == 0.75
    unanimous = Retrieval(retrieval.pool, 2, cascade=1.0).to_json()
    assert unanimous["cascade"] is True and Retrieval.from_json(unanimous).cascade == 1.0
    assert "cascade" not in Retrieval(retrieval.pool, 2).to_json()
    assert Retrieval.from_json({**doc, "cascade": False}).cascade is None
    with pytest.raises(RetrievalError, match="cascade must be"):
        cascade_share(1.5)


def test_cascade_shares_are_chosen_on_validation_with_ties_to_the_fewest_calls(tmp_path: Path) -> None:
    lm = ScriptedLM(follower)
    report = fit(write(tmp_path, "k: 2, cascade: [false, 1, 0.5]"), lm)
    (event,) = report.history.events
    assert event["cascade"] == [0.5, True, False]
    assert [c.get("cascade", {}).get("p/i", False) for c in event["candidates"]] == [0.5, True, False]
    assert [c["mean"] for c in event["candidates"]] == [1.0, 1.0, 1.0] and event["best"] == 0
    assert report.artifact["states"]["p/i"]["retrieval"]["cascade"] == 0.5
    from icldsl.cli import tables

    (found,) = report.artifact["training"]["baselines"]
    assert found["cascade"] == 0.5 and found["trained_minus_vote"]["mean"] == 0.0
    assert tables.baseline_lines(report.baselines)[0].startswith("retrieval alone (p/i, intent, k=2, cascade 0.5): ")
    # calls: untrained test 40, validation 30, the current states 30, the candidate without cascade 30
    assert len(lm.requests) == 40 + 30 + 30 + 30


def test_a_switch_on_fewer_validation_rows_than_the_minimum_is_refused(tmp_path: Path, capsys) -> None:
    from icldsl.training.estimate import MIN_COMPARED

    report = fit(write(tmp_path, "k: 2", train=rows(48)), ScriptedLM(follower))  # 12 validation rows
    (event,) = report.history.events
    assert event["compared_on"] == 12 < MIN_COMPARED and event["kept"] is False
    assert event["difference"]["mean"] == 1.0  # it won by far, yet on too few rows
    assert event["refused"] == ("+1.000 ± 0.000 on 12 validation rows, fewer than the 30 a switch needs "
                                "(raise validation_split, or compare_on)")
    assert "retrieval" not in report.artifact["states"]["p/i"] and report.trained.mean == 0.0
    from icldsl.cli import tables

    assert "kept the current states (refused: +1.000 ± 0.000 on 12 validation rows" in \
        "\n".join(tables.event_lines(report.history.events))


def test_labels_given_as_a_list_are_chosen_on_validation_with_each_k(tmp_path: Path) -> None:
    lm = ScriptedLM(follower)
    report = fit(write(tmp_path, 'k: [1, 2], labels: ["all", "retrieved"], cascade: true'), lm)
    (event,) = report.history.events
    assert [(c["k"]["p/i"], c.get("labels", {}).get("p/i", "all")) for c in event["candidates"]] == \
        [(1, "all"), (1, "retrieved"), (2, "all"), (2, "retrieved")]
    assert event["cascade"] is True and event["kept"] is True
    # every query's nearest examples agree: the cascade answers all of them; the calls are the untrained
    # program's (test, validation 0, the current states in the comparison)
    assert len(lm.requests) == 40 + 30 + 30
    usage = report.artifact["training"]["usage_by_step"]["p/i"]
    assert usage["cascaded"] == 4 * 30 + 30 + 40 and report.trained.mean == 1.0
    assert report.artifact["states"]["p/i"]["retrieval"]["cascade"] is True


def test_only_labels_restricts_plain_and_optional_enums_and_keeps_the_rest() -> None:
    from icldsl.runtime.request import only_labels
    from icldsl.runtime.state import Demo

    schema = {"properties": {
        "a": {"enum": ["x", "y", "z"], "type": "string"},
        "b": {"anyOf": [{"enum": ["p", "q"], "type": "string"}, {"type": "null"}], "default": None},
        "c": {"type": "string"}, "d": {"enum": ["u", "v"], "type": "string"}}, "type": "object"}
    shown = [Demo({}, {"a": "z", "b": "q", "c": "t", "d": "w"}, 1.0, "1"), Demo({}, {"a": "x", "b": None}, 1.0, "2")]
    restricted = only_labels(schema, shown)
    assert restricted["properties"]["a"] == {"enum": ["x", "z"], "type": "string"}  # the declared order
    assert restricted["properties"]["b"]["anyOf"][0]["enum"] == ["q"] and restricted["properties"]["b"]["default"] is None
    assert restricted["properties"]["c"] == schema["properties"]["c"]
    assert restricted["properties"]["d"] == schema["properties"]["d"]  # no example carries one of its labels
    assert schema["properties"]["a"]["enum"] == ["x", "y", "z"]  # the shared schema is left alone
    assert only_labels(schema, shown) is restricted  # one object per label set
    assert only_labels(schema, [Demo({}, {"a": "q"}, 1.0, "3")]) is schema


def choosing(pick):
    """A scripted LM for requests with choices: answers the text `pick(choices)` names."""
    return ScriptedLM(lambda r: pick(r.choices) if r.choices else {"intent": "other"})


def test_a_vote_weight_sends_the_retrieved_outputs_with_their_vote_as_priors() -> None:
    lm = choosing(lambda choices: choices[0][0])  # the nearest example's output
    evaluation = score_probes(tiny_program(lm, k=3, vote_weight=2.0))
    lock, move = '{"intent": "lock"}', '{"intent": "move"}'
    third, two_thirds = 2 * np.log(1 / 3), 2 * np.log(2 / 3)
    by_query = {last_input(r)["query"]: [(text, round(prior, 9)) for text, prior in r.choices] for r in lm.requests}
    assert by_query == {  # nearest first, each prior 2 x log(its share of the 3 examples) (PROBES)
        "red apple": [(lock, round(third, 9)), (move, round(two_thirds, 9))],
        "red bus": [(move, round(two_thirds, 9)), (lock, round(third, 9))],
        "green apple": [(lock, round(two_thirds, 9)), (move, round(third, 9))],
        "blue pear": [(lock, round(two_thirds, 9)), (move, round(third, 9))]}
    assert [s.trace.output["intent"] for s in evaluation.scored] == ["lock", "move", "lock", "lock"]
    assert all(r.schema is not None for r in lm.requests)  # the schema still travels (the cache key, render)


def test_with_a_vote_weight_examples_that_all_agree_answer_without_a_call() -> None:
    lm = choosing(lambda choices: choices[-1][0])
    evaluation = score_probes(tiny_program(lm, k=2, vote_weight=0.0))
    # 2 nearest (PROBES): red apple L + red car M; red bus M + red apple L; then two unanimous L
    assert [last_input(r)["query"] for r in lm.requests] == ["red apple", "red bus"]
    assert [r.choices for r in lm.requests] == [(('{"intent": "lock"}', 0.0), ('{"intent": "move"}', 0.0)),
                                                (('{"intent": "move"}', 0.0), ('{"intent": "lock"}', 0.0))]
    assert [s.trace.steps["p/i"].cascaded for s in evaluation.scored] == [False, False, True, True]
    assert [s.trace.output["intent"] for s in evaluation.scored] == ["move", "lock", "lock", "lock"]


def test_a_vote_weight_round_trips_and_is_absent_without_one() -> None:
    from icldsl.runtime.retrieval import Retrieval, RetrievalError

    retrieval = tiny_program(ScriptedLM(lambda r: {"intent": "other"}), k=2, vote_weight=1.5).states["p/i"].retrieval
    doc = retrieval.to_json()
    assert doc["vote_weight"] == 1.5 and Retrieval.from_json(doc).vote_weight == 1.5
    assert "vote_weight" not in Retrieval(retrieval.pool, 2).to_json()
    assert Retrieval(retrieval.pool, 2).key() != retrieval.key()
    for bad in (-1, True, "1"):
        with pytest.raises(RetrievalError, match="vote_weight must be a number from 0"):
            Retrieval.from_json({**doc, "vote_weight": bad})


def test_vote_weights_are_chosen_on_validation(tmp_path: Path) -> None:
    # Each query's 3 nearest rows share its first word, so its label: with a weight they answer
    # without a call; generating (false), the follower answers the same. All tie: the first wins.
    lm = ScriptedLM(follower)
    report = fit(write(tmp_path, "k: 3, vote_weight: [1, false, 0.5]"), lm)
    (event,) = report.history.events
    assert event["vote_weight"] == [False, 0.5, 1.0]
    assert [c.get("vote_weight", {}).get("p/i", False) for c in event["candidates"]] == [False, 0.5, 1.0]
    assert [c["mean"] for c in event["candidates"]] == [1.0, 1.0, 1.0] and event["best"] == 0
    assert not any(r.choices for r in lm.requests)
    assert "vote_weight" not in report.artifact["states"]["p/i"]["retrieval"]


@pytest.mark.parametrize("options, message", [
    ("vote_weight: -1", "must be true or false or a number of at least 0 or a non-empty list"),
    ('vote_weight: "high"', "must be true or false or a number of at least 0"),
])
def test_bad_vote_weights_get_a_message(tmp_path: Path, capsys, options: str, message: str) -> None:
    write(tmp_path, options)
    code = cli.main(["fit", str(tmp_path / "p.icl"), "-q", "--no-report"])
    assert code == 1 and message in capsys.readouterr().err


def test_check_refuses_a_vote_weight_for_an_lm_that_cannot_score(tmp_path: Path, capsys) -> None:
    remote = SOURCE.replace('"local/smollm2-135m"', '"openai/gpt-4.1-mini"')
    write(tmp_path, "vote_weight: [false, 1]", source=remote)
    assert cli.main(["check", str(tmp_path / "p.icl")]) == 1
    err = capsys.readouterr().err
    assert "`vote_weight` needs an LM that can score its examples' outputs; `small` (provider `openai`) cannot" in err
    assert "use an lm of provider local" in err
    write(tmp_path, "vote_weight: false", source=remote)
    assert cli.main(["check", str(tmp_path / "p.icl")]) == 0
    write(tmp_path, "vote_weight: [false, 1]")
    assert cli.main(["check", str(tmp_path / "p.icl")]) == 0


def test_render_shows_the_answers_a_scoring_lm_chooses_among() -> None:
    from icldsl.runtime.render import render_program, render_text

    program = tiny_program(ScriptedLM(lambda r: {"intent": "other"}), k=3, vote_weight=1.0)
    text = render_text(program, asyncio.run(render_program(program, {"query": "red apple"})))
    assert ('(the LM scores these answers, each with its prior, the vote weight x log(its share of the examples): '
            '{"intent": "lock"} -1.099, {"intent": "move"} -0.405)') in text
    plain = tiny_program(ScriptedLM(lambda r: {"intent": "other"}), k=3)
    assert "scores these answers" not in render_text(plain, asyncio.run(render_program(plain, {"query": "red apple"})))
