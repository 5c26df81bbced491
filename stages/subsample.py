"""Stage 1: read the pair file, drop unusable rows (counted by reason), split, subsample.

    python -m stages.subsample            # what `dvc repro subsample` runs

Reads params `data` and `subsample`. Writes data/splits/{train,validation,test}.jsonl and
metrics/subsample.json. The test and validation splits do not depend on `max_samples`, so a fast
run and a full run are scored on the same test set. With `strategy: stratified` the training
subset keeps the label distribution (data.label_column) or, without labels, the input-length one.
"""
from __future__ import annotations

import logging
import random
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from emosum import dataio, params
from emosum.logs import setup_logging

log = logging.getLogger("emosum.subsample")
SPLITS = ("train", "validation", "test")
REASONS = ("empty", "source_too_short", "summary_too_short", "exact_duplicate", "cross_split_duplicate",
           "near_duplicate", "cross_split_near_duplicate", "unknown_split")


def _text(obj: dict, col: str, where: str, role: str):
    if col not in obj:
        raise dataio.DataError(f"{where}: no column '{col}' (columns: {', '.join(map(str, obj))}); "
                               f"set data.{role}_column in params.yaml")
    value = obj[col]
    if value is not None and not isinstance(value, str):
        raise dataio.DataError(f"{where}: column '{col}' must be text, got {type(value).__name__} "
                               f"{value!r:.40}; fix the row or point data.{role}_column at a text column")
    return (value or "").strip()


def _facts(obj: dict, columns: list[str], where: str) -> dict:
    """The values the summary must state (evaluate.fact_columns), carried into the splits."""
    missing = [c for c in columns if c not in obj]
    if missing:
        raise dataio.DataError(f"{where}: no column {', '.join(map(repr, missing))} (columns: "
                               f"{', '.join(map(str, obj))}); evaluate.fact_columns in params.yaml names it: "
                               "fix the name or remove it")
    return {c: "" if obj[c] is None else str(obj[c]).strip() for c in columns}


def clean(rows, data: params.DataParams, cfg: params.SubsampleParams, fact_columns: list[str] = ()):
    """Keep usable pairs; count the rest by reason. Returns (kept, dropped, rows read)."""
    kept, dropped, seen, n = [], Counter(), set(), 0
    split_of = {data.train_split: "train", **{x: x for x in data.extra_test_splits}}
    if data.test_split:
        split_of[data.test_split] = "test"
    if data.validation_split:
        split_of[data.validation_split] = "validation"
    for where, obj in rows:
        n += 1
        text = _text(obj, data.text_column, where, "text")
        summary = _text(obj, data.summary_column, where, "summary")
        row = {"text": text, "summary": summary}
        if fact_columns:
            row["facts"] = _facts(obj, fact_columns, where)
        if data.label_column:
            if data.label_column not in obj:
                raise dataio.DataError(f"{where}: no column '{data.label_column}'; fix data.label_column")
            row["label"] = str(obj[data.label_column])
        if data.split_column:
            if data.split_column not in obj:
                raise dataio.DataError(f"{where}: no column '{data.split_column}'; fix data.split_column")
            row["split"] = split_of.get(str(obj[data.split_column]))
        if not text or not summary:
            dropped["empty"] += 1
        elif len(text) < cfg.min_source_chars:
            dropped["source_too_short"] += 1
        elif len(summary) < cfg.min_summary_chars:
            dropped["summary_too_short"] += 1
        elif (text, summary) in seen:
            dropped["exact_duplicate"] += 1
        elif data.split_column and row["split"] is None:
            dropped["unknown_split"] += 1
        else:
            seen.add((text, summary))
            kept.append(row)
    return kept, dropped, n


