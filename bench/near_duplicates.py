"""Benchmark: how many near-duplicate inputs each set we have holds, and how many test inputs have a
near-duplicate among the training inputs (a leak), at several Jaccard thresholds.

    python bench/near_duplicates.py           # the demo and ../shared/data's sets (skipped where absent)

The same code as the subsample stage (emosum/near_dups.py: MinHash LSH over character 5-grams,
each candidate checked by its exact Jaccard). Also times a 100,000-text pool made from the demo
generator. Prints a table, then one JSON line.
"""
from __future__ import annotations

import gzip
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
SETS = {  # name: (file, text column, split column, training split, test split)
    "demo": (ROOT / "data/demo/emotions.jsonl.gz", "text", "split", "train", "heldout"),
    "csl": (SHARED / "csl/pairs.jsonl", "source", "split", "dev", "test"),
    "vcsum segments": (SHARED / "vcsum/segments.jsonl", "source", "split", "dev", "test"),
    "vcsum meetings": (SHARED / "vcsum/meetings.jsonl", "source", None, None, None),
    "counselling dialogues": (SHARED / "cpsycound/dialogues.jsonl", "text", None, None, None),
}
THRESHOLDS = (0.5, 0.6, 0.8)


def rows_of(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def main() -> None:
    from emosum import near_dups

    out = []
    for name, (path, col, split_col, train, test) in SETS.items():
        if not path.exists():
            print(f"{name}: {path} absent, skipped", file=sys.stderr)
            continue
        rows = rows_of(path)
        texts = [r[col] for r in rows]
        groups = [r.get(split_col) if split_col else "all" for r in rows]
        order = [test, train, "all"] if split_col else ["all"]
        for th in THRESHOLDS:
            t0 = time.perf_counter()
            found = near_dups.find(texts, [g if g in order else "all" for g in groups], th, order + ["all"])
            within = sum(groups[i] == groups[j] for i, j, _ in found)
            # a test input with a near-duplicate in train: found as the training copy dropped
            leaks = len({j for i, j, _ in found if groups[i] == train and groups[j] == test}) if split_col else None
            n_test = sum(g == test for g in groups) if split_col else None
            out.append({"set": name, "rows": len(rows), "jaccard": th, "near_duplicates": len(found),
                        "share": round(len(found) / len(rows), 4), "within_split": within,
                        "test_inputs_leaked": leaks, "test_rows": n_test,
                        "seconds": round(time.perf_counter() - t0, 2),
                        "example": [texts[found[0][0]][:60], texts[found[0][1]][:60], found[0][2]] if found else None})
    from emosum import demo_data

    pool = [r["text"] for r in demo_data.generate(100_000, seed=5, heldout=0)]
    t0 = time.perf_counter()
    found = near_dups.find(pool, ["all"] * len(pool), 0.6, ["all"])
    scale = {"pool": len(pool), "near_duplicates": len(found), "seconds": round(time.perf_counter() - t0, 1)}
    print("| set | rows | Jaccard >= | near-duplicates | share | test inputs with one in train | seconds |")
    print("|---|---|---|---|---|---|---|")
    for r in out:
        leak = f"{r['test_inputs_leaked']} of {r['test_rows']}" if r["test_rows"] else "-"
        print(f"| {r['set']} | {r['rows']:,} | {r['jaccard']} | {r['near_duplicates']} | {100 * r['share']:.2f}% | "
              f"{leak} | {r['seconds']} |")
    print(f"\n100,000 demo texts (generator seed 5) at Jaccard 0.6: {scale['near_duplicates']} near-duplicates in "
          f"{scale['seconds']} s")
    for r in out:
        if r["example"] and r["jaccard"] == 0.6:
            print(f"- {r['set']}: {r['example'][0]!r} ~ {r['example'][1]!r} ({r['example'][2]})")
    print(json.dumps({"sets": out, "scale": scale}, ensure_ascii=False))


if __name__ == "__main__":
    main()
