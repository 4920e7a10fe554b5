"""Parse and check a generated 2,000-line program: the target is under 200 ms.

    python bench/parse_check.py [--lines 2000] [--repeat 20]

Prints the cold time (first call: the grammar is read and the LALR tables
built) and the median, min and max of the warm calls.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from icldsl.language.checker import check  # noqa: E402
from icldsl.language.parser import parse  # noqa: E402
from icldsl.language.source import Source  # noqa: E402
from tests.program_generator import generate_program  # noqa: E402


def parse_and_check(text: str) -> float:
    start = time.perf_counter()
    check(parse(Source("bench.icl", text)))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    text = generate_program(args.lines)
    cold = parse_and_check(text)
    warm = [parse_and_check(text) for _ in range(args.repeat)]
    lines = text.count("\n")
    print(f"{lines} lines, {len(text):,} characters")
    print(f"cold (grammar load + tables): {cold * 1000:.1f} ms")
    print(f"warm over {args.repeat} runs: median {statistics.median(warm) * 1000:.1f} ms, "
          f"min {min(warm) * 1000:.1f} ms, max {max(warm) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