def drop_near_duplicates(rows: list[dict], data: params.DataParams, cfg: params.SubsampleParams,
                         dropped: Counter) -> tuple[list[dict], dict]:
    """Rows whose input near-duplicates one kept before it are dropped, before any split or cut:
    inside one split as `near_duplicate`; a training row near an evaluation row (of the file's own
    splits) as `cross_split_near_duplicate`, the evaluation row kept. Test and validation carved
    out of train later cannot leak: their near-duplicates are gone before the carving."""
    import time

    from emosum import near_dups

    if not cfg.near_duplicate_jaccard or len(rows) < 2:
        return rows, {"jaccard": cfg.near_duplicate_jaccard, "found": 0}
    t0 = time.perf_counter()
    groups = [r.get("split") or "all" for r in rows]
    order = [*eval_splits(data), "train", "all"]
    found = near_dups.find([r["text"] for r in rows], groups, cfg.near_duplicate_jaccard, order)
    drop = set()
    examples = []
    for i, j, sim in found:
        cross = groups[i] != groups[j]
        dropped["cross_split_near_duplicate" if cross else "near_duplicate"] += 1
        drop.add(i)
        if len(examples) < 5:
            examples.append({"dropped": rows[i]["text"][:80], "split": groups[i], "like": rows[j]["text"][:80],
                             "its_split": groups[j], "jaccard": sim})
    info = {"jaccard": cfg.near_duplicate_jaccard, "shingle_chars": near_dups.SHINGLE, "found": len(found),
            "share": round(len(found) / len(rows), 4), "seconds": round(time.perf_counter() - t0, 2),
            "examples": examples}
    log.info("near-duplicates (character %d-gram Jaccard >= %s): %d of %d rows (%.2f%%; %d a training input near an "
             "evaluation one) in %.1f s%s", near_dups.SHINGLE, cfg.near_duplicate_jaccard, len(found), len(rows),
             100 * info["share"], dropped["cross_split_near_duplicate"], info["seconds"],
             "".join(f"\n  dropped ({e['split']}) {e['dropped']!r} ~ ({e['its_split']}) {e['like']!r}: {e['jaccard']}"
                     for e in examples[:3]))
    return [r for k, r in enumerate(rows) if k not in drop], info


def _random_split(keys: list, cfg: params.SubsampleParams, names=("test", "validation")) -> dict[str, list]:
    """Consecutive slices of the (shuffled) keys: each named split its fraction, at least one; train the rest."""
    out, start = {}, 0
    for name in names:
        frac = cfg.test_fraction if name == "test" else cfg.validation_fraction
        k = max(1, round(len(keys) * frac))
        out[name] = keys[start:start + k]
        start += k
    out["train"] = keys[start:]
    return out


def eval_splits(data: params.DataParams) -> tuple[str, ...]:
    """Every split but train: validation, test, then the extra test splits."""
    return ("validation", "test", *data.extra_test_splits)


def split(pairs: list[dict], data: params.DataParams, cfg: params.SubsampleParams, dropped: Counter):
    """Split by unique input so the same text never lands in two splits."""
    groups = defaultdict(list)
    for p in pairs:
        groups[p["text"]].append(p)
    keys = sorted(groups)
    random.Random(cfg.seed).shuffle(keys)
    if not data.split_column:
        if len(keys) < 3:
            raise dataio.DataError(f"only {len(keys)} distinct inputs after cleaning: too few to split")
        parts = _random_split(keys, cfg)
        return {name: [r for k in ks for r in groups[k]] for name, ks in parts.items()}
    # The file's own splits. An input found in several keeps its test (then validation, then an
    # extra test split's) rows only.
    names = eval_splits(data)
    out = {s: [] for s in ("train", *names)}
    order = ("test", "validation", *data.extra_test_splits, "train")
    for k in keys:
        rows = groups[k]
        home = next(s for s in order if any(r["split"] == s for r in rows))
        out[home] += [r for r in rows if r["split"] == home]
        dropped["cross_split_duplicate"] += sum(r["split"] != home for r in rows)
    carve = tuple(n for n, v in (("test", data.test_split), ("validation", data.validation_split)) if not v)
    if carve:  # carve test and/or validation out of train, by input
        tg = defaultdict(list)
        for r in out["train"]:
            tg[r["text"]].append(r)
        parts = _random_split(list(tg), cfg, names=carve)
        for name, ks in parts.items():
            out[name] = [r for k in ks for r in tg[k]]
    for name in out:
        if not out[name]:
            what = getattr(data, name + "_split", name) if name in SPLITS else name
            fix = (f"set data.{name}_split" if name in SPLITS else
                   "set data.extra_test_splits to splits the file has, or to none: -S 'data.extra_test_splits=[]'")
            raise dataio.DataError(f"{data.path}: no rows for the {name} split ({data.split_column} = "
                                   f"'{what}'); {fix}")
    return out


