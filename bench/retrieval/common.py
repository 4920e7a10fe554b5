"""What the retrieval benchmarks share: a task's data as icldsl loads it, the step's
example pool, the retrievers (icldsl's own BM25 and MiniLM, and a TF-IDF over character
n-grams written here for comparison), and paired statistics.

A task is a `.icl` file whose first train block trains a program of one labelled step
(an enum field the data holds, as `labeled_few_shot` learns), with its data as the file
says (paths relative to the file), or the name of one in programs/:
- `intents`: programs/intents.icl's data, CLINC150 banking (15 intents), 20 training and
  6 test queries per intent (300 / 90). Needs ICLDSL_CLINC150_PATH (default here:
  ../shared/datasets/clinc150 beside the repository).
- `tweets`: programs/tweets.icl's data, 3-label sentiment, `split: 0.8, train_limit: 200,
  seed: 1` (200 / 120).
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ICLDSL_CLINC150_PATH", str(ROOT.parent / "shared" / "datasets" / "clinc150"))

from icldsl.language.compiler import compile_file  # noqa: E402
from icldsl.lm import connect_embedder  # noqa: E402
from icldsl.runtime.demo import Demo  # noqa: E402
from icldsl.runtime.retrieval import BM25, Dense, Pool, Retrieval, nearest, query_text  # noqa: E402
from icldsl.language.specs import EmbeddingSpec  # noqa: E402
from icldsl.training.optimizers import labeled_fields  # noqa: E402
from icldsl.training.session import load_data, program_of  # noqa: E402

MINILM = EmbeddingSpec("minilm", "local/all-minilm-l6-v2", {})


@dataclass
class Task:
    name: str
    compiled: Any
    train_spec: Any
    path: str  # the step's path, e.g. banking/intent
    field: str  # the label field
    labels: tuple[str, ...]  # in the enum's order
    train: list[Any]  # icldsl Examples (x, y, origin)
    test: list[Any]

    def program(self, cache: Any = None, clients: Mapping[str, Any] | None = None) -> Any:
        return program_of(self.compiled, self.train_spec.program, clients, cache=cache)

    def demos(self) -> tuple[Demo, ...]:
        return tuple(Demo(dict(r.x), {self.field: r.y[self.field]}, 1.0, r.origin) for r in self.train)

    def texts(self, rows: Sequence[Any]) -> list[str]:
        return [query_text(dict(r.x)) for r in rows]

    def gold(self, rows: Sequence[Any] | None = None) -> list[str]:
        return [r.y[self.field] for r in (self.test if rows is None else rows)]


def task_path(task: str) -> Path:
    """A `.icl` path as given, or the name of a program in programs/."""
    return Path(task) if task.endswith(".icl") else ROOT / "programs" / f"{task}.icl"


def load_task(task: str) -> Task:
    path = task_path(task)
    name = path.stem
    compiled = compile_file(path)
    train_spec = compiled.trains[0]
    program = program_of(compiled, train_spec.program)
    data = load_data(compiled, train_spec, program)
    (path,) = list(program.states)
    names, _ = labeled_fields(program, data.train, path)
    (field,) = names
    step = next(s for s in program.spec.steps if getattr(s, "path", None) == path)
    schema = program.models[step.answer_model].model_json_schema()
    labels = tuple(_enum(schema, field))
    return Task(name, compiled, train_spec, path, field, labels, list(data.train), list(data.test))


def _enum(schema: Mapping[str, Any], field: str) -> list[str]:
    node = schema["properties"][field]
    if "enum" in node:
        return list(node["enum"])
    ref = node.get("$ref") or node.get("allOf", [{}])[0].get("$ref")
    return list(schema["$defs"][ref.rsplit("/", 1)[1]]["enum"])


async def embed_texts(texts: Sequence[str], batch: int = 64) -> np.ndarray:
    """MiniLM vectors (icldsl's offline provider), in batches, as nearest_few_shot embeds a pool."""
    embedder = connect_embedder(MINILM.target, {}, None, "normal")
    try:
        out: list[list[float]] = []
        for start in range(0, len(texts), batch):
            out += await embedder.embed(list(texts[start:start + batch]))
    finally:
        await embedder.aclose()
    return np.asarray(out, dtype=np.float32)


class CharTfidf:
    """TF-IDF over character 2-4-grams of the lowercased text (each word padded with a space),
    sublinear tf, smooth idf, cosine. Written here for the comparison only."""

    kind = "tfidf_char"

    def __init__(self, texts: Sequence[str], n: tuple[int, int] = (2, 4)) -> None:
        self.n = n
        grams = [self._grams(t) for t in texts]
        vocab: dict[str, int] = {}
        for g in grams:
            for key in g:
                vocab.setdefault(key, len(vocab))
        self.vocab = vocab
        df = np.zeros(len(vocab))
        for g in grams:
            for key in g:
                df[vocab[key]] += 1
        self.idf = np.log((1 + len(texts)) / (1 + df)) + 1
        self.matrix = np.stack([self._vector(g) for g in grams])

    def _grams(self, text: str) -> Counter:
        out: Counter = Counter()
        for word in re.findall(r"\w+", text.lower()):
            padded = f" {word} "
            for size in range(self.n[0], self.n[1] + 1):
                for i in range(len(padded) - size + 1):
                    out[padded[i:i + size]] += 1
        return out

    def _vector(self, grams: Counter) -> np.ndarray:
        v = np.zeros(len(self.vocab))
        for key, count in grams.items():
            j = self.vocab.get(key)
            if j is not None:
                v[j] = (1 + math.log(count)) * self.idf[j]
        norm = np.linalg.norm(v)
        return v / norm if norm else v

    def scores(self, text: str) -> np.ndarray:
        return self.matrix @ self._vector(self._grams(text))


class Ranker:
    """A ranking of the pool for each test row: icldsl's BM25, icldsl's Dense over MiniLM, or CharTfidf."""

    def __init__(self, kind: str, task: Task, vectors: Mapping[str, np.ndarray] | None = None) -> None:
        self.kind = kind
        texts = task.texts(task.train)
        if kind == "bm25":
            self.index: Any = BM25(texts)
        elif kind == "minilm":
            assert vectors is not None
            self.index = Dense(MINILM, np.stack([vectors[t] for t in texts]))
            self.vectors = vectors
        elif kind == "tfidf_char":
            self.index = CharTfidf(texts)
        else:
            raise ValueError(kind)

    def order(self, text: str) -> np.ndarray:
        """Pool indices, nearest first (ties to the earlier row, as icldsl's `nearest`)."""
        scores = self.index.scores(self.vectors[text] if self.kind == "minilm" else text)
        return nearest(scores, len(scores))


async def minilm_vectors(task: Task) -> dict[str, np.ndarray]:
    texts = sorted(set(task.texts(task.train) + task.texts(task.test)))
    vectors = await embed_texts(texts)
    return dict(zip(texts, vectors))


def majority(labels_in_order: Sequence[str], nearest_last: bool) -> str | None:
    """The most frequent label among the examples; a tie goes to the label of the nearer example."""
    if not labels_in_order:
        return None
    by_nearness = list(reversed(labels_in_order)) if nearest_last else list(labels_in_order)
    counts = Counter(by_nearness)
    top = max(counts.values())
    return next(label for label in by_nearness if counts[label] == top)


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    if len(a) < 2:
        return float(a.mean()) if len(a) else float("nan"), float("nan")
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(len(a)))


def paired(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Mean of b - a and its standard error (same rows)."""
    return mean_se(np.asarray(b, dtype=float) - np.asarray(a, dtype=float))


def fmt(mean: float, se: float, signed: bool = False) -> str:
    return (f"{mean:+.3f}" if signed else f"{mean:.3f}") + f" ± {se:.3f}"


__all__ = ["Task", "load_task", "task_path", "Ranker", "CharTfidf", "embed_texts", "minilm_vectors", "majority", "mean_se", "paired",
           "fmt", "Pool", "Retrieval", "Demo", "MINILM", "ROOT"]
