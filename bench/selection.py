"""Benchmark: what a short context keeps of long inputs, lead against learned sentence selection.

    python bench/selection.py                       # demo at 128; VCSum segments and CSL at 128 and 512
    python bench/selection.py --sets vcsum --lengths 128

For each set and max_source_length, the real subsample and tokenize stages run in a temporary
folder (scratch tokenizer, as `dvc repro` makes it; `tokenize.select: learned`, so the scorer is
always fitted) and the coverage the tokenize stage measures is printed side by side: the share of
the reference summary's character bigrams found in the input the model gets, for the lead (first
N tokens), the learned selection, the greedy oracle (sentences chosen with the reference in hand)
and the whole input, on the test split; then the ratio learned / lead and what `auto` chooses
(decided on the validation split, or on train where the set has none). The real sets are read
from ../shared/data (skipped where absent). Ends with one JSON line.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"

SETS = {  # name: (data params, subsample overrides)
    "demo": ({"path": str(ROOT / "data/demo/emotions.jsonl.gz")}, {}),
    "vcsum": ({"path": str(SHARED / "vcsum/segments.jsonl"), "text_column": "source", "split_column": "split",
               "train_split": "dev", "validation_split": None}, {"max_samples": None}),
    "csl": ({"path": str(SHARED / "csl/pairs.jsonl"), "text_column": "source", "split_column": "split",
             "train_split": "dev", "validation_split": None}, {"max_samples": None}),
}


def measure(name: str, length: int, work: Path) -> dict:
    import yaml

    from emosum import params
    from stages import subsample, tokenize

    data, sub = SETS[name]
    doc = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    d = params.parse_section("data", {**doc["data"], **data})
    s = params.parse_section("subsample", {**doc["subsample"], **sub})
    subsample.run(d, s, work / "splits", fact_columns=[])
    t = params.parse_section("tokenize", {**doc["tokenize"], "max_source_length": length, "max_target_length": 256,
                                          "select": "learned"})
    t0 = time.perf_counter()
    stats = tokenize.run(params.parse_section("model", doc["model"]), t, work / "splits", work / "tok",
                         work / "tokenized")
    sel = stats["selection"]
    test = sel["splits"]["test"]
    val = sel["splits"]["validation"]["coverage"]
    # what `auto` would choose: the learned selection where it raises the validation coverage by select_min_gain
    auto = "learned" if val.get("learned") is not None and val["learned"] - val["lead"] >= t.select_min_gain else "lead"
    return {"set": name, "max_source_length": length, "test_rows": stats["splits"]["test"]["rows"],
            "test_longer": test["longer_than_budget"], **{k: test["coverage"].get(k) for k in
                                                          ("lead", "learned", "oracle", "whole")},
            "learned_over_lead": round((test["coverage"].get("learned") or test["coverage"]["lead"]) /
                                       max(1e-9, test["coverage"]["lead"]), 2),
            "validation_lead": val["lead"], "validation_learned": val.get("learned"),
            "auto_chooses": auto, "tokenize_s": round(time.perf_counter() - t0, 1),
            "select_s": sel["seconds"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="demo,vcsum,csl")
    ap.add_argument("--lengths", default="128,512", help="max_source_length values (the demo runs the first only)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = []
    for name in args.sets.split(","):
        if name != "demo" and not Path(SETS[name][0]["path"]).exists():
            print(f"{name}: {SETS[name][0]['path']} not found, skipped")
            continue
        for length in [int(x) for x in args.lengths.split(",")][: 1 if name == "demo" else None]:
            with tempfile.TemporaryDirectory() as tmp:
                rows.append(measure(name, length, Path(tmp)))
            print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
    print()
    print(f"{'set':6} {'tokens':>6} {'long/test':>10} {'lead':>6} {'learned':>8} {'oracle':>7} {'whole':>6} "
          f"{'learned/lead':>13} {'auto':>8} {'select s':>9}")
    for r in rows:
        print(f"{r['set']:6} {r['max_source_length']:>6} {r['test_longer']:>4}/{r['test_rows']:<5} {r['lead']:>6.3f} "
              f"{r['learned'] or float('nan'):>8.3f} {r['oracle']:>7.3f} {r['whole']:>6.3f} {r['learned_over_lead']:>12.2f}x "
              f"{r['auto_chooses']:>8} {r['select_s']:>9.1f}")
    print(json.dumps({"selection": rows}, ensure_ascii=False))


if __name__ == "__main__":
    main()
