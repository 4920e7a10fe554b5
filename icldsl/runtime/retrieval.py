"""Retrieved examples: a step's pool of examples, and the k of them nearest each input.

A small model learns in context from examples that resemble its input far better
than from a fixed set (Liu et al. 2021, "What Makes Good In-Context Examples for
GPT-3?"). A step with a `Retrieval` gets, at every call, its fixed examples followed
by the `k` pool examples nearest that call's input.

What is compared: a step whose input is a single string is compared by that text;
any other input by its compact JSON (fields in order), so structured inputs work too.

Two retrievers:
- `bm25` (lexical, the default, numpy only): Okapi BM25 with k1 = 1.2, b = 0.75 and
  Lucene's idf, log(1 + (N - df + 0.5) / (df + 0.5)). Tokens are the runs of Unicode
  word characters (`\\w+`) of the lowercased text; no stemming, no stop words. The
  index is rebuilt from the pool when a program loads, and checked against the
  fingerprint of the postings it had when it was scored.
- an embedding model: cosine similarity between the input's vector and the pool's,
  all normalised float32; the pool's vectors travel with the program, so a loaded
  program embeds only its inputs.

Order: the nearest example goes last, next to the input (`nearest_last`), or first
(`nearest_first`). Ties in score go to the example earlier in the pool, so the
choice is deterministic.

Labels (`labels`): with `all` the step's answer schema is the same for every input;
with `retrieved`, each enum field of the answer offers only the labels the retrieved
examples carry (in the field's declared order), in the schema shown in the prompt and
in the local grammar alike (`request.step_request` builds it). The rule for the other
labels: they are not offered, so the step cannot answer a label none of its k nearest
examples carries (the retriever's recall bounds its accuracy); a field none of the
examples carries keeps all its labels.

Cascade (`cascade`, a share t from 0 to 1): when the output most of the retrieved
examples carry (their vote; a tie goes to the output of the nearest tied example)
is carried by at least t of them, the step answers it without calling its LM; t = 1
is unanimity, and t = 0 (or any t at most 1/k) makes every call a vote. Outputs are
compared whole.
The trace marks the step's record as answered by retrieval (`StepRecord.cascaded`)
and usage counts it apart from calls.

Scored labels (`vote_weight`, a number w >= 0): the LM does not generate the answer; it
scores each output its retrieved examples carry, and the step answers the one with the
highest log P(answer | prompt) + w * log(share of the retrieved examples carrying it).
The LM then adds to the vote rather than replacing it: w = 0 is the LM alone among the
retrieved outputs, a large w the vote with the LM breaking its ties. Only for a step whose
answer is one field (a `decide` step) and an LM that can score a text (`LMRequest.choices`:
the local provider); an output all the examples carry needs no call (as with `cascade: true`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping, Sequence

from ..language.catalogue.training import LABELS, LEXICAL, ORDERS
from ..language.specs import EmbeddingSpec
from .demo import Demo

if TYPE_CHECKING:  # numpy is imported where an index is built or scored: checking a file never does
    import numpy as np

_TOKEN = re.compile(r"\w+")


class RetrievalError(ValueError):
    """A retrieval state that cannot be used (a pool and index that do not agree)."""


def tokens(text: str) -> list[str]:
    """The lexical retriever's tokens: runs of Unicode word characters, lowercased."""
    return _TOKEN.findall(text.lower())


def query_text(inputs: Mapping[str, Any]) -> str:
    """What an input is compared by: its only field when that is a string, else its JSON."""
    if len(inputs) == 1:
        (value,) = inputs.values()
        if isinstance(value, str):
            return value
    return json.dumps(dict(inputs), ensure_ascii=False)


