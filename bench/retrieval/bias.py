"""Where the bundled model's label bias comes from when it is shown retrieved examples, and
what the documented remedies do (issue 12, item 6).

For each condition (task, retriever, k, order, selection) the runtime itself builds the
requests: the task's program (programs/intents.icl or programs/tweets.icl) runs over the
test rows with its step's state given a `Retrieval` (icldsl's own BM25 or MiniLM index over
the training rows with their gold labels), against a client that only records what it is
sent. Each recorded request is then

1. answered by icldsl's local client (`local/smollm2-135m`, temperature 0, the JSON
   schema's grammar), as `icldsl fit` would: the model's label;
2. scored with llama-cpp-python directly on the same model file and the same chat
   template: the log-probability of each label's tokens (with the closing `"}`) after
   the answer's prefix `{"<field>": "`, the prefix every answer of the model starts with.
   Normalised over the labels this is the model's label distribution p(l | prompt);
3. scored again with the input replaced by content-free inputs ("N/A", "" and "[MASK]",
   Zhao et al. 2021, "Calibrate Before Use"), with the same examples in the same order;
   their mean distribution p_cf gives the contextually calibrated label
   argmax_l p(l | prompt) / p_cf(l).

Selections: `nearest` (icldsl's retrieval: the k nearest, nearest last or first) and
`capN` (label balance: walk the ranking nearest first and skip an example whose label
already has N examples among those chosen, until k are chosen).

    python bench/retrieval/bias.py --json bench/results/retrieval_bias.json
    python bench/retrieval/bias.py --table bench/results/retrieval_bias.json

Answers and scores are cached under --cache (default $ICLDSL_CACHE_DIR or
/tmp/icldsl-retrbench), so a rerun only recomputes the tables.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (ROOT, Demo, Pool, Ranker, Retrieval, Task, fmt, load_task, majority,  # noqa: E402
                    mean_se, minilm_vectors, paired)

from icldsl.lm.base import LMRequest, LMResponse, Message  # noqa: E402
from icldsl.lm.cache import LMCache  # noqa: E402
from icldsl.lm.cached import CachedClient  # noqa: E402
from icldsl.runtime.prompt import to_json  # noqa: E402

CONTENT_FREE = ("N/A", "", "[MASK]")
MODEL = "smollm2-135m"


# ---- conditions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    task: str
    retriever: str | None  # None: untrained (no examples)
    k: int = 0
    order: str = "nearest_last"
    cap: int | None = None  # label balance: at most this many examples per label
    reverse_enum: bool = False  # the enum's labels listed in reverse order in the program
    score: bool = True  # score the labels (with and without content-free inputs), not only generate

    @property
    def versus(self) -> str | None:
        """The condition this one changes one thing of (enum order, label cap, or order), to
        compare on the same rows; None for a base condition."""
        if self.reverse_enum:
            return Condition(self.task, self.retriever, self.k, self.order, self.cap).name
        if self.cap:
            return Condition(self.task, self.retriever, self.k, self.order).name
        if self.order == "nearest_first":
            return Condition(self.task, self.retriever, self.k).name
        return None

    @property
    def name(self) -> str:
        if self.retriever is None:
            base = "untrained"
        else:
            base = f"{self.retriever} k={self.k} {self.order}" + (f" cap{self.cap}" if self.cap else "")
        return base + (" (enum reversed)" if self.reverse_enum else "")


def conditions(task: str) -> list[Condition]:
    """Few, because prompts of 8 examples take about 4 s each to score on one free core."""
    out = [Condition(task, None)]
    if task == "intents":
        out.append(Condition(task, None, reverse_enum=True))
    # Scored (calibration) only where it is affordable: the untrained prompts, and one condition
    # with 8 examples per task (on intents its 90 prompts took 508 s to score on a shared core).
    out += [Condition(task, "minilm", 8, "nearest_last"), Condition(task, "minilm", 8, "nearest_first", score=False)]
    out.append(Condition(task, "minilm", 8, "nearest_last", 2 if task == "intents" else 3, score=False))
    if task == "intents":
        out.append(Condition(task, "bm25", 8, "nearest_last", score=False))
        out.append(Condition(task, "bm25", 8, "nearest_first", score=False))
        out.append(Condition(task, "minilm", 8, "nearest_last", reverse_enum=True, score=False))
        out.append(Condition(task, "tfidf_char", 8, "nearest_last", score=False))
    return out


class CappedRetrieval(Retrieval):
    """The k nearest with at most `cap` examples per label (nearest first), then in the given order."""

    def __init__(self, pool: Pool, k: int, order: str, cap: int, field: str) -> None:
        Retrieval.__init__(self, pool, k, order)  # type: ignore[misc]
        object.__setattr__(self, "_cap", cap)
        object.__setattr__(self, "_field", field)

    async def select(self, inputs: Mapping[str, Any], embed: Any) -> tuple[Demo, ...]:
        from icldsl.runtime.retrieval import Dense, nearest, query_text

        index, text = self.pool.index, query_text(inputs)
        scores = index.scores(await embed(index.embedding, text) if isinstance(index, Dense) else text)
        counts: Counter = Counter()
        chosen = []
        for i in nearest(scores, len(scores)):
            label = self.pool.demos[int(i)].output[self._field]
            if counts[label] < self._cap:
                counts[label] += 1
                chosen.append(int(i))
                if len(chosen) == self.k:
                    break
        if self.order == "nearest_last":
            chosen = chosen[::-1]
        return tuple(self.pool.demos[i] for i in chosen)


class Recorder:
    """An LM client that records the requests and answers with the first label (never used)."""

    name = "recorder"

    def __init__(self, field: str, label: str) -> None:
        self.requests: dict[str, LMRequest] = {}
        self.answer = json.dumps({field: label})

    async def complete(self, request: LMRequest) -> LMResponse:
        self.requests[request.messages[-1].content] = request
        return LMResponse(self.answer)

    async def aclose(self) -> None:
        pass


def reversed_program(task: Task) -> Task:
    """The task with its program's enum listed in reverse order (a copy of the .icl file)."""
    from icldsl.language.compiler import compile_file

    source = (ROOT / "programs" / f"{task.name}.icl").read_text()
    listed = ", ".join(json.dumps(label) for label in task.labels)
    assert listed in source, "the enum is not written on one line as expected"
    flipped = source.replace(listed, ", ".join(json.dumps(label) for label in reversed(task.labels)))
    folder = Path(tempfile.mkdtemp(prefix="icldsl-bias-"))
    path = folder / f"{task.name}.icl"
    path.write_text(flipped)
    compiled = compile_file(path)
    return Task(task.name, compiled, compiled.trains[0], task.path, task.field, tuple(reversed(task.labels)),
                task.train, task.test)


