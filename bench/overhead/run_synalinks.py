"""Synalinks's side of the overhead benchmark: `program.evaluate` with
`batch_size` = concurrency over a one-Generator program (structured output via
`response_format`), ExactMatch reward on `answer`, caching off. Run by
`overhead.py` in its own venv (Python 3.12)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download of litellm's price list
os.environ.setdefault("OPENAI_API_KEY", "none")  # the loopback server ignores it; litellm wants one
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import synalinks  # noqa: E402
from worker import serve  # noqa: E402


class Question(synalinks.DataModel):
    question: str = synalinks.Field(description="The question")


class Answer(synalinks.DataModel):
    answer: str = synalinks.Field(description="The answer")


def run(base_url: str, data: list[tuple[str, str]], concurrency: int) -> tuple[int, float]:
    async def main() -> tuple[int, float]:
        lm = synalinks.LanguageModel(model="openai/bench", api_base=base_url, retry=0, caching=False)
        inputs = synalinks.Input(data_model=Question)
        outputs = await synalinks.Generator(data_model=Answer, language_model=lm,
                                            instructions="Answer the question.")(inputs)
        program = synalinks.Program(inputs=inputs, outputs=outputs, name="qa")
        program.compile(reward=synalinks.rewards.ExactMatch(in_mask=["answer"]),
                        optimizer=synalinks.optimizers.RandomFewShot())
        x = np.array([Question(question=q) for q, _ in data], dtype="object")
        y = np.array([Answer(answer=a) for _, a in data], dtype="object")
        start = time.perf_counter()
        metrics = await program.evaluate(x=x, y=y, batch_size=concurrency, verbose=0)
        seconds = time.perf_counter() - start
        return round(float(metrics["reward"]) * len(data)), seconds

    return asyncio.run(main())


if __name__ == "__main__":
    serve("synalinks", synalinks.__version__, run)
