"""Benchmark: does `subsample.strategy` change what the model learns? random, stratified and
representative cuts of the same pool, each trained with two seeds, scored on test and held-out.

    python bench/strategies.py                         # about 45 min on 2 cores; run it alone
    python bench/strategies.py --pools demo --keep 1000 --seeds 42,7 --max-steps 600
    python bench/strategies.py --pools skewed --keep 5000 --max-steps -1 --strategies random,representative
    python bench/strategies.py --pools skewed --keep 5000 --max-steps -1 --strategies random,representative --representation summary
    python bench/strategies.py --tables out-42-7.txt out-1.txt   # the tables of earlier runs, merged

A strategy may name its `subsample.representative_pick` after a colon (`representative:kcenter`);
--representation sets `subsample.representation` in every run (the random cut is the same either
way; its coverage figures are then in that representation).

For each pool, strategy and seed, in a temporary folder and in this process: the subsample,
tokenize, train and evaluate stages' own code with params.yaml's recipe, only `subsample.strategy`,
`subsample.max_samples` (--keep), and the seed changed (`subsample.seed` and `train.seed` both:
each seed is another split and cut of the pool, the same for the three strategies, so strategies
compare within a seed and the spread is over seeds). Every run trains the same number of steps
(--max-steps, default 600): what is compared is which pairs were kept, not how many updates a
smaller cut gets (at 1,000 pairs the recipe's 8 epochs are 250 steps, after which every strategy
wrote the template with chance-level feelings: nothing to compare).

  demo     the committed demo file (data/demo/emotions.jsonl.gz)
  skewed   the demo generator with --skew 0.6: 60% of the training pool from one narrow slice
           (one feeling, three cause frames, diaries), the held-out split as in the demo. Its test
           split is carved from the skewed pool (skewed too); the held-out split is not.
  csl      the real CSL set (../shared/data/csl/pairs.jsonl: its 1,000 dev abstracts -> titles as the
           pool, the carve and cut from them; its official test split scored), with the README's
           CSL data params and no fact columns; --keep below the pool (e.g. 475 of its 950).
  duplicated  the demo generator with --duplicates 0.3: 30% of the training pool retells an earlier
           pair (near-duplicates: one sentence dropped, swapped or added). With --no-near-duplicates
           the subsample stage's near-duplicate check is off (`near_duplicate_jaccard: null`), so
           the cut alone decides how much redundancy the model trains on.

Prints a table per pool (mean and range over seeds), each strategy against the first seed by seed
(paired: the same split and test rows within a seed), then one JSON line.
"""
from __future__ import annotations

import argparse
import collections
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
STRATEGIES = ("random", "stratified", "representative")
# real sets: the file beside the checkout and the params that read it (README "Your own data")
REAL = {"csl": (ROOT.parent / "shared" / "data" / "csl" / "pairs.jsonl",
                {"text_column": "source", "summary_column": "summary", "split_column": "split", "train_split": "dev",
                 "validation_split": None, "test_split": "test", "extra_test_splits": []},
                {"fact_columns": []})}
FIGURES = (("rougeL", "ROUGE-L"), ("cause_half", "cause half"), ("emotion", "emotion"))


def scores(metrics: dict) -> dict:
    """The model's figures, and the floors beside them (lead-k and the run's constant summary)."""
    fr, lead = metrics.get("fact_recall", {}), metrics.get("lead_fact_recall", {})
    return {"rougeL": metrics["rougeL"], "cause": fr.get("cause"), "cause_half": fr.get("cause_half"),
            "emotion": fr.get("emotion"), "lead_rougeL": metrics.get("lead_rougeL"),
            "constant_rougeL": metrics.get("constant_rougeL"), "lead_cause_half": lead.get("cause_half")}