async def requests_of(task: Task, cond: Condition, rankers: Mapping[str, Ranker],
                      vectors: Mapping[str, np.ndarray]) -> list[LMRequest]:
    """The requests the runtime sends for the test rows under `cond`, in test order."""
    if cond.reverse_enum:
        task = reversed_program(task)
    recorder = Recorder(task.field, task.labels[0])
    program = task.program(clients={"small" if task.name == "intents" else "classifier": recorder})
    if cond.retriever is not None:
        pool = Pool(task.demos(), rankers[cond.retriever].index)
        retrieval = (Retrieval(pool, cond.k, cond.order) if cond.cap is None
                     else CappedRetrieval(pool, cond.k, cond.order, cond.cap, task.field))
        program.states[task.path] = program.states[task.path].with_retrieval(retrieval)
    if cond.retriever == "minilm":  # the same vectors the rankers hold, instead of embedding again
        async def embed(spec: Any, text: str) -> np.ndarray:
            return vectors[text]
        program.embed = embed  # type: ignore[method-assign]
    try:
        for row in task.test:
            await program.run(dict(row.x))
    finally:
        await program.aclose()
    return [recorder.requests[to_json(dict(row.x))] for row in task.test]


# ---- the model's answers and its label scores --------------------------------------------------


class Store:
    """A small sqlite key -> JSON store for answers and scores."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT)")

    def get(self, key: str) -> Any:
        row = self.db.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, json.dumps(value)))
        self.db.commit()


def request_key(kind: str, messages: Sequence[Message], extra: Any = None) -> str:
    data = json.dumps([kind, [[m.role, m.content] for m in messages], extra])
    return hashlib.sha256(data.encode()).hexdigest()


async def generate(requests: Sequence[LMRequest], cache: LMCache, concurrency: int = 8) -> list[str]:
    from icldsl.lm.local import LocalClient

    client = CachedClient(LocalClient(MODEL), cache)
    gate = asyncio.Semaphore(concurrency)

    async def one(request: LMRequest) -> str:
        async with gate:
            return (await client.complete(request)).text

    try:
        return list(await asyncio.gather(*(one(r) for r in requests)))
    finally:
        await client.aclose()


class Scorer:
    """Log-probabilities of each label's tokens after the answer's prefix, with llama-cpp-python.

    The prompt is formatted by the same chat formatter icldsl's local client uses; the KV
    cache keeps the longest common prefix between consecutive evaluations.
    """

    def __init__(self, n_ctx: int = 2048) -> None:
        import llama_cpp

        from icldsl.lm.local import chat_formatter, resolve_model

        self.llm = llama_cpp.Llama(model_path=str(resolve_model(MODEL)), n_ctx=n_ctx, n_batch=512,
                                   logits_all=False, verbose=False, n_threads=1, n_threads_batch=1)
        model = self.llm._model.model
        self.format = chat_formatter(llama_cpp, model, llama_cpp.llama_model_get_vocab(model))

    def tokens(self, text: str, add_bos: bool) -> list[int]:
        return self.llm.tokenize(text.encode(), add_bos=add_bos, special=True)

    def _eval(self, tokens: list[int]) -> np.ndarray:
        """Evaluate `tokens` (reusing the KV cache's common prefix); the logits after the last one."""
        held = self.llm.n_tokens
        common = 0
        limit = min(held, len(tokens) - 1)  # re-evaluate at least the last token
        ids = self.llm.input_ids
        while common < limit and ids[common] == tokens[common]:
            common += 1
        self.llm.n_tokens = common
        self.llm.eval(tokens[common:])
        return np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(self.llm.n_vocab(),)).astype(np.float64)

    @staticmethod
    def _logprob(logits: np.ndarray, token: int) -> float:
        top = logits.max()
        return float(logits[token] - top - np.log(np.exp(logits - top).sum()))

    def label_logprobs(self, messages: Sequence[Message], field: str, labels: Sequence[str]) -> list[float]:
        formatted = self.format(messages=[{"role": m.role, "content": m.content} for m in messages])
        add_bos = not formatted.added_special
        prefix_text = formatted.prompt + "{" + json.dumps(field) + ": \""
        base = self.tokens(prefix_text, add_bos)
        after_base = self._eval(base)
        n = len(base)
        out = []
        for label in labels:
            full = self.tokens(prefix_text + label + "\"}", add_bos)
            if full[:n] != base:
                raise RuntimeError(f"tokenisation of {label!r} changes the prefix")
            rest = full[n:]
            rows = [after_base]
            if len(rest) > 1:  # the label's tokens but the last, in one batch with every position's logits
                ctx = self.llm._ctx
                ctx.kv_cache_seq_rm(-1, n, -1)
                self.llm._batch.set_batch(batch=rest[:-1], n_past=n, logits_all=True)
                ctx.decode(self.llm._batch)
                logits = np.ctypeslib.as_array(ctx.get_logits(), shape=(len(rest) - 1, self.llm.n_vocab()))
                rows += list(logits.astype(np.float64))
                ctx.kv_cache_seq_rm(-1, n, -1)
            out.append(sum(self._logprob(row, token) for row, token in zip(rows, rest)))
        return out


