"""The loop every framework runner shares (standard library only: it runs in each
framework's own virtual environment).

The orchestrator writes one JSON command per line on stdin, `{"base_url": ...,
"n": ..., "concurrency": ...}`; the runner evaluates its program on `n` questions
and answers one JSON line, `{"seconds": ..., "correct": ...}`, where seconds
covers the framework's evaluation call alone (not building the program or its
data). Whatever the
framework prints goes to stderr, so stdout carries only answers.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Callable


def dataset(n: int) -> list[tuple[str, str]]:
    """`n` (question, answer) pairs; the benchmark server computes the same answers."""
    return [(f"What is {i} + {(i * 7) % 100}?", str(i + (i * 7) % 100)) for i in range(n)]


def serve(name: str, version: str, run: Callable[[str, list[tuple[str, str]], int], tuple[int, float]]) -> None:
    """Answer commands until stdin closes; `run(base_url, data, concurrency)` returns how many
    answers were right and the seconds its evaluation call took."""
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    answers.write(json.dumps({"framework": name, "version": version}) + "\n")
    answers.flush()
    for line in sys.stdin:
        command = json.loads(line)
        data = dataset(command["n"])
        correct, seconds = run(command["base_url"], data, command["concurrency"])
        answers.write(json.dumps({"seconds": seconds, "correct": correct}) + "\n")
        answers.flush()