def one(pool: Path, strategy: str, seed: int, keep: int, max_steps: int, tmp: Path, near_dups: bool = True,
        representation: str = "pair") -> dict:
    from emosum import params
    from stages import evaluate, subsample, tokenize, train

    import yaml

    doc = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    doc["data"]["path"] = str(pool)
    for real, (path, data_keys, eval_keys) in REAL.items():
        if pool == path:
            doc["data"].update(data_keys)
            doc["evaluate"].update(eval_keys)
    name, _, pick = strategy.partition(":")
    doc["subsample"].update(strategy=name, seed=seed, max_samples=keep, representation=representation)
    if pick:
        doc["subsample"]["representative_pick"] = pick
    doc["train"].update(seed=seed, max_steps=max_steps)
    if not near_dups:
        doc["subsample"]["near_duplicate_jaccard"] = None
    data, sub, model, tok, tr, ev = params.validate(doc, "data", "subsample", "model", "tokenize", "train", "evaluate")
    out = tmp / f"{pool.stem}-{strategy.replace(':', '-')}-{seed}-{int(near_dups)}"
    t0 = time.monotonic()
    s = subsample.run(data, sub, out / "splits", ev.fact_columns)
    tokenize.run(model, tok, out / "splits", out / "tokenizer", out / "tokenized")
    train.SCRATCH_DIR = out / "scratch"
    stats = train.run(model, tr, out / "tokenizer", out / "tokenized", out / "model", None, started=time.monotonic())
    metrics, _, _ = evaluate.run(ev, out / "model", out / "tokenized", out / "splits")
    cover = (s.get("coverage") or {}).get("kept", {})
    kept_rows = [json.loads(line) for line in open(out / "splits" / "train.jsonl", encoding="utf-8")]
    return {"pool": pool.stem.split(".")[0], "strategy": strategy, "seed": seed, "kept": cover.get("kept"),
            "steps": stats["steps"], "train_s": stats["train_s"], "minutes": round((time.monotonic() - t0) / 60, 1),
            "coverage_mean": cover.get("mean_similarity_to_nearest_kept"),
            "near_duplicates_dropped": (s.get("near_duplicates") or {}).get("found"),
            # pairs kept whose summary another kept pair has too (the demo's summaries are unique
            # except where a pair was retold): the redundancy the model trains on
            "kept_repeated_summaries": len(kept_rows) - len({r["summary"] for r in kept_rows}),
            # the most common feeling's share of the kept pairs (the skewed pool crowds one: SKEW_EMOTION)
            "kept_top_emotion_share": round(max(collections.Counter(
                r.get("facts", {}).get("emotion") for r in kept_rows).values()) / len(kept_rows), 4)
            if any("emotion" in r.get("facts", {}) for r in kept_rows) else None,
            "test": scores(metrics), "heldout": scores(metrics.get("heldout", {"rougeL": None}))}


def table(rows: list[dict], pool: str) -> None:
    print(f"\npool: {pool} (mean over seeds; range in brackets)\n")
    head = " | ".join(f"{split} {name}" for split in ("test", "heldout") for _, name in FIGURES)
    print(f"| strategy | {head} | floors test / held-out (lead, constant ROUGE-L; lead cause half) | coverage | "
          "top feeling's share of the kept |")
    print("|---|" + "---|" * (2 * len(FIGURES) + 3))
    for strategy in dict.fromkeys(r["strategy"] for r in rows if r["pool"] == pool):
        mine = [r for r in rows if r["pool"] == pool and r["strategy"] == strategy]
        if not mine:
            continue
        cells = []
        for split in ("test", "heldout"):
            for key, _ in FIGURES:
                vals = [r[split][key] for r in mine if r[split].get(key) is not None]
                if not vals:
                    cells.append("-")
                    continue
                scale = 1 if key == "rougeL" else 100
                cells.append(f"{scale * statistics.mean(vals):.1f} ({scale * (max(vals) - min(vals)):.1f})")
        floors = []
        for split in ("test", "heldout"):
            f = [(r[split].get("lead_rougeL"), r[split].get("constant_rougeL"), r[split].get("lead_cause_half"))
                 for r in mine]
            f = [x for x in f if None not in x[:2]]
            half = [x[2] for x in f if x[2] is not None]  # none without fact columns (a real set)
            floors.append(f"{statistics.mean(x[0] for x in f):.1f}, {statistics.mean(x[1] for x in f):.1f}"
                          + (f"; {100 * statistics.mean(half):.1f}%" if half else "") if f else "-")
        cells.append(" / ".join(floors))
        cov = [r["coverage_mean"] for r in mine if r["coverage_mean"] is not None]
        cells.append(f"{statistics.mean(cov):.3f}" if cov else "-")
        top = [r["kept_top_emotion_share"] for r in mine if r["kept_top_emotion_share"] is not None]
        cells.append(f"{100 * statistics.mean(top):.1f}%" if top else "-")
        print(f"| {strategy} | " + " | ".join(cells) + " |")


PAIRED = (("rougeL", "ROUGE-L"), ("cause", "cause exact"), ("cause_half", "cause half"), ("emotion", "emotion"))