def normalise(logprobs: Sequence[float]) -> np.ndarray:
    a = np.asarray(logprobs)
    p = np.exp(a - a.max())
    return p / p.sum()


def content_free(messages: Sequence[Message], field: str, text: str) -> tuple[Message, ...]:
    return (*messages[:-1], Message("user", to_json({field: text})))


# ---- one condition -----------------------------------------------------------------------------


def example_labels(request: LMRequest, field: str) -> list[str]:
    """The labels of the request's examples, in prompt order."""
    return [json.loads(m.content)[field] for m in request.messages if m.role == "assistant"]


async def measure(task: Task, cond: Condition, rankers: Mapping[str, Ranker], vectors: Mapping[str, np.ndarray],
                  cache: LMCache, store: Store, scorer: Scorer | None) -> dict[str, Any]:
    started = time.perf_counter()
    requests = await requests_of(task, cond, rankers, vectors)
    texts = await generate(requests, cache)
    gen_seconds = time.perf_counter() - started
    input_field = next(iter(task.test[0].x))
    labels = list(cond.reverse_enum and tuple(reversed(task.labels)) or task.labels)
    rows = []
    started = time.perf_counter()
    for row, request, text in zip(task.test, requests, texts):
        scores = {}
        for variant in ((None, *CONTENT_FREE) if cond.score else ()):
            messages = request.messages if variant is None else content_free(request.messages, input_field, variant)
            key = request_key("labels", messages, [task.field, labels])
            got = store.get(key)
            if got is None:
                if scorer is None:
                    raise SystemExit("scores missing from the store and --no-score given")
                got = scorer.label_logprobs(messages, task.field, labels)
                store.put(key, got)
            scores["input" if variant is None else variant] = got
        try:
            answer = json.loads(text)[task.field]
        except (ValueError, KeyError, TypeError):
            answer = None
        rows.append({"query": row.x[input_field], "gold": row.y[task.field], "examples": example_labels(request, task.field),
                     "answer": answer, "logprobs": scores, "prompt_chars": sum(len(m.content) for m in request.messages)})
    return {"condition": cond.__dict__ | {"name": cond.name}, "labels": labels, "rows": rows,
            "generate_seconds": round(gen_seconds, 1), "score_seconds": round(time.perf_counter() - started, 1)}


