"""Stage 2: get a tokenizer and tokenize the splits.

    python -m stages.tokenize             # what `dvc repro tokenize` runs

With model.name 'scratch' a SentencePiece unigram tokenizer is trained on the training split only
(so no test text leaks into the vocabulary); otherwise the checkpoint's own tokenizer is used.
Inputs longer than tokenize.max_source_length are cut to it by `tokenize.select`: the lead (the
first tokens), or sentences chosen by a scorer fitted on the training split (emosum/selection.py;
`auto`: only where that raises the validation coverage over lead); the same fitted scorer selects
the training, validation and test inputs and is saved with the tokenizer (data/tokenizer/
selector.json), so the model and `summarize` see the same kind of input. With tokenize.guide:
clauses, a clause scorer fitted on the training pairs (emosum/guide.py) writes before every input
the clauses its summary most likely copies, and is saved beside it (guide.json); with
tokenize.guide_label, a classifier fitted on the training guides writes the label after them (the
training split's out of fold; its accuracy per split in metrics/tokenize.json). Summaries are truncated
to max_target_length. Stores unpadded ids: padding (labels with -100) happens per batch at
collation time, so no step pays for max-length padding. Writes data/tokenizer/, data/tokenized/
and metrics/tokenize.json (token lengths, the share truncated, and the coverage of the reference
summaries by the kept input beside the lead, the learned selection, the oracle and the whole input).
"""
from __future__ import annotations

import io
import hashlib
import json
import logging
import math
import shutil
import sys
import time
from pathlib import Path

from emosum import dataio, guide as guiding, hf, params, prune, punctuation, selection
from emosum.logs import setup_logging

log = logging.getLogger("emosum.tokenize")
SPLITS = ("train", "validation", "test")  # then any extra test split subsample wrote (data.extra_test_splits)


def split_names(splits_dir: Path) -> list[str]:
    extra = sorted(p.stem for p in splits_dir.glob("*.jsonl") if p.stem not in SPLITS)
    return [*SPLITS, *extra]


def unknown_tokens(tok, enc_ids: list[list[int]]) -> dict:
    """<unk> and byte-fallback tokens among the ids: what the vocabulary could not hold."""
    total = sum(map(len, enc_ids)) or 1
    unk = sum(i == tok.unk_token_id for ids in enc_ids for i in ids)
    byte_ids = {i for t, i in tok.get_vocab().items() if len(t) == 6 and t.startswith("<0x") and t.endswith(">")}
    nbytes = sum(i in byte_ids for ids in enc_ids for i in ids)
    return {"unk_tokens": unk, "unk_share": round(unk / total, 5), "byte_tokens": nbytes,
            "byte_share": round(nbytes / total, 5)}


def train_sentencepiece(texts: list[str], vocab_size: int, out_dir: Path, max_piece_length: int = 16,
                        character_coverage: float = 0.9995, byte_fallback: bool = True):
    """Train a unigram SentencePiece model and wrap it as a fast tokenizer in out_dir.

    max_piece_length 1 gives one piece per character: on templated text SentencePiece's default
    (16) fuses whole phrases into single pieces (`被公司裁员感到委屈` became one token), so every
    cause-emotion pair is its own rare output class and a model from scratch learns the template,
    not the content (README, "The embedded default").

    byte_fallback: a character outside the vocabulary becomes its UTF-8 bytes (256 byte pieces),
    not <unk>, so a name the training split never had can still be read and copied. The characters
    left out by character_coverage (the rarest) are what trains those byte pieces."""
    import sentencepiece as spm

    buf = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_writer=buf, model_type="unigram",
            vocab_size=vocab_size, hard_vocab_limit=False,  # templated data may not fill the vocab
            max_sentencepiece_length=max_piece_length,
            character_coverage=character_coverage, byte_fallback=byte_fallback,
            pad_id=0, eos_id=1, unk_id=2, bos_id=-1,  # T5's ids: pad 0, eos 1, unk 2, no bos
            max_sentence_length=1 << 16, num_threads=1,  # one thread: the same model every run
            minloglevel=2)
    except RuntimeError as e:
        if "smaller than required_chars" in str(e):
            need = str(e).split(" vs ")[-1].split(".")[0]
            raise ValueError(f"params.yaml: tokenize.vocab_size: {vocab_size} is smaller than the {need} "
                             "characters the training split needs; raise tokenize.vocab_size") from None
        raise
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "spiece.model").write_bytes(buf.getvalue())
    return hf.fast_tokenizer(buf.getvalue())