def strata(rows: list[dict], cfg: params.SubsampleParams, has_label: bool) -> list[str]:
    if has_label:
        return [r["label"] for r in rows]
    # input-length buckets at the quantiles of this split
    lengths = sorted(len(r["text"]) for r in rows)
    edges = [lengths[int(len(lengths) * i / cfg.length_buckets)] for i in range(1, cfg.length_buckets)]
    return [f"len_q{sum(len(r['text']) >= e for e in edges) + 1}" for r in rows]


def take(rows: list[dict], cap, cfg: params.SubsampleParams, has_label: bool) -> list[dict]:
    """At most `cap` rows: a random prefix, or proportional per stratum (largest remainder)."""
    if not cap or cap >= len(rows):
        return rows
    rng = random.Random(cfg.seed)
    if cfg.strategy in ("random", "representative"):  # representative: the training cut only (cut_train)
        return [rows[i] for i in sorted(rng.sample(range(len(rows)), cap))]
    by = defaultdict(list)
    for i, s in enumerate(strata(rows, cfg, has_label)):
        by[s].append(i)
    quota = {s: cap * len(ix) / len(rows) for s, ix in by.items()}
    n = {s: int(q) for s, q in quota.items()}
    for s in sorted(quota, key=lambda s: (n[s] - quota[s], s))[:cap - sum(n.values())]:
        n[s] += 1
    picked = sorted(i for s in sorted(by) for i in rng.sample(by[s], n[s]))
    return [rows[i] for i in picked]


def cut_train(rows: list[dict], cfg: params.SubsampleParams, has_label: bool) -> tuple[list[dict], dict | None]:
    """The training cut to max_samples by cfg.strategy, and what it covers of the pool beside a
    random cut of the same size (emosum/coverage.py); None when nothing is cut."""
    import time

    from emosum import coverage

    cap = cfg.max_samples
    if not cap or cap >= len(rows):
        return rows, None
    t0 = time.perf_counter()
    x = coverage.features([r["text"] for r in rows], [r["summary"] for r in rows], cfg.seed, cfg.representation)
    labels = [r["label"] for r in rows] if has_label else None
    if cfg.strategy == "representative":
        kept = coverage.representative(x, cap, labels, cfg.seed, cfg.representative_pick)
    else:
        where = {id(r): i for i, r in enumerate(rows)}
        kept = [where[id(r)] for r in take(rows, cap, cfg, has_label)]
    pick_s = time.perf_counter() - t0
    lengths = [len(r["text"]) for r in rows]
    pool_clusters = coverage.clusters(x, cfg.seed)
    cover = {"strategy": cfg.strategy, "representation": cfg.representation, "seconds": round(pick_s, 2),
             "kept": coverage.coverage(x, kept, labels, lengths, cfg.seed, pool_clusters)}
    if cfg.strategy != "random":  # beside it: a random cut of the same size (the same seed as `random` uses)
        rnd = sorted(random.Random(cfg.seed).sample(range(len(rows)), cap))
        cover["random_cut"] = coverage.coverage(x, rnd, labels, lengths, cfg.seed, pool_clusters)
    log.info("cut %d -> %d training pairs (%s, %.1f s): pool pairs' mean similarity to the nearest kept one %.3f, "
             "clusters represented %.0f%%%s", len(rows), cap, cfg.strategy, pick_s,
             cover["kept"]["mean_similarity_to_nearest_kept"], 100 * cover["kept"]["clusters_represented"],
             f" (a random cut: {cover['random_cut']['mean_similarity_to_nearest_kept']:.3f}, "
             f"{100 * cover['random_cut']['clusters_represented']:.0f}%)" if "random_cut" in cover else "")
    return [rows[i] for i in sorted(kept)], cover


def distribution(rows: list[dict], cfg: params.SubsampleParams, has_label: bool) -> dict:
    c = Counter(strata(rows, cfg, has_label))
    return {k: round(v / max(1, len(rows)), 4) for k, v in sorted(c.items())}


