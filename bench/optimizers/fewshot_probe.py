"""Does the local model learn from few-shot examples? Tweets' test split with hand-picked examples.

Scores `programs/tweets.icl`'s step on its test split untrained and with 1 to 4
correct examples of each label from the training split (gold labels, shuffled with a
fixed seed), as chat turns (what icldsl sends) or, with --in-system, listed in the
system message. --two-labels keeps positive and negative tweets only.

    python bench/optimizers/fewshot_probe.py [--two-labels] [--in-system] [--lm local:/path/model.gguf]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import numpy as np

from icldsl.language.compiler import compile_source
from icldsl.language.source import Source
from icldsl.lm.base import Message
from icldsl.lm.cache import LMCache, default_path
from icldsl.runtime import prompt
from icldsl.runtime.state import Demo
from icldsl.training.metrics import Metrics
from icldsl.training.rewards import exact_match
from icldsl.training.session import load_data, program_of, split
from icldsl.training.trainer import evaluate

SOURCE = Path(__file__).resolve().parents[2] / "programs" / "tweets.icl"


def in_system(state, schema, inputs):
    """The examples listed in the system message, then the input as the only user turn."""
    system = prompt.SYSTEM.render(instructions=state.instructions, schema=prompt.to_json(prompt.prompt_schema(schema)))
    if state.examples:
        system += "\n\nExamples:\n" + "\n".join(
            f"Input: {prompt.to_json(d.inputs)}\nOutput: {prompt.to_json(d.output)}" for d in state.examples)
    return (Message("system", system), Message("user", prompt.to_json(inputs)))


async def main(args: argparse.Namespace) -> None:
    if args.in_system:
        prompt.render = in_system
    compiled = compile_source(Source(str(SOURCE), SOURCE.read_text(encoding="utf-8").replace(
        '"local/smollm2-135m"', json.dumps(args.lm))))
    train = compiled.train()
    cache = LMCache(default_path())
    program = program_of(compiled, train.program, cache=cache)
    data = load_data(compiled, train, program)
    train_set, _ = split(data.train, train.validation_split, np.random.default_rng(train.seed))
    labels = ("positive", "negative") if args.two_labels else ("positive", "negative", "neutral")
    test = [e for e in data.test if e.y["label"] in labels]
    (path, untrained), = program.states.items()
    metrics = Metrics(program.spec)
    for per_label in range(0, 5):
        picked = [e for label in labels for e in [e for e in train_set if e.y["label"] == label][:per_label]]
        np.random.default_rng(per_label).shuffle(picked)
        state = untrained.with_examples(tuple(Demo(e.x, e.y, 1.0, e.origin) for e in picked))
        result = await evaluate(program.with_states({path: state}), test, exact_match(), concurrency=8)
        predicted = [s.trace.output["label"] if s.trace.output else None for s in result.scored]
        print(f"{per_label} per label: reward {result.reward:.3f} (n={len(test)}), "
              f"f1 {metrics(result.scored)['f1_label']:.3f}, predicted "
              + ", ".join(f"{label} {predicted.count(label)}" for label in labels), flush=True)
    await program.aclose()
    cache.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--two-labels", action="store_true")
    parser.add_argument("--in-system", action="store_true")
    parser.add_argument("--lm", default="local/smollm2-135m", help="the step's LM target instead of the file's")
    asyncio.run(main(parser.parse_args()))
