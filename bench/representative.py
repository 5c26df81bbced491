"""Benchmark: the representative cut at scale, and what each strategy's cut covers.

    python bench/representative.py                  # a 100,000-pair demo pool cut to 5,000; run it alone
    python bench/representative.py --pool 20000 --keep 1000

Pairs from the demo generator (seed 5; the emotion as the label column), cut by the subsample
stage's own code (stages/subsample.py cut_train) with each strategy. Prints the time of each cut
(features included) and its coverage figures (emosum/coverage.py) side by side, then one JSON line.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from emosum import demo_data, params
    from stages import subsample

    ap = argparse.ArgumentParser()
    ap.add_argument("--pool", type=int, default=100_000)
    ap.add_argument("--keep", type=int, default=5000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = [{"text": r["text"], "summary": r["summary"], "label": r["emotion"]}
            for r in demo_data.generate(args.pool, seed=5, heldout=0)]
    print(f"{len(rows):,} pairs generated in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    out = []
    for strategy in ("random", "stratified", "representative"):
        cfg = params.parse_section("subsample", {"max_samples": args.keep, "strategy": strategy})
        t0 = time.perf_counter()
        kept, cover = subsample.cut_train(rows, cfg, has_label=True)
        out.append({"strategy": strategy, "seconds": round(time.perf_counter() - t0, 1), **cover["kept"]})
        print(f"  {strategy}: {out[-1]['seconds']} s", file=sys.stderr, flush=True)
    print(f"\n{args.pool:,} demo pairs cut to {args.keep:,} (label: the emotion)\n")
    print("| strategy | seconds (features, cut, coverage) | pool's mean similarity to nearest kept | 10th percentile | "
          "clusters | labels | length deciles |")
    print("|---|---|---|---|---|---|---|")
    for r in out:
        print(f"| {r['strategy']} | {r['seconds']} | {r['mean_similarity_to_nearest_kept']:.4f} | "
              f"{r['p10_similarity_to_nearest_kept']:.4f} | {r['clusters_represented']:.0%} | "
              f"{r['labels_represented']:.0%} | {r['length_deciles_represented']:.0%} |")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