# ---- analysis ----------------------------------------------------------------------------------


def analyse(result: dict[str, Any]) -> dict[str, Any]:
    labels = result["labels"]
    nearest_last = result["condition"]["order"] == "nearest_last"
    out: dict[str, list[float]] = {k: [] for k in (
        "model", "argmax", "calibrated", "nearest1", "majority", "gold_shown", "agree_argmax",
        "copies_last", "copies_first", "copies_majority", "copies_nearest", "answer_not_shown")}
    errors = Counter()
    n_err = 0
    for row in result["rows"]:
        gold, answer, shown = row["gold"], row["answer"], row["examples"]
        out["model"].append(float(answer == gold))
        if row["logprobs"]:
            p = normalise(row["logprobs"]["input"])
            cf = np.mean([normalise(row["logprobs"][v]) for v in CONTENT_FREE], axis=0)
            cal = p / cf
            out["argmax"].append(float(labels[int(p.argmax())] == gold))
            out["calibrated"].append(float(labels[int(cal.argmax())] == gold))
            out["agree_argmax"].append(float(labels[int(p.argmax())] == answer))
        if shown:
            nearest = shown[-1] if nearest_last else shown[0]
            maj = majority(shown, nearest_last)
            out["nearest1"].append(float(nearest == gold))
            out["majority"].append(float(maj == gold))
            out["gold_shown"].append(float(gold in shown))
            out["copies_last"].append(float(answer == shown[-1]))
            out["copies_first"].append(float(answer == shown[0]))
            out["copies_majority"].append(float(answer == maj))
            out["copies_nearest"].append(float(answer == nearest))
            out["answer_not_shown"].append(float(answer not in shown))
            if answer != gold:
                n_err += 1
                errors["nearest"] += answer == nearest
                errors["majority"] += answer == maj
                errors["last"] += answer == shown[-1]
                errors["first"] += answer == shown[0]
                errors["not_shown"] += answer not in shown
                errors["gold_shown"] += gold in shown
    summary = {k: mean_se(v) for k, v in out.items() if v}
    summary["errors"] = {"count": n_err, **dict(errors)}
    if out["calibrated"]:
        summary["cal_minus_model"] = paired(out["model"], out["calibrated"])
    summary["predicted"] = dict(Counter(r["answer"] for r in result["rows"]))
    summary["n"] = len(result["rows"])
    return summary


