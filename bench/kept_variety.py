"""What each subsample strategy keeps from the committed demo pool: feelings, kinds, lengths and
lexical variety. Asked by issue 24: `representative` trained a model that named the feeling less
often than `random` (bench/strategies.py), though every figure of coverage.py was as good or better.

    python bench/kept_variety.py                 # the demo's training pool cut to 1,000
    python bench/kept_variety.py --keep 5000 --seeds 42 7
    python bench/kept_variety.py --data skewed.jsonl.gz --keep 5000 --representation summary

Cuts by the subsample stage's own code (stages/subsample.py cut_train), with and without the
emotion as the label column. Variety: distinct character 3-grams of the kept texts, and distinct
clauses (split at ，。！？) that do not hold the cause: the ways of saying a feeling and the filler
a model must learn to read past. Nothing is timed; prints a Markdown table and one JSON line.
"""
from __future__ import annotations

import argparse
import gzip
import json
import re
import statistics
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
ROOT = Path(__file__).resolve().parents[1]


def describe(rows: list[dict]) -> dict:
    emotions = Counter(r["emotion"] for r in rows)
    grams, clauses = set(), set()
    for r in rows:
        t = r["text"]
        grams.update(t[i:i + 3] for i in range(len(t) - 2))
        clauses.update(c for c in re.split(r"[，。！？\n]", t) if c and r["cause"] not in c)
    return {"median_chars": statistics.median(len(r["text"]) for r in rows),
            "emotion_max_min": f"{max(emotions.values())}/{min(emotions.values())}",
            "top_emotion_share": round(max(emotions.values()) / len(rows), 3),
            "emotion_named_share": round(sum(r["emotion"] in r["text"] for r in rows) / len(rows), 3),
            "diary_share": round(sum(r["type"] == "diary" for r in rows) / len(rows), 3),
            "distinct_3grams": len(grams), "distinct_other_clauses": len(clauses)}


def main() -> None:
    from emosum import params
    from emosum.coverage import REPRESENTATIONS
    from stages import subsample

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT / "data/demo/emotions.jsonl.gz"))
    ap.add_argument("--keep", type=int, default=1000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 7])
    ap.add_argument("--picks", nargs="+", default=["nearest", "random"],
                    help="representative_pick values to cut with (beside random and stratified)")
    ap.add_argument("--representation", default="pair", choices=REPRESENTATIONS,
                    help="subsample.representation of the representative cuts")
    args = ap.parse_args()
    with gzip.open(args.data, "rt", encoding="utf-8") as f:
        pool = [r for r in map(json.loads, f) if r["split"] == "train"]
    out = [{"cut": "the whole pool", "seed": "-", **describe(pool), "mean_sim_to_kept": "-", "p10_sim_to_kept": "-"}]
    for seed in args.seeds:
        cuts = [("random", False, None), ("stratified", True, None)] + \
            [("representative", label, pick) for pick in args.picks for label in (False, True)]
        for strategy, label, pick in cuts:
            cfg = params.parse_section("subsample", {"max_samples": args.keep, "strategy": strategy, "seed": seed,
                                                     **({"representative_pick": pick} if pick else {}),
                                                     "representation": args.representation})
            rows = [{**r, "label": r["emotion"] if label else None} for r in pool]
            kept, cover = subsample.cut_train(rows, cfg, has_label=label)
            name = strategy + (f", pick {pick}" if pick else "") + (" (label: emotion)" if label else "")
            out.append({"cut": name, "seed": seed, **describe(kept),
                        # the stage's own coverage figures (metrics/subsample.json's)
                        "mean_sim_to_kept": cover["kept"]["mean_similarity_to_nearest_kept"],
                        "p10_sim_to_kept": cover["kept"]["p10_similarity_to_nearest_kept"]})
            print(f"  {name}, seed {seed}: done", file=sys.stderr, flush=True)
    keys = list(out[0])
    print(f"\nThe demo's {len(pool):,} training pairs cut to {args.keep:,}\n")
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for o in out:
        print("| " + " | ".join(str(o[k]) for k in keys) + " |")
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
