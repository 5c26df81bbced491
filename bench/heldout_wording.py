"""The held-out split's emotion recall by how the feeling is worded (the demo's `wording` column):
`seen` (a wording used in training), `new_form` (a training word in a construction never used in
training), `new_word` (a synonym never seen), `new_phrase` (a paraphrase never seen). A model from
scratch has no way to know an unseen word's meaning from 5,000 pairs, so what it can reach on the
held-out split is bounded by the last two rows' share; this prints that bound beside the recall.

    python bench/heldout_wording.py [metrics/predictions.jsonl ...]
"""
from __future__ import annotations

import collections
import gzip
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from emosum import facts

    wording = {}
    with gzip.open("data/demo/emotions.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["split"] == "heldout":
                wording[r["text"]] = r["wording"]
    for path in sys.argv[1:] or ["metrics/predictions.jsonl"]:
        rows = [json.loads(line) for line in open(path, encoding="utf-8")]
        rows = [r for r in rows if r["split"] == "heldout"]
        by = collections.defaultdict(list)
        for r in rows:
            named = facts.normalize(r["facts"]["emotion"]) in facts.normalize(r["prediction"])
            exact = facts.normalize(r["facts"]["cause"]) in facts.normalize(r["prediction"])
            by[wording.get(r["text"], "?")].append((named, exact))
        print(f"{path}: held-out, {len(rows)} rows")
        print("| wording | rows | emotion named | cause exact |")
        print("|---|---|---|---|")
        for w in ("seen", "new_form", "new_word", "new_phrase", "?"):
            if by.get(w):
                v = by[w]
                print(f"| {w} | {len(v)} | {sum(a for a, _ in v) / len(v):.1%} | {sum(b for _, b in v) / len(v):.1%} |")
        unseen = sum(len(by.get(w, [])) for w in ("new_word", "new_phrase"))
        print(f"feelings worded only by words or phrases absent from training: {unseen / len(rows):.1%} of the rows")


if __name__ == "__main__":
    main()
