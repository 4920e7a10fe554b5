"""The adder: the small project many tests fit (two numbers in, their sum out, 12 training
and 4 test rows), and the answers that make its training matter (right only when the prompt
holds few-shot examples). The `project` fixture (conftest.py) serves it from a loopback server."""

from __future__ import annotations

import json
from pathlib import Path

from tests.scripted import last_input

PROGRAM = """
model Sum {{ question: str "Two numbers to add, like 2+3" }}
model Total {{ answer: float "Their sum" }}
lm solver = "openai/loopback" {{ base_url: "{url}", temperature: 0.0, max_tokens: 50 }}
program adder {{ input q: Sum  total = generate Total from q  output total }}
data sums = jsonl("train.jsonl", test: "test.jsonl")
train adder on sums {{
    reward exact_match(in_mask: ["answer"])
    optimizer random_few_shot(nb_max_examples: 2)
    epochs 2
    batch_size 4
    validation_split 0.25
}}
"""


def write_adder(folder: Path, url: str) -> Path:
    """The project in `folder`: train.jsonl, test.jsonl and adder.icl, whose LM is at `url`."""
    rows = [{"question": f"{i}+{i + 1}", "answer": 2 * i + 1} for i in range(16)]
    (folder / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:12]) + "\n")
    (folder / "test.jsonl").write_text("\n".join(json.dumps(r) for r in rows[12:]) + "\n")
    (folder / "adder.icl").write_text(PROGRAM.format(url=url), encoding="utf-8")
    return folder / "adder.icl"


def sum_of(question: str) -> float:
    return sum(map(float, question.split("+")))


def answer_with_examples_only(request) -> dict:
    """The loopback server's answer: right when the prompt holds few-shot examples, wrong
    without, so training must help."""
    question = json.loads(request.last_user_message)["question"]
    has_examples = len(request.messages) > 2
    return {"answer": sum_of(question) if has_examples else -1.0}


def right_with_examples(request) -> dict:
    """The same answer from a `ScriptedLM`: right only when the prompt holds few-shot examples."""
    return {"answer": sum_of(last_input(request)["question"]) if len(request.messages) > 2 else -1.0}
