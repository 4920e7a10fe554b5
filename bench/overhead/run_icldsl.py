"""icldsl's side of the overhead benchmark: `icldsl eval`'s evaluation loop (the
trainer's `evaluate`, exact-match reward) over a one-step program, without the
LM cache. Run by `overhead.py` in the project's own environment."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import icldsl  # noqa: E402
from icldsl.language.compiler import compile_file  # noqa: E402
from icldsl.training.session import load_data, make_reward, program_of, resources_of  # noqa: E402
from icldsl.training.trainer import evaluate  # noqa: E402
from worker import serve  # noqa: E402

SOURCE = """
model Question {{ question: str "The question" }}
model Answer {{ answer: str "The answer" }}
lm bench = "openai/bench" {{ base_url: "{base_url}", max_concurrency: {concurrency}, max_retries: 0 }}
program qa "Answers questions" {{
    input  q: Question
    answer = generate Answer from q instructions "Answer the question."
    output answer
}}
data questions = jsonl("questions.jsonl", test: "questions.jsonl")
train qa on questions {{
    reward      exact_match(in_mask: ["answer"])
    optimizer   random_few_shot(nb_max_examples: 1)
    concurrency {concurrency}
}}
"""


def run(base_url: str, data: list[tuple[str, str]], concurrency: int) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "questions.jsonl").write_text(
            "".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in data))
        path = Path(tmp) / "bench.icl"
        path.write_text(SOURCE.format(base_url=base_url, concurrency=concurrency))
        compiled = compile_file(path)
        train = compiled.trains[0]
        program = program_of(compiled, train.program)
        examples = load_data(compiled, train, program).test
        reward = make_reward(train, resources_of(compiled, None, "off"))
        assert len(examples) == len(data), len(examples)

        async def main() -> tuple[int, float]:
            try:
                start = time.perf_counter()
                result = await evaluate(program, examples, reward, concurrency=concurrency)
                seconds = time.perf_counter() - start
            finally:
                await program.aclose()
            return round(result.reward * len(examples)), seconds

        return asyncio.run(main())


if __name__ == "__main__":
    serve("icldsl", icldsl.__version__, run)
