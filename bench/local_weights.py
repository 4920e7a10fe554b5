"""What the bundled model's weights cost in accuracy: the file's Q4_1 against `weights: "q4_0"`.

Scores `programs/tweets.icl`'s untrained step on 570 of its 600 human-labelled
tweets (the file's data with a 5% train split, so nearly all are test) with each
weights value, through no LM cache, and compares them on the same tweets.

    python bench/local_weights.py [--weights file q4_0] [--json bench/results/local_weights.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from icldsl.language.compiler import compile_source
from icldsl.lm.local import FILE_WEIGHTS, WEIGHTS
from icldsl.language.source import Source
from icldsl.training.estimate import Estimate, paired
from icldsl.training.rewards import exact_match
from icldsl.training.session import load_data, program_of
from icldsl.training.trainer import evaluate

SOURCE = Path(__file__).resolve().parents[1] / "programs" / "tweets.icl"
LABELS = ("positive", "negative", "neutral")


async def score(weights: str) -> dict:
    text = SOURCE.read_text(encoding="utf-8")
    text = text.replace("{ temperature: 0.0,", f"{{ weights: {json.dumps(weights)}, temperature: 0.0,")
    text = text.replace("split: 0.8, train_limit: 200", "split: 0.05")
    compiled = compile_source(Source(str(SOURCE), text))
    train = compiled.train()
    program = program_of(compiled, train.program, cache=None)
    data = load_data(compiled, train, program)
    try:
        result = await evaluate(program, data.test, exact_match(), concurrency=8)
    finally:
        await program.aclose()
    predicted = [s.trace.output["label"] if s.trace.output else None for s in result.scored]
    return {"weights": weights, "origins": [s.example.origin for s in result.scored],
            "rewards": [s.reward for s in result.scored], "predicted": predicted,
            "accuracy": Estimate.of([s.reward for s in result.scored]).to_json()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    choices = [FILE_WEIGHTS, *WEIGHTS]
    parser.add_argument("--weights", nargs="+", default=choices, choices=choices)
    parser.add_argument("--json", type=Path, help="write the per-tweet results here")
    args = parser.parse_args()
    runs = [asyncio.run(score(w)) for w in args.weights]
    for run in runs:
        counts = ", ".join(f"{label} {run['predicted'].count(label)}" for label in (*LABELS, None))
        print(f"{run['weights']}: accuracy {Estimate(**{k: run['accuracy'][k] for k in ('mean', 'std', 'n')})}"
              f"; predicted {counts}")
    first = runs[0]
    for run in runs[1:]:
        assert run["origins"] == first["origins"]
        agree = sum(a == b for a, b in zip(run["predicted"], first["predicted"]))
        print(f"{run['weights']} - {first['weights']}: {paired(run['rewards'], first['rewards'])}; "
              f"same label on {agree} of {len(first['predicted'])}")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
