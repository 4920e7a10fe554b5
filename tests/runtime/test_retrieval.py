"""Retrieval at call time: tokens, BM25 scores, the nearest k and their order, what an
artifact keeps of a pool and how it is checked on the way back."""

from __future__ import annotations

import asyncio
import json
import math

import numpy as np
import pytest

import icldsl
from icldsl.runtime.demo import Demo
from icldsl.runtime.retrieval import BM25, Dense, Pool, Retrieval, RetrievalError, nearest, query_text, tokens
from icldsl.language.specs import EmbeddingSpec
from icldsl.runtime.state import spec_and_states

TEXTS = ["freeze my account now", "what is my balance", "transfer money to my savings account",
         "my card is frozen", "balance please"]


def demos(texts: list[str]) -> tuple[Demo, ...]:
    return tuple(Demo({"query": t}, {"intent": f"i{n}"}, 1.0, f"d:{n + 1}") for n, t in enumerate(texts))


def no_embedding(spec, text):
    raise AssertionError("a lexical retriever embeds nothing")


def select(retrieval: Retrieval, query: str, embed=no_embedding) -> list[str]:
    return [d.origin for d in asyncio.run(retrieval.select({"query": query}, embed))]


def test_tokens_are_lowercased_unicode_word_runs() -> None:
    assert tokens("Can't FREEZE my Konto—jetzt, über 2x!") == ["can", "t", "freeze", "my", "konto", "jetzt", "über", "2x"]


def test_query_text_is_the_only_string_field_or_else_the_inputs_json() -> None:
    assert query_text({"query": "hello"}) == "hello"
    assert query_text({"n": 3}) == '{"n": 3}'
    assert query_text({"b": "x", "a": [1, "ü"]}) == '{"b": "x", "a": [1, "ü"]}'  # fields in order, not sorted


def test_bm25_scores_follow_the_formula() -> None:
    index = BM25(TEXTS)
    lengths = [len(tokens(t)) for t in TEXTS]
    average = sum(lengths) / len(lengths)

    def expected(doc: int, query: str) -> float:
        total = 0.0
        for term in tokens(query):
            df = sum(term in tokens(t) for t in TEXTS)
            tf = tokens(TEXTS[doc]).count(term)
            if not df or not tf:
                continue
            idf = math.log(1 + (len(TEXTS) - df + 0.5) / (df + 0.5))
            total += idf * tf * 2.2 / (tf + 1.2 * (1 - 0.75 + 0.75 * lengths[doc] / average))
        return total

    scores = index.scores("my account balance")
    assert scores == pytest.approx([expected(d, "my account balance") for d in range(len(TEXTS))])
    assert index.scores("nothing shared").tolist() == [0.0] * len(TEXTS)


def test_nearest_is_best_first_with_ties_to_the_earlier_example() -> None:
    scores = np.array([0.5, 2.0, 0.5, 3.0, 0.5, 0.0])
    assert nearest(scores, 3).tolist() == [3, 1, 0]
    assert nearest(scores, 4).tolist() == [3, 1, 0, 2]
    assert nearest(scores, 10).tolist() == [3, 1, 0, 2, 4, 5]  # k above the pool: all of it


def test_the_nearest_example_goes_last_or_first() -> None:
    pool = Pool(demos(TEXTS), BM25(TEXTS))
    assert select(Retrieval(pool, 2), "freeze my account") == ["d:3", "d:1"]
    assert select(Retrieval(pool, 2, "nearest_first"), "freeze my account") == ["d:1", "d:3"]
    assert select(Retrieval(pool, 9), "freeze my account") == ["d:5", "d:4", "d:2", "d:3", "d:1"]


def test_a_lexical_pool_round_trips_through_json_and_its_index_is_checked() -> None:
    retrieval = Retrieval(Pool(demos(TEXTS), BM25(TEXTS)), 2)
    doc = json.loads(json.dumps(retrieval.to_json()))
    assert doc["retriever"] == {"kind": "bm25", "k1": 1.2, "b": 0.75, "tokens": "lowercase \\w+", "terms": 14,
                                "postings": 20, "sha256": BM25(TEXTS).fingerprint}
    back = Retrieval.from_json(doc)
    assert back.key() == retrieval.key() and select(back, "my balance") == select(retrieval, "my balance")
    doc["examples"][0]["inputs"]["query"] = "something else entirely"
    with pytest.raises(RetrievalError, match="bm25 index rebuilt from the pool differs"):
        Retrieval.from_json(doc)


def test_a_dense_pool_keeps_its_vectors_exactly_and_embeds_only_the_input() -> None:
    vectors = np.array([[1, 0, 0], [0, 1, 0], [0.6, 0.8, 0], [0, 0, 2]], dtype=np.float32)
    spec = EmbeddingSpec("e", "local/all-minilm-l6-v2", {})
    retrieval = Retrieval(Pool(demos(TEXTS[:4]), Dense(spec, vectors)), 2)
    asked = []

    async def embed(used, text):
        asked.append((used, text))
        return np.array([0.0, 1.0, 0.1], dtype=np.float32)

    assert select(retrieval, "q", embed) == ["d:3", "d:2"]
    assert asked == [(spec, "q")]
    doc = json.loads(json.dumps(retrieval.to_json()))
    assert doc["retriever"]["embedding"] == {"name": "e", "target": "local/all-minilm-l6-v2", "options": {}}
    back = Retrieval.from_json(doc)
    assert np.array_equal(back.pool.index.vectors, retrieval.pool.index.vectors)
    doc["retriever"]["vectors"] = doc["retriever"]["vectors"][:-8] + "AAAAAAA="
    with pytest.raises(RetrievalError, match="vectors do not match their sha256"):
        Retrieval.from_json(doc)


def test_an_unknown_order_or_retriever_is_refused() -> None:
    doc = Retrieval(Pool(demos(TEXTS), BM25(TEXTS)), 2).to_json()
    with pytest.raises(RetrievalError, match="unknown order 'middle'"):
        Retrieval.from_json({**doc, "order": "middle"})
    with pytest.raises(RetrievalError, match="unknown retriever kind 'tfidf'"):
        Retrieval.from_json({**doc, "retriever": {**doc["retriever"], "kind": "tfidf"}})


def test_an_artifact_whose_retrieval_embedding_cannot_work_is_refused(tmp_path) -> None:
    from icldsl import artifact
    from icldsl.language.compiler import compile_source
    from icldsl.errors import Error
    from icldsl.runtime.program import Program
    from icldsl.language.source import Source

    spec, states = spec_and_states(compile_source(Source("p.icl", """
model M { query: str "A message" }
model I { intent: str "What it asks" }
lm small = "local/smollm2-135m"
program p { input m: M  i = generate I from m  output i }
""")), "p")
    vectors = np.eye(3, dtype=np.float32)
    bad = EmbeddingSpec("e", "openai/text-embedding-3-small", {"base_url": "http://elsewhere/v1", "api_key": "sk-x"})
    retrieval = Retrieval(Pool(demos(TEXTS[:3]), Dense(bad, vectors)), 1)
    program = Program(spec, {"p/i": states["p/i"].with_retrieval(retrieval)})
    doc = artifact.freeze(program, source_file="p.icl", source_sha256="0" * 64, training={})
    path = artifact.write(tmp_path / "p.artifact.json", doc)
    with pytest.raises(Error, match=r"step `p/i`: the embedding `e` it retrieves with: option `api_key` must name an "
                                    r"environment variable"):
        icldsl.load(path)
