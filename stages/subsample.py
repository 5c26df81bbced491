"""Stage 1: read the pair file, drop unusable rows (counted by reason), split, subsample.

    python -m stages.subsample            # what `dvc repro subsample` runs

Reads params `data` and `subsample`. Writes data/splits/{train,validation,test}.jsonl and
metrics/subsample.json. The test and validation splits do not depend on `max_samples`, so a fast
run and a full run are scored on the same test set.
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


def clean(rows, data: params.DataParams, cfg: params.SubsampleParams, source: str):
    """Keep usable (text, summary) pairs; count the rest by reason. Returns (kept, dropped)."""
    kept, dropped, seen = [], Counter(), set()
    for lineno, obj in rows:
        for col in (data.text_column, data.summary_column):
            if col not in obj:
                raise dataio.DataError(
                    f"{source}:{lineno}: no column '{col}' (columns: {', '.join(obj)}); "
                    "set data.text_column / data.summary_column in params.yaml")
            if obj[col] is not None and not isinstance(obj[col], str):
                raise dataio.DataError(f"{source}:{lineno}: column '{col}' must be text, "
                                       f"got {type(obj[col]).__name__}")
        text = (obj[data.text_column] or "").strip()
        summary = (obj[data.summary_column] or "").strip()
        if not text or not summary:
            dropped["empty"] += 1
        elif len(text) < cfg.min_source_chars:
            dropped["source_too_short"] += 1
        elif len(summary) < cfg.min_summary_chars:
            dropped["summary_too_short"] += 1
        elif (text, summary) in seen:
            dropped["exact_duplicate"] += 1
        else:
            seen.add((text, summary))
            kept.append({"text": text, "summary": summary})
    return kept, dropped


def split(pairs, cfg: params.SubsampleParams):
    """Split by unique input so the same text never lands in two splits, then cap each split."""
    groups = defaultdict(list)
    for p in pairs:
        groups[p["text"]].append(p)
    keys = sorted(groups)
    random.Random(cfg.seed).shuffle(keys)
    n_test = max(1, round(len(keys) * cfg.test_fraction))
    n_val = max(1, round(len(keys) * cfg.validation_fraction))
    if len(keys) < n_test + n_val + 1:
        raise dataio.DataError(f"only {len(keys)} distinct inputs after cleaning: too few to split")
    parts = {"test": keys[:n_test], "validation": keys[n_test:n_test + n_val],
             "train": keys[n_test + n_val:]}
    out = {}
    for name, ks in parts.items():
        rows = [r for k in ks for r in groups[k]]
        cap = cfg.max_samples if name == "train" else cfg.max_eval_samples
        out[name] = rows[:cap] if cap else rows  # keys are already shuffled: a prefix is random
    return out


def run(data: params.DataParams, cfg: params.SubsampleParams, out_dir: Path) -> dict:
    source = data.path
    n_read = 0

    def counted(rows):
        nonlocal n_read
        for r in rows:
            n_read += 1
            yield r

    kept, dropped = clean(counted(dataio.read_jsonl(source)), data, cfg, source)
    splits = split(kept, cfg)
    for name in SPLITS:
        dataio.write_jsonl(out_dir / f"{name}.jsonl", splits[name])
    log.info("read %d rows from %s; dropped %d (%s); wrote %s", n_read, source, sum(dropped.values()),
             dict(dropped) or "none", {k: len(v) for k, v in splits.items()})
    return {
        "rows_read": n_read,
        "rows_kept": len(kept),
        "dropped": {r: dropped.get(r, 0) for r in
                    ("empty", "source_too_short", "summary_too_short", "exact_duplicate")},
        "splits": {k: len(v) for k, v in splits.items()},
        "source_chars": dataio.percentiles([len(r["text"]) for r in splits["train"]]),
        "summary_chars": dataio.percentiles([len(r["summary"]) for r in splits["train"]]),
    }


def main() -> int:
    setup_logging()
    t0 = time.perf_counter()
    try:
        data, cfg = params.load("data", "subsample")
        log.info("params: %s %s", data.model_dump(), cfg.model_dump())
        stats = run(data, cfg, Path("data/splits"))
    except (params.ParamsError, dataio.DataError) as e:
        log.error("%s", e)
        return 1
    stats["seconds"] = round(time.perf_counter() - t0, 2)
    dataio.write_json("metrics/subsample.json", stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
