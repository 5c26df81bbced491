"""Where the feeling is named wrong: emotion recall of a run's summaries split by how the demo text
shows the feeling.

    python bench/feeling_shapes.py metrics/predictions.jsonl [more predictions.jsonl ...]

Shapes (found in the text with the demo generator's own templates, `emosum/demo_data.py: core`):
`negation` (`不是生气，是失望`, `说不上X，更多的是Y`, `倒也不X，就是Y`), `someone else's` (`同事倒是挺X的，我却Y`,
`同事说他很X，可我Y`), `plain` (neither). Held-out rows are also split by the wording family the
generator recorded (`seen`, `new_form`: a training word in a construction held out of training,
`new_word`, `new_phrase`). A summary names the feeling right when it holds `感到<label>` (the demo's
frame). Reads the demo file for the wording family; no model is run.
"""
from __future__ import annotations

import argparse
import collections
import gzip
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from emosum.demo_data import EMOTIONS, HELD  # noqa: E402

WORDS = sorted({w.lstrip(HELD) for _, words, _ in EMOTIONS.values() for w in words}, key=len, reverse=True)
_W = "|".join(map(re.escape, WORDS))
NEGATION = re.compile(rf"(?:不是|说不上|倒也不)(?:{_W})，")
OTHERS = re.compile(rf"倒是挺(?:{_W})的，我却|说他很(?:{_W})，可我")


def shape(text: str) -> str:
    if NEGATION.search(text):
        return "negation"
    if OTHERS.search(text):
        return "someone else's"
    return "plain"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("predictions", nargs="+", help="metrics/predictions.jsonl files (evaluate's output)")
    ap.add_argument("--demo", default="data/demo/emotions.jsonl.gz", help="the demo file (wording families)")
    args = ap.parse_args(argv)
    wording = {}
    with gzip.open(args.demo, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            wording[row["text"]] = row.get("wording", "seen")
    print("| predictions | split | group | named right | of | share |")
    print("|---|---|---|---|---|---|")
    for path in args.predictions:
        right, total = collections.Counter(), collections.Counter()
        with open(path, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        for row in rows:
            ok = f"感到{row['facts']['emotion']}" in row["prediction"]
            groups = ["all", shape(row["text"])]
            if row["split"] != "test":
                groups.append(f"wording: {wording.get(row['text'], '?')}")
            for g in groups:
                right[row["split"], g] += ok
                total[row["split"], g] += 1
        for (split, g), n in sorted(total.items()):
            print(f"| {path} | {split} | {g} | {right[split, g]} | {n} | {100 * right[split, g] / n:.1f}% |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