def run(data: params.DataParams, cfg: params.SubsampleParams, out_dir: Path, fact_columns: list[str] = ()) -> dict:
    kept, dropped, n_read = clean(dataio.read_rows(data.path, data.format, data.sheet), data, cfg, list(fact_columns))
    kept, near = drop_near_duplicates(kept, data, cfg, dropped)
    splits = split(kept, data, cfg, dropped)
    n_dropped = sum(dropped.values())
    if n_read and n_dropped / n_read > cfg.max_drop_fraction:
        reason, count = dropped.most_common(1)[0]
        raise dataio.DataError(
            f"{data.path}: dropped {n_dropped} of {n_read} rows ({100 * n_dropped / n_read:.0f}%), above "
            f"subsample.max_drop_fraction {cfg.max_drop_fraction}; most were '{reason}' ({count}). "
            f"All reasons: {dict(dropped)}. Fix the data or the column names, or raise the limit.")
    has_label = bool(data.label_column)
    full_train = splits["train"]
    train, cover = cut_train(full_train, cfg, has_label)
    splits = {"train": train, **{s: take(splits[s], cfg.max_eval_samples, cfg, has_label) for s in eval_splits(data)}}
    for name in splits:  # all validated before anything is written
        dataio.write_jsonl(out_dir / f"{name}.jsonl", splits[name])
    log.info("read %d rows from %s; dropped %d (%s); wrote %s", n_read, data.path, n_dropped,
             dict(dropped) or "none", {k: len(v) for k, v in splits.items()})
    return {
        "rows_read": n_read,
        "rows_kept": len(kept) - dropped["cross_split_duplicate"],
        "dropped": {r: dropped.get(r, 0) for r in REASONS},
        "near_duplicates": near,
        "dropped_fraction": round(n_dropped / max(1, n_read), 4),
        "splits": {k: len(v) for k, v in splits.items()},
        "strategy": cfg.strategy, "stratified_by": "label" if has_label else "length",
        "train_distribution_before": distribution(full_train, cfg, has_label),
        "train_distribution_after": _after(full_train, splits["train"], cfg, has_label),
        # what the training cut keeps of the pool, beside a random cut of the same size
        "coverage": cover,
        # how new each evaluation split is: the share of its rows whose value of each fact column
        # (the demo's cause) or whose whole summary occurs in the training split
        "seen_in_training": seen_in_training(splits),
        "source_chars": dataio.percentiles([len(r["text"]) for r in splits["train"]]),
        "summary_chars": dataio.percentiles([len(r["summary"]) for r in splits["train"]]),
    }


def seen_in_training(splits: dict[str, list[dict]]) -> dict:
    train = splits["train"]
    cols = sorted({c for r in train for c in r.get("facts", {})})
    known = {c: {r["facts"][c] for r in train} for c in cols}
    summaries = {r["summary"] for r in train}
    out = {}
    for name, rows in splits.items():
        if name == "train" or not rows:
            continue
        out[name] = {"summary": round(sum(r["summary"] in summaries for r in rows) / len(rows), 4),
                     **{c: round(sum(r["facts"][c] in known[c] for r in rows) / len(rows), 4) for c in cols}}
    return out


def _after(full: list[dict], sub: list[dict], cfg, has_label: bool) -> dict:
    # Label the subset with the full split's strata (the same length edges), then count.
    ids = {id(r): s for r, s in zip(full, strata(full, cfg, has_label))}
    c = Counter(ids[id(r)] for r in sub)
    return {k: round(v / max(1, len(sub)), 4) for k, v in sorted(c.items())}


def main() -> int:
    setup_logging()
    t0 = time.perf_counter()
    try:
        data, cfg, ev = params.load("data", "subsample", "evaluate")
        log.info("params: %s %s evaluate.fact_columns=%s", data.model_dump(), cfg.model_dump(), ev.fact_columns)
        # evaluate.fact_columns is read here (dvc.yaml lists that one key) so that a misspelt
        # column fails in seconds, not after training
        stats = run(data, cfg, Path("data/splits"), ev.fact_columns)
    except (params.ParamsError, dataio.DataError) as e:
        log.error("%s", e)
        return 1
    stats["seconds"] = round(time.perf_counter() - t0, 2)
    dataio.write_metrics("metrics/subsample.json", stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
