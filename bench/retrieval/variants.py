"""Variants of a `nearest_few_shot` step scored on a file's test rows, through the LM cache.

The pool is built as `icldsl fit` builds it (the training rows after the validation split,
with their expected outputs); each variant sets k, order, labels, cascade (`cascade` alone is 1,
unanimity; `cascade=0.5` a share) and vote_weight (`vote_weight=1`: the LM scores the
retrieved labels), and is scored
on the test rows with the retriever-alone baselines (`training.baselines`), the mean prompt
tokens per LM call, the LM calls, the calls the cascade saved, and the paired difference
from the first variant. No training: this is for
comparing variants quickly; the figures that count come from `icldsl fit`.

`--new-since OTHER.icl` keeps only the test rows OTHER's test split does not hold: with the
same loader and a larger sample (CLINC150's `test_per_intent`, whose smaller samples are
prefixes of larger ones), the rows a fit never scored, to replicate its result on.

    python bench/retrieval/variants.py programs/intents.icl \\
        "k=8" "k=8 labels=retrieved" "k=8 labels=retrieved cascade=0.5" "k=8 vote_weight=1"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import numpy as np

from icldsl.language.compiler import compile_file
from icldsl.lm.cache import LMCache, default_path
from icldsl.runtime.retrieval import Retrieval, cascade_share
from icldsl.training.baselines import baselines
from icldsl.training.estimate import paired
from icldsl.training.nearest import NearestFewShot, _unique
from icldsl.training.optimizers import labeled_fields
from icldsl.training.session import load_data, make_reward, program_of, resources_of, split, train_block
from icldsl.training.trainer import evaluate
from icldsl.runtime.demo import Demo
from icldsl.training.usage import UsageTable


def parse_variant(text: str) -> dict:
    variant = {}
    for part in text.split():
        key, _, value = part.partition("=")
        variant[key] = (int(value) if key == "k" else float(value) if key in ("cascade", "vote_weight") and value
                        else (value or True))
    return variant


def load(file: str, cache: LMCache | None = None):
    """A file compiled, its train block, its trained program (on `cache`) and that block's data."""
    compiled = compile_file(file)
    train = train_block(compiled)
    program = program_of(compiled, train.program, cache=cache)
    return compiled, train, program, load_data(compiled, train, program)


async def main(args: argparse.Namespace) -> list[dict]:
    cache = LMCache(default_path())
    compiled, train, program, data = load(args.file, cache)
    resources = resources_of(compiled, cache, "normal")
    name, options = train.optimizers[0]
    optimizer = NearestFewShot(**{k: v for k, v in options.items() if k in ("retriever", "compare_on")},
                               resources=resources)
    test = data.test
    if args.new_since:
        seen = {e.origin for e in load(args.new_since)[3].test}
        test = tuple(e for e in test if e.origin not in seen)
        print(json.dumps({"test_rows": len(data.test), "new": len(test)}), flush=True)
    train_rows, _ = split(data.train, train.validation_split, np.random.default_rng(train.seed))
    reward = make_reward(train, resources)
    results = []
    try:
        (path,) = [p for p in program.states if labeled_fields(program, train_rows, p)]
        names, _ = labeled_fields(program, train_rows, path)
        demos = _unique([Demo(dict(r.x), {f: r.y[f] for f in names}, 1.0, r.origin) for r in train_rows])
        from icldsl.runtime.retrieval import Pool

        pool = Pool(demos, await optimizer._index(demos))
        for text in args.variants:
            v = parse_variant(text)
            if v.get("untrained"):
                states = dict(program.states)
            else:
                retrieval = Retrieval(pool, v.get("k", 8), v.get("order", "nearest_last"), v.get("labels", "all"),
                                      cascade_share(v.get("cascade", False)), v.get("vote_weight"))
                states = {**program.states, path: program.states[path].with_retrieval(retrieval)}
            evaluation = await evaluate(program.with_states(states), test, reward, concurrency=train.concurrency)
            usage = UsageTable.of(evaluation.scored).total
            base = baselines(program.with_states(states), evaluation.scored)
            row = {"variant": text, "reward": evaluation.reward, "n": len(evaluation.scored),
                   "calls": usage.calls, "cascaded": usage.cascaded,
                   "prompt_tokens_per_call": usage.prompt_tokens / usage.calls if usage.calls else 0.0,
                   "failures": evaluation.failures}
            if base:
                b = base[0]
                row.update(vote=b["vote"]["mean"], nearest1=b["nearest1"]["mean"],
                           trained_minus_vote=b["trained_minus_vote"]["mean"],
                           trained_minus_vote_se=b["trained_minus_vote"]["se"])
            rewards = [s.reward for s in evaluation.scored]
            if results:  # paired against the first variant, on the same test rows
                diff = paired(rewards, results[0]["rewards"])
                row.update(minus_first=diff.mean, minus_first_se=diff.stderr)
            row["rewards"] = rewards
            results.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "rewards"}), flush=True)
    finally:
        await program.aclose()
        await resources.aclose()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("variants", nargs="+", help='e.g. "k=8 labels=retrieved cascade", or "untrained"')
    parser.add_argument("--new-since", metavar="OTHER.icl", help="score only the test rows OTHER's test split lacks")
    sys.exit(0 if asyncio.run(main(parser.parse_args())) else 1)