def resolve_max_source_length(tok, texts: list[str], cfg: params.TokenizeParams) -> int:
    """`auto`: the smallest length covering source_length_percentile of the training inputs,
    rounded up to a multiple of 8 (tensor-core and vector widths)."""
    if cfg.max_source_length != "auto":
        return cfg.max_source_length
    lens = sorted(len(ids) for ids in tok(texts, verbose=False)["input_ids"])
    covered = lens[max(0, math.ceil(cfg.source_length_percentile / 100 * len(lens)) - 1)]
    chosen = max(8, -(-covered // 8) * 8)
    log.info("max_source_length auto: %d tokens cover %.0f%% of %d training inputs", chosen,
             cfg.source_length_percentile, len(lens))
    return chosen


def token_stats(tok, texts, limit: int, target: bool = False) -> tuple[dict, float]:
    enc = tok(text_target=texts, verbose=False) if target else tok(texts, verbose=False)
    lens = [len(ids) for ids in enc["input_ids"]]
    return dataio.percentiles(lens), round(sum(n > limit for n in lens) / max(1, len(lens)), 4)


def fingerprint(tok_json: str, rows: list[dict], model: params.ModelParams, cfg: params.TokenizeParams,
                max_src: int, input_ids: list[list[int]]) -> str:
    """A fingerprint of everything the encoded split depends on, for `Dataset.map(new_fingerprint=)`.

    datasets gives a dataset built from Python rows a random fingerprint, which save_to_disk writes
    into state.json: the same tokens then hashed differently on every run, so DVC retrained after
    any tokenize rerun even when nothing it produced had changed (seen: data/tokenized's hash moved
    when only emosum/params.py had). The input ids are hashed as selected.
    """
    h = hashlib.sha256(tok_json.encode())
    h.update(json.dumps([model.source_prefix, max_src, cfg.max_target_length,
                         [(r["text"], r["summary"]) for r in rows], input_ids], ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def log_coverage(stats: dict, max_src: int) -> None:
    sel = stats["selection"]
    log.info("input selection: %s (%s)", sel["used"], sel["why"])
    for split, st in sel["splits"].items():
        c, cl = st["coverage"], st["coverage_long_inputs"]
        log.info("%s: %d of %d inputs longer than %d tokens (%d selected clause by clause: a sentence longer than "
                 "the budget); reference bigram coverage kept %.3f (lead %.3f%s, "
                 "oracle %.3f, whole input %.3f); on the long ones kept %.3f (lead %.3f%s, oracle %.3f, whole %.3f)",
                 split, st["longer_than_budget"], stats["splits"][split]["rows"], max_src, st["inputs_with_clauses"],
                 c["kept"] or 0,
                 c["lead"] or 0, f", learned {c['learned']:.3f}" if c.get("learned") is not None else "",
                 c["oracle"] or 0, c["whole"] or 0, cl["kept"] or 0, cl["lead"] or 0,
                 f", learned {cl['learned']:.3f}" if cl.get("learned") is not None else "", cl["oracle"] or 0,
                 cl["whole"] or 0)


def fit_label_hint(guide, label: str | None, rows: dict[str, list[dict]], guides: dict[str, list[str]],
                   folds: int = guiding.LabelHint.FOLDS) -> dict:
    """Fit tokenize.guide_label's hint on the training split's guides and attach it to `guide`;
    its accuracy on each split (on train, of the hints the rows are given) for metrics/tokenize.json.
    The training rows' hints (out of fold, or in sample with folds 0) ride along under "_train_hints".
    Rows without the fact: no hint, and why."""
    if label is None:
        return {"used": False, "why": "tokenize.guide_label is null"}
    train = rows["train"]
    have = [label in (r.get("facts") or {}) for r in train]
    if not any(have):
        why = (f"the training rows carry no {label!r} fact (evaluate.fact_columns: the columns the splits "
               "carry); no hint")
        log.info("label hint: %s", why)
        return {"used": False, "why": why}
    if not all(have):
        raise guiding.GuideError(f"tokenize.guide_label: {have.count(False)} of {len(train)} training rows have no "
                                 f"{label!r} fact; fill them in the data or set tokenize.guide_label: null")
    t0 = time.perf_counter()
    docs = {s: guiding.hint_docs([r["text"] for r in rs], guides[s]) for s, rs in rows.items()}
    guide.hint, oof = guiding.LabelHint.fit(docs["train"], [str(r["facts"][label]) for r in train], label, folds)
    stats = {"used": True, "label": label, "fit_seconds": round(time.perf_counter() - t0, 2), **guide.hint.fitted,
             "accuracy": {}, "_train_hints": oof}
    for s, rs in rows.items():
        known = [(d, str(r["facts"][label])) for d, r in zip(docs[s], rs) if label in (r.get("facts") or {})]
        preds = oof if s == "train" else guide.hint.predict([d for d, _ in known])
        acc = sum(p == want for p, (_, want) in zip(preds, known)) / len(known) if known else None
        stats["accuracy"][s] = round(acc, 4) if acc is not None else None
        log.info("label hint %s: names the %s of %d inputs right in %s%s", s, label, len(known),
                 f"{100 * acc:.1f}%" if acc is not None else "-",
                 "" if s != "train" else " (out of fold)" if folds else " (in sample)")
    return stats


def run(model: params.ModelParams, cfg: params.TokenizeParams, splits_dir: Path, tok_dir: Path,
        out_dir: Path) -> dict:
    from datasets import Dataset, DatasetDict

    rows = {s: [json.loads(l) for l in open(splits_dir / f"{s}.jsonl", encoding="utf-8")]
            for s in split_names(splits_dir)}
    t0 = time.perf_counter()
    guide, guide_stats, guides = None, {"used": "none"}, None
    if cfg.guide == "clauses":
        guide = guiding.ClauseScorer.fit([r["text"] for r in rows["train"]], [r["summary"] for r in rows["train"]],
                                         cfg.guide_clauses, cfg.guide_min_probability, context=cfg.guide_context)
        fit_s = round(time.perf_counter() - t0, 2)
        picks = {s: guide.picks([r["text"] for r in rs]) for s, rs in rows.items()}  # once: guides and stats share them
        guides = {s: guide.guides([r["text"] for r in rs], picks[s]) for s, rs in rows.items()}
        hint_stats = fit_label_hint(guide, cfg.guide_label, rows, guides, cfg.guide_label_folds)
        if guide.hint is not None:  # the label after the clauses; the training split gets its out-of-fold hints
            guides = {s: guide.guides([r["text"] for r in rs], picks[s],
                                      hints=hint_stats.pop("_train_hints") if s == "train" else None)
                      for s, rs in rows.items()}
        guide_stats = {"used": "clauses", "fit_seconds": fit_s, "fitted": guide.fitted, "label_hint": hint_stats,
                       "splits": {s: guiding.measure(guide, [r["text"] for r in rs], [r["summary"] for r in rs],
                                                     picks[s]) for s, rs in rows.items()}}
        for s, st in guide_stats["splits"].items():
            log.info("guide %s: holds the oracle's clause in %.1f%% of %d inputs, covers %.3f of the reference "
                     "bigrams, %.2f clauses a guide, %d inputs unguided (one clause)", s,
                     100 * st["holds_oracle_clause"], st["rows"], st["coverage"] or 0, st["clauses_per_guide"],
                     st["unguided"])
    guided = {s: [(g + guide.separator if g else "") + r["text"] for g, r in zip(guides[s], rs)] if guide
              else [r["text"] for r in rs] for s, rs in rows.items()}
    t0 = time.perf_counter()
    stats_vocab: dict = {}
    with dataio.atomic_path(tok_dir, is_dir=True) as tmp_tok:
        if hf.is_scratch(model.name):
            tok = train_sentencepiece(guided["train"] +
                                      [r["summary"] for r in rows["train"]], cfg.vocab_size, tmp_tok,
                                      cfg.max_piece_length, cfg.character_coverage, cfg.byte_fallback)
            log.info("trained SentencePiece on %d training pairs: %d pieces (asked %d) in %.1fs",
                     len(rows["train"]), len(tok), cfg.vocab_size, time.perf_counter() - t0)
        else:
            tok = hf.load_tokenizer(model.name)
            log.info("tokenizer from %s: %d pieces", model.name, len(tok))
            stats_vocab["original_vocab_size"] = len(tok)
            if cfg.prune_vocab:
                # train + validation texts: validation loss must not meet ids the model lost
                texts = [model.source_prefix + t for s in ("train", "validation") for t in guided[s]]
                texts += [r["summary"] for s in ("train", "validation") for r in rows[s]]
                tok, _ = prune.prune_tokenizer(tok, texts, tmp_tok, cfg.min_vocab)
        max_src = resolve_max_source_length(tok, [model.source_prefix + t for t in guided["train"]], cfg)
        tok.model_max_length = max_src  # summarize truncates new inputs the same way
        scorer, input_ids, sel = selection.plan(cfg.select, tok, rows, max_src, model.source_prefix,
                                                cfg.select_min_gain, guides=guides,
                                                separator=guide.separator if guide else "",
                                                hinted=guide is not None and guide.hint is not None)
        tok.save_pretrained(str(tmp_tok))
        if scorer is not None:
            selection.save(scorer, tmp_tok)  # travels with the tokenizer into model/
        if guide is not None:
            guiding.save(guide, tmp_tok)  # so does the guide
        # the full-width marks the tokenizer folds into ASCII and the summaries write (emosum/punctuation.py)
        restored = punctuation.fit([r["summary"] for r in rows["train"]], punctuation.normalizer_of(tok))
        if restored:
            punctuation.save(restored, tmp_tok)  # and this table: evaluate and summarize apply it
            log.info("the tokenizer folds %s into ASCII; the training summaries write them full-width: "
                     "generated summaries get them back next to CJK characters", "".join(restored.values()))
    stats = {"vocab_size": len(tok), **stats_vocab, "max_source_length": max_src, "splits": {},
             "punctuation_restored": restored}

    dd = DatasetDict()
    tok_json = tok.backend_tokenizer.to_str()  # serialised once (megabytes for a full mT5 vocabulary)
    for split in rows:
        texts = [model.source_prefix + t for t in guided[split]]
        src, src_trunc = token_stats(tok, texts, max_src)
        unk = unknown_tokens(tok, tok(texts + [r["summary"] for r in rows[split]], verbose=False)["input_ids"])
        tgt, tgt_trunc = token_stats(tok, [r["summary"] for r in rows[split]], cfg.max_target_length,
                                     target=True)
        stats["splits"][split] = {"rows": len(rows[split]), "source_tokens": src, "summary_tokens": tgt,
                                  "source_truncated_share": src_trunc,
                                  "summary_truncated_share": tgt_trunc, **unk}
        ids = input_ids[split]

        def encode(batch, idx):
            enc = {"input_ids": [ids[i] for i in idx], "attention_mask": [[1] * len(ids[i]) for i in idx]}
            enc["labels"] = tok(text_target=batch["summary"], max_length=cfg.max_target_length,
                                truncation=True)["input_ids"]
            enc["length"] = [len(x) for x in enc["input_ids"]]  # for length-grouped batches
            return enc

        ds = Dataset.from_list(rows[split])
        dd[split] = ds.map(encode, batched=True, batch_size=1000, with_indices=True, remove_columns=ds.column_names,
                           desc=f"tokenize {split}",
                           new_fingerprint=fingerprint(tok_json, rows[split], model, cfg, max_src, ids))
    stats["selection"] = sel
    stats["guide"] = guide_stats
    with dataio.atomic_path(out_dir, is_dir=True) as tmp:
        dd.save_to_disk(str(tmp))
    tr = stats["splits"]["train"]
    log.info("train: source tokens %s (%.1f%% truncated at %d), summary tokens %s (%.1f%% truncated at %d)",
             tr["source_tokens"], 100 * tr["source_truncated_share"], max_src,
             tr["summary_tokens"], 100 * tr["summary_truncated_share"], cfg.max_target_length)
    log_coverage(stats, max_src)
    for split, st in stats["splits"].items():
        log.info("%s: %d <unk> tokens (%.3f%%), %d byte-fallback tokens (%.2f%%) in inputs and summaries", split,
                 st["unk_tokens"], 100 * st["unk_share"], st["byte_tokens"], 100 * st["byte_share"])
    return stats


def main() -> int:
    setup_logging()
    t0 = time.perf_counter()
    try:
        model, cfg, hub = params.load("model", "tokenize", "hub")
        hf.offline_env(hub.online)
        log.info("params: model.name=%s source_prefix=%r %s", model.name, model.source_prefix, cfg.model_dump())
        stats = run(model, cfg, Path("data/splits"), Path("data/tokenizer"), Path("data/tokenized"))
    except (params.ParamsError, dataio.DataError, hf.CheckpointError, ValueError) as e:
        log.error("%s", e)
        return 1
    stats["seconds"] = round(time.perf_counter() - t0, 2)
    dataio.write_metrics("metrics/tokenize.json", stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
