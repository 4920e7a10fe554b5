"""Large, valid `.icl` programs for robustness tests and the parse/check benchmark."""

from __future__ import annotations

import json
from pathlib import Path

DATA_FILE = "rows.jsonl"  # every data block's file, beside the program (`write_data`)


def generate_program(lines: int) -> str:
    """A valid file of about `lines` lines: models, LMs, programs with every step kind, data, train."""
    out = ['lm main = "local/smollm2-135m" { temperature: 0.0, max_tokens: 64 }',
           'tool calc = python("icldsl.tools:calculator")', ""]
    block = 0
    while len(out) < lines:
        n = block
        out += [
            f"model In{n} {{",
            f'    text:  str(max_length: 200) "The input text {n}"',
            f"    count: int(min: 0)?",
            "}",
            "",
            f"model Route{n} {{",
            f'    label: enum("a", "b", "c") "Which way to go"',
            "}",
            "",
            f"model Out{n} {{",
            f'    answer: float "The answer"',
            f'    notes:  list[str](max_items: 3) "Short notes"',
            "}",
            "",
            f'program p{n} "Program {n}" {{',
            f"    input  x: In{n}",
            f"    route  = decide Route{n} from x",
            f"    draft  = chain_of_thought Out{n} from x",
            f"    answer = branch route.label {{",
            f'        "a" => generate Out{n} from x + draft instructions "Use the draft."',
            f"        \"b\" => agent Out{n} from x tools [calc] max_steps 3",
            f"        _   => generate Out{n} from x",
            "    }",
            "    output answer",
            "}",
            "",
            f'data d{n} = jsonl("{DATA_FILE}", split: 0.8)',
            "",
            f"train p{n} on d{n} {{",
            '    reward     exact_match(in_mask: ["answer"])',
            "    optimizer  random_few_shot(nb_max_examples: 2)",
            "    epochs     1",
            "}",
            "",
        ]
        block += 1
    return "\n".join(out) + "\n"


def write_data(folder: Path) -> None:
    """The data file the programs' data blocks read, in `folder` (where the program is)."""
    row = {"text": "one and two", "count": 2, "answer": 3.0, "notes": ["added"]}
    (folder / DATA_FILE).write_text(json.dumps(row) + "\n", encoding="utf-8")