def paired(rows: list[dict], pool: str) -> None:
    """Each strategy against the first one, seed by seed: within a seed both cuts come from the same
    pool and split and are scored on the same test rows, so the per-seed difference takes the
    split's luck out (a paired comparison), which the mean-and-range table above cannot."""
    mine = [r for r in rows if r["pool"] == pool]
    strategies = list(dict.fromkeys(r["strategy"] for r in mine))
    if len(strategies) < 2:
        return
    base = {r["seed"]: r for r in mine if r["strategy"] == strategies[0]}
    print(f"\npool: {pool}, seed by seed against {strategies[0]} (differences in points; "
          f"ahead on: seeds where the difference is above 0)\n")
    head = " | ".join(f"{split} {name}" for split in ("test", "heldout") for _, name in PAIRED)
    print(f"| strategy | seeds | {head} |")
    print("|---|---|" + "---|" * (2 * len(PAIRED)))
    for strategy in strategies[1:]:
        other = {r["seed"]: r for r in mine if r["strategy"] == strategy}
        seeds = [sd for sd in base if sd in other]
        cells = []
        for split in ("test", "heldout"):
            for key, _ in PAIRED:
                scale = 1 if key == "rougeL" else 100
                d = [scale * (other[sd][split][key] - base[sd][split][key]) for sd in seeds
                     if other[sd][split].get(key) is not None and base[sd][split].get(key) is not None]
                cells.append(" / ".join(f"{x:+.1f}" for x in d) + f" (ahead on {sum(x > 0 for x in d)} of {len(d)})"
                             if d else "-")
        print(f"| {strategy} | {' / '.join(map(str, seeds))} | " + " | ".join(cells) + " |")


def main() -> None:
    from emosum.coverage import REPRESENTATIONS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pools", default="demo,skewed")
    ap.add_argument("--keep", type=int, default=1000)
    ap.add_argument("--seeds", default="42,7")
    ap.add_argument("--max-steps", type=int, default=600, help="training steps of every run (-1: the recipe's epochs)")
    ap.add_argument("--skew", type=float, default=0.6)
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--duplicates", type=float, default=0.3, help="the duplicated pool's share of retold pairs")
    ap.add_argument("--representation", default="pair", choices=REPRESENTATIONS,
                    help="subsample.representation of every run")
    ap.add_argument("--no-near-duplicates", dest="near_dups", action="store_false",
                    help="subsample.near_duplicate_jaccard: null (exact duplicates only) in every run")
    ap.add_argument("--tables", nargs="+", metavar="OUTPUT",
                    help="train nothing: print the tables of earlier runs' outputs (their last JSON line), merged")
    args = ap.parse_args()
    if args.tables:
        rows = [r for path in args.tables
                for r in json.loads(Path(path).read_text(encoding="utf-8").strip().splitlines()[-1])["rows"]]
        for pool in dict.fromkeys(r["pool"] for r in rows):
            table(rows, pool)
            paired(rows, pool)
        return
    import os

    os.chdir(ROOT)
    from emosum import demo_data, hf
    from emosum.logs import setup_logging

    setup_logging()
    for name in ("emosum.train", "emosum.evaluate", "emosum.tokenize", "emosum.speed", "emosum.machine"):
        logging.getLogger(name).setLevel(logging.WARNING)
    hf.offline_env(False)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pools = {"demo": ROOT / "data" / "demo" / "emotions.jsonl.gz"}
        for real, (path, _, _) in REAL.items():
            if real in args.pools.split(",") and not path.exists():
                ap.error(f"--pools {real}: {path} is not there (../shared/data beside the checkout)")
            pools[real] = path
        if "skewed" in args.pools:
            pools["skewed"] = tmp / "skewed.jsonl"
            with open(pools["skewed"], "w", encoding="utf-8") as f:
                for r in demo_data.generate(13_000, 0, 400, skew=args.skew):
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
        if "duplicated" in args.pools:
            pools["duplicated"] = tmp / "duplicated.jsonl"
            with open(pools["duplicated"], "w", encoding="utf-8") as f:
                for r in demo_data.generate(13_000, 0, 400, duplicates=args.duplicates):
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
        for pool in args.pools.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                for strategy in args.strategies.split(","):
                    r = one(pools[pool], strategy, seed, args.keep, args.max_steps, tmp, args.near_dups, args.representation)
                    r["pool"] = pool
                    rows.append(r)
                    print(f"{pool} {strategy} seed {seed}: {r['minutes']} min; test {r['test']}; "
                          f"heldout {r['heldout']}; coverage {r['coverage_mean']}; near-duplicates dropped "
                          f"{r['near_duplicates_dropped']}, kept pairs repeating a summary {r['kept_repeated_summaries']}",
                          file=sys.stderr, flush=True)
    print(f"\nsubsample strategies, {args.keep} training pairs kept, {args.max_steps} steps, seeds {args.seeds}, "
          f"near-duplicate check {'on' if args.near_dups else 'off'}, representation {args.representation}, "
          "params.yaml's recipe otherwise")
    for pool in args.pools.split(","):
        table(rows, pool)
        paired(rows, pool)
    print(json.dumps({"keep": args.keep, "rows": rows}, ensure_ascii=False))


if __name__ == "__main__":
    main()
