"""Regenerates `weather.jsonl` from the SNIPS NLU benchmark's GetWeather queries (Coucke et al. 2018).

The source is `2017-06-custom-intent-engines/GetWeather/train_GetWeather_full.json` of
https://github.com/sonos/nlu-benchmark (CC0 1.0): 2,000 crowd-sourced weather queries,
each a list of text pieces, the slots among them tagged with an `entity`.

    git clone https://github.com/sonos/nlu-benchmark /tmp/nlu-benchmark
    python programs/data/make_weather.py \
        /tmp/nlu-benchmark/2017-06-custom-intent-engines/GetWeather/train_GetWeather_full.json

Each row is the query's text (the pieces joined, stripped) and five slots, null when the
query has none: `city`, `state`, `country`, `time_range` (the dataset's `timeRange`) and
`condition` (its `condition_description` or `condition_temperature`). The dataset's other
slots (`geographic_poi`, `current_location`, `spatial_relation`) are not kept. A query in
which one of the five slots occurs twice (two cities, or both kinds of condition) is left
out, as is a query that repeats an earlier one (ignoring case and runs of white space).
Then ROWS queries are drawn with a seeded random.Random(SEED), in the drawn order.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

SEED = 20180525
ROWS = 500
SLOTS = {"city": "city", "state": "state", "country": "country", "timeRange": "time_range",
         "condition_description": "condition", "condition_temperature": "condition"}
FIELDS = ("city", "state", "country", "time_range", "condition")
OUT = Path(__file__).with_name("weather.jsonl")


def row_of(pieces: list[dict]) -> dict | None:
    """The query as a row, or None when one of the kept slots occurs twice."""
    row: dict = {"text": "".join(p["text"] for p in pieces).strip(), **dict.fromkeys(FIELDS)}
    for piece in pieces:
        field = SLOTS.get(piece.get("entity", ""))
        if field is None:
            continue
        if row[field] is not None:
            return None
        row[field] = piece["text"].strip()
    return row


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    queries = json.loads(Path(argv[1]).read_text(encoding="utf-8"))["GetWeather"]
    rows, seen, repeated = [], set(), 0
    for query in queries:
        row = row_of(query["data"])
        if row is None:
            repeated += 1
            continue
        key = " ".join(row["text"].lower().split())
        if row["text"] and key not in seen:
            seen.add(key)
            rows.append(row)
    drawn = random.Random(SEED).sample(rows, ROWS)
    with OUT.open("w", encoding="utf-8") as out:
        for row in drawn:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(drawn)} rows to {OUT} (of {len(queries)} queries: {len(rows)} kept, "
          f"{repeated} with a slot twice, {len(queries) - len(rows) - repeated} repeated)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
