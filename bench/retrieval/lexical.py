"""Offline retrieval quality on CLINC150 (no LM): for each test query, is the label of its
nearest training query right, and is the majority label of its k nearest right? Over the
10 domains of CLINC150 with the quickstart's sample (20 training and 6 test queries per
intent, `clinc150(domain: D, train_per_intent: 20, test_per_intent: 6)`).

Retrievers: icldsl's `bm25` (words), a TF-IDF over character 2-4-grams (common.CharTfidf,
written for this comparison), and icldsl's MiniLM cosine. Paired differences are taken
against bm25 over the same test queries.

    python bench/retrieval/lexical.py --k 8 --json bench/results/retrieval_lexical.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Ranker, Task, embed_texts, fmt, majority, mean_se, paired  # noqa: E402


KINDS = ("bm25", "tfidf_char", "minilm")


def domain_task(domain: str) -> Task:
    """One domain's sample, as `clinc150(domain: D, train_per_intent: 20, test_per_intent: 6)` loads it."""
    from pydantic import create_model

    from icldsl.datasets import clinc150

    x_model = create_model("Q", query=(str, ...))
    y_model = create_model("A", intent=(str, ...))
    data = clinc150.load("clinc", {"domain": domain, "train_per_intent": 20, "test_per_intent": 6},
                         base_dir=Path(os.environ["ICLDSL_CLINC150_PATH"]), x_model=x_model, y_model=y_model)
    return Task(domain, None, None, "p/a", "intent", (), list(data.train), list(data.test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows: dict[str, dict[str, list[float]]] = {kind: {"nearest1": [], "majority": []} for kind in KINDS}
    per_domain = {}
    domains = list(json.loads((Path(os.environ["ICLDSL_CLINC150_PATH"]) / "domains.json").read_text()))
    for domain in domains:
        task = domain_task(domain)
        texts = sorted(set(task.texts(task.train) + task.texts(task.test)))
        vectors = dict(zip(texts, asyncio.run(embed_texts(texts))))
        labels = task.gold(task.train)
        per_domain[domain] = {}
        for kind in KINDS:
            ranker = Ranker(kind, task, vectors)
            n1, maj = [], []
            for text, gold in zip(task.texts(task.test), task.gold()):
                order = ranker.order(text)[: args.k]
                shown = [labels[int(i)] for i in order]  # nearest first
                n1.append(float(shown[0] == gold))
                maj.append(float(majority(shown, nearest_last=False) == gold))
            rows[kind]["nearest1"] += n1
            rows[kind]["majority"] += maj
            per_domain[domain][kind] = {"nearest1": float(np.mean(n1)), "majority": float(np.mean(maj)),
                                        "test": len(n1)}
        print(domain, json.dumps(per_domain[domain]), flush=True)
    summary = {}
    print(f"\n| retriever | nearest-1 label right | majority of {args.k} right | vs bm25 (nearest-1) | "
          f"vs bm25 (majority) |\n|---|---|---|---|---|")
    for kind in KINDS:
        r = rows[kind]
        summary[kind] = {"nearest1": mean_se(r["nearest1"]), "majority": mean_se(r["majority"]),
                         "vs_bm25_nearest1": paired(rows["bm25"]["nearest1"], r["nearest1"]),
                         "vs_bm25_majority": paired(rows["bm25"]["majority"], r["majority"])}
        s = summary[kind]
        print(f"| {kind} | {fmt(*s['nearest1'])} | {fmt(*s['majority'])} | {fmt(*s['vs_bm25_nearest1'], True)} | "
              f"{fmt(*s['vs_bm25_majority'], True)} |")
    if args.json:
        args.json.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "command": " ".join(["python", *sys.argv]),
                                         "k": args.k, "summary": summary, "domains": per_domain}, indent=1))


if __name__ == "__main__":
    main()