class BM25:
    """Okapi BM25 over a pool's texts, as a sparse term -> (documents, weights) index.

    Each posting holds a document's whole contribution for that term, so scoring a
    query is one scatter-add per query token.
    """

    kind = LEXICAL
    k1 = 1.2
    b = 0.75

    def __init__(self, texts: Sequence[str]) -> None:
        vocabulary: dict[str, int] = {}
        term_ids: list[int] = []
        doc_ids: list[int] = []
        counts: list[int] = []
        import numpy as np

        lengths = np.zeros(len(texts))
        for doc, text in enumerate(texts):
            found = tokens(text)
            lengths[doc] = len(found)
            for term, count in Counter(found).items():
                term_ids.append(vocabulary.setdefault(term, len(vocabulary)))
                doc_ids.append(doc)
                counts.append(count)
        terms, docs, tf = (np.asarray(a, dtype=np.int64) for a in (term_ids, doc_ids, counts))
        by_term = np.lexsort((docs, terms))
        terms, docs, tf = terms[by_term], docs[by_term], tf[by_term]
        df = np.bincount(terms, minlength=len(vocabulary))
        n = len(texts)
        idf = np.log1p((n - df + 0.5) / (df + 0.5))
        average = lengths.mean() if n and lengths.mean() > 0 else 1.0
        norm = self.k1 * (1 - self.b + self.b * lengths[docs] / average)
        self.vocabulary = vocabulary
        self.size = n
        self.starts = np.concatenate(([0], np.cumsum(df)))
        self.docs = docs
        self.weights = idf[terms] * tf * (self.k1 + 1) / (tf + norm)
        # What the index holds, independent of floating point: terms and integer postings.
        digest = hashlib.sha256("\n".join(vocabulary).encode("utf-8"))
        for array in (terms, docs, tf):
            digest.update(array.astype("<i8").tobytes())
        self.fingerprint = digest.hexdigest()

    def scores(self, text: str) -> np.ndarray:
        import numpy as np

        scores = np.zeros(self.size)
        for term, count in Counter(tokens(text)).items():
            term_id = self.vocabulary.get(term)
            if term_id is not None:
                span = slice(self.starts[term_id], self.starts[term_id + 1])
                scores[self.docs[span]] += count * self.weights[span]
        return scores

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "k1": self.k1, "b": self.b, "tokens": "lowercase \\w+",
                "terms": len(self.vocabulary), "postings": int(len(self.docs)), "sha256": self.fingerprint}


class Dense:
    """Cosine similarity over a pool's embedding vectors (normalised float32, one row per example)."""

    kind = "embedding"

    def __init__(self, embedding: EmbeddingSpec, vectors: np.ndarray) -> None:
        self.embedding = embedding
        self.vectors = normalised(vectors)

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])

    def scores(self, query: np.ndarray) -> np.ndarray:
        return self.vectors @ normalised(query[None, :])[0]

    def to_json(self) -> dict[str, Any]:
        data = self.vectors.astype("<f4").tobytes()
        return {"kind": self.kind, "embedding": {"name": self.embedding.name, "target": self.embedding.target,
                                                 "options": dict(self.embedding.options)},
                "dimension": self.dimension, "vectors": base64.b64encode(data).decode("ascii"),
                "sha256": hashlib.sha256(data).hexdigest()}


