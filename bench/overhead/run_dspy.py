"""DSPy's side of the overhead benchmark: `dspy.Evaluate` with `num_threads` =
concurrency over `dspy.Predict` of a one-field signature (DSPy's default chat
adapter), exact-match metric, caches off. Run by `overhead.py` in its own venv."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download of litellm's price list
os.environ.setdefault("DSPY_CACHEDIR", str(Path(__file__).resolve().parents[1] / ".venvs" / "dspy-cache"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import dspy  # noqa: E402
from worker import serve  # noqa: E402


class QA(dspy.Signature):
    """Answer the question."""

    question: str = dspy.InputField(desc="The question")
    answer: str = dspy.OutputField(desc="The answer")


def exact(example: dspy.Example, prediction: dspy.Prediction, trace: object = None) -> bool:
    return example.answer == prediction.answer


def run(base_url: str, data: list[tuple[str, str]], concurrency: int) -> tuple[int, float]:
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    lm = dspy.LM("openai/bench", api_base=base_url, api_key="none", cache=False, num_retries=0)
    dspy.configure(lm=lm)
    devset = [dspy.Example(question=q, answer=a).with_inputs("question") for q, a in data]
    evaluate = dspy.Evaluate(devset=devset, metric=exact, num_threads=concurrency, display_progress=False,
                             display_table=False)
    program = dspy.Predict(QA)
    start = time.perf_counter()
    result = evaluate(program)
    seconds = time.perf_counter() - start
    return round(result.score * len(data) / 100), seconds


if __name__ == "__main__":
    serve("dspy", dspy.__version__, run)
