"""Regenerates `tweets.jsonl` from the VADER tweet ground truth (Hutto & Gilbert, ICWSM 2014).

The file ships in the sdist of `vaderSentiment==3.3.2` (MIT), inside
`additional_resources/hutto_ICWSM_2014.tar.gz` as `hutto_ICWSM_2014/tweets_GroundTruth.txt`:
tab-separated ID, mean sentiment rating (-4 .. +4, from at least 20 human raters), text.

    pip download --no-deps --no-binary :all: vaderSentiment==3.3.2 -d /tmp/ds
    tar xzf /tmp/ds/vaderSentiment-3.3.2.tar.gz -C /tmp/ds
    tar xzf /tmp/ds/vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz -C /tmp/ds
    python programs/data/make_tweets.py /tmp/ds/hutto_ICWSM_2014/tweets_GroundTruth.txt

Labels from the mean rating: positive at 1.0 and above, negative at -1.0 and below,
neutral strictly between -0.5 and 0.5; tweets in between are left out as unclear. Texts are
HTML-unescaped (`&amp;` -> `&`) and stripped, otherwise verbatim (`@anonymous` and
`http://url_removed` are the dataset's own stand-ins). Duplicates (ignoring case and runs of
white space) are dropped. Then PER_LABEL tweets of each label are drawn with a seeded
random.Random(SEED), and the rows are written in a seeded shuffled order.
"""

from __future__ import annotations

import html
import json
import random
import sys
from pathlib import Path

SEED = 20140601
PER_LABEL = 200
LABELS = ("positive", "negative", "neutral")
OUT = Path(__file__).with_name("tweets.jsonl")


def label_of(mean: float) -> str | None:
    if mean >= 1.0:
        return "positive"
    if mean <= -1.0:
        return "negative"
    if -0.5 < mean < 0.5:
        return "neutral"
    return None


def read(path: Path) -> list[tuple[str, float, str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        ident, mean, text = line.split("\t")
        rows.append((ident, float(mean), html.unescape(text).strip()))
    return rows


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    by_label: dict[str, list[str]] = {label: [] for label in LABELS}
    seen: set[str] = set()
    for _ident, mean, text in read(Path(argv[1])):
        key = " ".join(text.lower().split())
        label = label_of(mean)
        if not text or key in seen or label is None:
            continue
        seen.add(key)
        by_label[label].append(text)
    rng = random.Random(SEED)
    rows = [{"text": text, "label": label} for label in LABELS for text in rng.sample(by_label[label], PER_LABEL)]
    rng.shuffle(rows)
    with OUT.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    counts = ", ".join(f"{label} {len(texts)}" for label, texts in by_label.items())
    print(f"wrote {len(rows)} rows to {OUT} (available: {counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