def normalised(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length in float32 (a zero row stays zero)."""
    import numpy as np

    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1).astype(np.float32)


Index = BM25 | Dense
Embed = Callable[[EmbeddingSpec, str], Awaitable["np.ndarray"]]


@dataclass(frozen=True, slots=True, eq=False)
class Pool:
    """The examples a step retrieves from, and their index (shared by candidates of several k)."""

    demos: tuple[Demo, ...]
    index: Index

    def to_json(self) -> dict[str, Any]:
        return {"retriever": self.index.to_json(), "examples": [d.to_json() for d in self.demos]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Pool":
        demos = tuple(Demo.from_json(d) for d in data["examples"])
        spec = data["retriever"]
        if spec["kind"] == LEXICAL:
            index: Index = BM25([query_text(d.inputs) for d in demos])
            if index.fingerprint != spec["sha256"]:
                raise RetrievalError("the bm25 index rebuilt from the pool differs from the one that was scored "
                                     "(a different tokeniser?)")
        elif spec["kind"] == Dense.kind:
            data_bytes = base64.b64decode(spec["vectors"], validate=True)
            if hashlib.sha256(data_bytes).hexdigest() != spec["sha256"]:
                raise RetrievalError("the pool's vectors do not match their sha256")
            import numpy as np

            vectors = np.frombuffer(data_bytes, dtype="<f4").reshape(len(demos), int(spec["dimension"]))
            embedding = spec["embedding"]
            index = Dense(EmbeddingSpec(embedding["name"], embedding["target"], embedding["options"]), vectors)
        else:
            raise RetrievalError(f"unknown retriever kind {spec['kind']!r}")
        return cls(demos, index)


@dataclass(frozen=True, slots=True)
class Retrieval:
    """A step's learned retrieval: its pool, how many examples each call gets, in what order."""

    pool: Pool
    k: int
    order: str = "nearest_last"
    labels: str = "all"
    cascade: float | None = None  # the share of the retrieved examples whose vote answers without the LM
    vote_weight: float | None = None  # with a number, the LM scores the retrieved outputs (module docstring)

    async def select(self, inputs: Mapping[str, Any], embed: Embed) -> tuple[Demo, ...]:
        """The examples a call with `inputs` gets, in prompt order."""
        index, text = self.pool.index, query_text(inputs)
        scores = index.scores(await embed(index.embedding, text) if isinstance(index, Dense) else text)
        chosen = nearest(scores, self.k)
        if self.order == "nearest_last":
            chosen = chosen[::-1]
        return tuple(self.pool.demos[int(i)] for i in chosen)

    def nearest_first(self, retrieved: Sequence[Any]) -> Sequence[Any]:
        """`retrieved` (as `retrieve` ordered it, or their origins) with the nearest first."""
        return retrieved[::-1] if self.order == "nearest_last" else retrieved

    def agreed(self, retrieved: Sequence[Demo]) -> Demo | None:
        """With `cascade`, the nearest example carrying the vote of `retrieved` when at least
        that share of them carry it (the step answers its output without its LM); None otherwise."""
        share = 1.0 if self.cascade is None and self.vote_weight is not None else self.cascade
        if share is None or not retrieved:
            return None
        nearest_first = self.nearest_first(retrieved)
        keys = [json.dumps(dict(d.output), sort_keys=True, default=str) for d in nearest_first]
        winner = vote(keys)
        if keys.count(winner) < math.ceil(share * len(keys) - 1e-9):
            return None
        return nearest_first[keys.index(winner)]

    def choices(self, retrieved: Sequence[Demo], fields: Sequence[str]) -> tuple[tuple[str, float], ...]:
        """With `vote_weight`, the answers the LM chooses among for a call that retrieved `retrieved`
        (in prompt order; the answers listed nearest first), as the JSON text of the one answer
        field `fields` names and its prior, `vote_weight` x log(share of the examples carrying
        it); none otherwise, or when the answer has other fields or an example lacks it (the LM
        then generates)."""
        if self.vote_weight is None or len(fields) != 1 or not retrieved:
            return ()
        (name,) = fields
        if any(name not in d.output for d in retrieved):
            return ()
        texts = [json.dumps({name: d.output[name]}, ensure_ascii=False) for d in self.nearest_first(retrieved)]
        counts = Counter(texts)
        return tuple((text, self.vote_weight * math.log(counts[text] / len(texts))) for text in counts)

    def key(self) -> tuple:
        """What tells two retrievals apart: k, order, labels, cascade, vote weight, the retriever and the
        pool's rows."""
        return (self.k, self.order, self.labels, self.cascade, self.vote_weight, self.pool.index.kind,
                tuple(d.origin for d in self.pool.demos))

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"k": self.k, "order": self.order}
        if self.labels != "all":  # absent at their defaults, so artifacts without them keep their bytes
            doc["labels"] = self.labels
        if self.cascade is not None:
            doc["cascade"] = cascade_json(self.cascade)
        if self.vote_weight is not None:
            doc["vote_weight"] = self.vote_weight
        return {**doc, **self.pool.to_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Retrieval":
        if data["order"] not in ORDERS:
            raise RetrievalError(f"unknown order {data['order']!r} (known: {', '.join(ORDERS)})")
        labels = data.get("labels", "all")
        if labels not in LABELS:
            raise RetrievalError(f"unknown labels {labels!r} (known: {', '.join(LABELS)})")
        weight = data.get("vote_weight")
        if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0):
            raise RetrievalError(f"vote_weight must be a number from 0, not {weight!r}")
        return cls(Pool.from_json(data), int(data["k"]), data["order"], labels,
                   cascade_share(data.get("cascade", False)), None if weight is None else float(weight))


def vote(labels: Sequence[Any]) -> Any:
    """The majority label of `labels` (nearest first); a tie goes to the nearest of the tied
    labels. The cascade answers by it, and the fit's retrieval-alone baseline scores it."""
    if not labels:
        return None
    counts = Counter(labels)
    top = max(counts.values())
    return next(label for label in labels if counts[label] == top)


def cascade_share(value: bool | float) -> float | None:
    """The cascade's share of a `cascade` option or artifact value: false is none, true is 1
    (unanimity), a number from 0 to 1 itself."""
    if value is False:
        return None
    if value is True:
        return 1.0
    if isinstance(value, (int, float)) and 0 <= value <= 1:
        return float(value)
    raise RetrievalError(f"cascade must be true, false or a number from 0 to 1, not {value!r}")


def cascade_json(share: float | None) -> bool | float:
    """How a cascade's share is written: true for unanimity (as artifacts before shares wrote it),
    false for none, else the number."""
    return False if share is None else True if share == 1.0 else share


def nearest(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` highest scores, best first; ties go to the lower index."""
    import numpy as np

    n = len(scores)
    if k >= n:
        return np.lexsort((np.arange(n), -scores))
    top = np.argpartition(-scores, k - 1)[:k]
    kth = scores[top].min()
    above = np.flatnonzero(scores > kth)
    tied = np.flatnonzero(scores == kth)[: k - len(above)]
    chosen = np.concatenate((above, tied))
    return chosen[np.lexsort((chosen, -scores[chosen]))]