def frequency_effect(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Over conditions with examples: P(answer = l) by how many of the k examples carry l,
    split by whether l is the gold label (so frequency is not confounded with correctness)."""
    table: dict[str, dict[int, list[float]]] = {"gold": {}, "other": {}}
    for result in results:
        if not result["condition"]["retriever"] or result["condition"]["cap"]:
            continue
        for row in result["rows"]:
            counts = Counter(row["examples"])
            for label in set(row["examples"]) | {row["gold"]}:
                side = "gold" if label == row["gold"] else "other"
                table[side].setdefault(counts[label], []).append(float(row["answer"] == label))
    return {side: {c: [len(v), float(np.mean(v))] for c, v in sorted(t.items())} for side, t in table.items()}


def position_effect(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """P(answer = the label of the example at position j | that label is not the gold one)
    against the same for the gold label: does the model copy by position?"""
    out: dict[str, Any] = {}
    for result in results:
        cond = result["condition"]
        if not cond["retriever"] or cond["cap"] or cond["k"] != 8:
            continue
        k = cond["k"]
        copies = np.zeros(k)
        wrong_shown = np.zeros(k)
        for row in result["rows"]:
            for j, label in enumerate(row["examples"]):
                if label != row["gold"]:
                    wrong_shown[j] += 1
                    copies[j] += row["answer"] == label
        out[result["condition"]["name"]] = [round(float(c / n), 3) if n else None for c, n in zip(copies, wrong_shown)]
    return out


def label_bias(results: Sequence[dict[str, Any]], scorer_tokens: Mapping[str, int]) -> dict[str, Any]:
    """Per label: enum position, tokens, untrained content-free probability, predicted/gold counts."""
    per: dict[str, dict[str, Any]] = {}
    for result in results:
        cond = result["condition"]
        labels = result["labels"]
        gold = Counter(r["gold"] for r in result["rows"])
        pred = Counter(r["answer"] for r in result["rows"])
        scored = bool(result["rows"][0]["logprobs"])
        if scored:
            cf = np.mean([np.mean([normalise(r["logprobs"][v]) for v in CONTENT_FREE], axis=0)
                          for r in result["rows"]], axis=0)
        for i, label in enumerate(labels):
            entry = per.setdefault(label, {"tokens": scorer_tokens.get(label)})
            entry.setdefault("position", {})[cond["name"]] = i
            entry.setdefault("predicted", {})[cond["name"]] = pred[label]
            entry.setdefault("gold", gold[label])
            if scored:
                entry.setdefault("content_free_p", {})[cond["name"]] = round(float(cf[i]), 3)
    return per


def versus(results: Sequence[dict[str, Any]]) -> dict[str, list[float]]:
    """Each condition's model accuracy minus that of the condition it changes one thing of
    (`Condition.versus`), paired over the same test rows: mean and standard error."""
    model = {r["condition"]["name"]: [float(row["answer"] == row["gold"]) for row in r["rows"]] for r in results}
    out = {}
    for result in results:
        base = Condition(**{k: v for k, v in result["condition"].items() if k != "name"}).versus
        if base in model:
            out[result["condition"]["name"]] = [base, *paired(model[base], model[result["condition"]["name"]])]
    return out


# ---- tables ------------------------------------------------------------------------------------


def tables(data: dict[str, Any]) -> str:
    lines = []
    for task, results in data["tasks"].items():
        lines.append(f"\n### {task}\n")
        extra = data["analysis"][task]
        lines.append("| condition | model (greedy, grammar) | model vs the condition it changes (paired) | "
                     "label argmax (scored) | calibrated (CC) | CC - model | "
                     "nearest-1 label | majority of k | gold among examples | model = majority | model = nearest | "
                     "model agrees with scored argmax |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for result in results:
            s = result["summary"]

            def cell(key: str, signed: bool = False) -> str:
                return fmt(*s[key], signed=signed) if key in s else ""
            vs = extra.get("versus", {}).get(result["condition"]["name"])
            vs_cell = f"{fmt(vs[1], vs[2], signed=True)} vs {vs[0]}" if vs else ""
            lines.append(f"| {result['condition']['name']} | {cell('model')} | {vs_cell} | {cell('argmax')} | "
                         f"{cell('calibrated')} | {cell('cal_minus_model', True)} | {cell('nearest1')} | "
                         f"{cell('majority')} | {cell('gold_shown')} | {cell('copies_majority')} | "
                         f"{cell('copies_nearest')} | {cell('agree_argmax')} |")
        lines.append("")
        lines.append("Errors: what the wrong answer was")
        lines.append("")
        lines.append("| condition | wrong | = nearest example's label | = majority label | = last example's | "
                     "= first example's | not among the examples | gold was among the examples |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for result in results:
            e = result["summary"]["errors"]
            if result["condition"]["retriever"]:
                lines.append(f"| {result['condition']['name']} | {e['count']} | {e.get('nearest', 0)} | "
                             f"{e.get('majority', 0)} | {e.get('last', 0)} | {e.get('first', 0)} | "
                             f"{e.get('not_shown', 0)} | {e.get('gold_shown', 0)} |")
        names = [r["condition"]["name"] for r in results]
        lines.append("\nPer label: gold count among the test rows, predicted count in each condition, tokens of "
                     "the label with its closing `\"}`, untrained content-free probability:\n")
        lines.append("| label | gold | " + " | ".join(names) + " | tokens | content-free p (untrained) |")
        lines.append("|---|---|" + "---|" * len(names) + "---|---|")
        for label, entry in extra["labels"].items():
            cf = entry.get("content_free_p", {}).get("untrained")
            lines.append(f"| {label} | {entry['gold']} | "
                         + " | ".join(str(entry["predicted"].get(n, "")) for n in names)
                         + f" | {entry['tokens'] or ''} | {'' if cf is None else f'{cf:.3f}'} |")
        lines.append("\nP(answer = label) by the label's count among the k examples (n, rate):\n")
        lines.append("| count | gold label | another label |")
        lines.append("|---|---|---|")
        counts = sorted({int(c) for side in extra["frequency"].values() for c in side})
        for c in counts:
            g, o = extra["frequency"]["gold"].get(str(c)) or extra["frequency"]["gold"].get(c), \
                extra["frequency"]["other"].get(str(c)) or extra["frequency"]["other"].get(c)
            lines.append(f"| {c} | {'' if not g else f'{g[1]:.3f} ({g[0]})'} | {'' if not o else f'{o[1]:.3f} ({o[0]})'} |")
        lines.append("\nP(answer = a wrong label shown at position j), positions 1..k in prompt order:\n")
        for name, row in extra["position"].items():
            lines.append(f"- {name}: " + ", ".join("-" if v is None else f"{v:.2f}" for v in row))
    return "\n".join(lines)


# ---- main --------------------------------------------------------------------------------------


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    cache = LMCache(Path(args.cache) / "lm.sqlite3")
    store = Store(Path(args.cache) / "bias_scores.sqlite3")
    scorer = Scorer()  # its tokenizer counts the labels' tokens even with --no-score
    data: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "command": " ".join(["python", *sys.argv]),
                            "model": MODEL, "content_free": CONTENT_FREE, "tasks": {}, "analysis": {}}
    for name in args.task:
        task = load_task(name)
        if args.limit:
            task.test = task.test[:args.limit]
        vectors = await minilm_vectors(task)
        rankers = {kind: Ranker(kind, task, vectors) for kind in ("bm25", "minilm", "tfidf_char")}
        results = []
        for cond in conditions(name):
            if args.only and cond.name not in args.only:
                continue
            result = await measure(task, cond, rankers, vectors, cache, store, None if args.no_score else scorer)
            result["summary"] = analyse(result)
            s = result["summary"]
            scored = f", argmax {fmt(*s['argmax'])}, calibrated {fmt(*s['calibrated'])}" if "argmax" in s else ""
            print(f"{name} | {cond.name}: model {fmt(*s['model'])}{scored} (gen {result['generate_seconds']} s, "
                  f"score {result['score_seconds']} s)", flush=True)
            results.append(result)
        token_counts = {label: len(scorer.tokens(label + "\"}", False)) for label in task.labels}
        data["tasks"][name] = results
        data["analysis"][name] = {"frequency": frequency_effect(results), "position": position_effect(results),
                                  "labels": label_bias(results, token_counts), "versus": versus(results)}
        if args.json:
            args.json.write_text(json.dumps(data, indent=1))
    cache.close()
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", nargs="+", default=["intents", "tweets"])
    parser.add_argument("--only", nargs="*", help="only the conditions with these names")
    parser.add_argument("--cache", default=os.environ.get("ICLDSL_CACHE_DIR") or "/tmp/icldsl-retrbench")
    parser.add_argument("--no-score", action="store_true", help="use only scores already in the cache")
    parser.add_argument("--limit", type=int, help="only the first N test rows (a smoke test)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--table", type=Path, help="print the tables of a results file and exit")
    args = parser.parse_args()
    if args.table:
        print(tables(json.loads(args.table.read_text())))
        return
    data = asyncio.run(main_async(args))
    print(tables(json.loads(json.dumps(data))))


if __name__ == "__main__":
    main()
