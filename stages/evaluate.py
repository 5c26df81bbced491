"""Stage 4: summarise the test split with model/ and score it with Chinese ROUGE.

    python -m stages.evaluate             # what `dvc repro evaluate` runs

Reads params `evaluate`; model/, data/tokenized/test (inputs already prefixed and truncated as
the model was trained) and data/splits/test.jsonl (references), and the same for each extra test
split (data.extra_test_splits: the demo's `heldout`), scored on its own under its name. Generates in length-sorted
batches (little padding) with explicit num_beams and max_new_tokens (never the 20-token default).
Writes metrics/eval.json (character-level ROUGE-1/2/L, jieba word-level ROUGE, the lead-k and
constant-summary floors, fact recall of the model and of both floors, generation lengths),
metrics/facts.json (fact recall per value, the most frequent confusions) and
metrics/predictions.jsonl. data/splits/train.jsonl supplies the constant summary and the values
each fact column can take.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from emosum import dataio, facts, guide as guiding, hf, machine, params, punctuation, rouge
from emosum.generation import generate, max_new_tokens
from emosum.logs import setup_logging

log = logging.getLogger("emosum.evaluate")


def score(sources: list[str], preds: list[str], refs: list[str], constant: str = "") -> tuple[dict, list[dict]]:
    char = rouge.rouge(preds, refs, "char", per_example=True)
    word = rouge.rouge(preds, refs, "jieba")
    k, lead = rouge.lead_k(sources, refs)
    floor = rouge.rouge(lead, refs, "char")
    const = rouge.rouge([constant] * len(refs), refs, "char")
    n_pred, n_ref = len(set(preds)), len(set(refs))
    pct = lambda x: round(100 * x, 2)  # noqa: E731  ROUGE is reported x100, as papers do
    metrics = {
        "rouge1": pct(char["rouge1"]), "rouge2": pct(char["rouge2"]), "rougeL": pct(char["rougeL"]),
        "word_rouge1": pct(word["rouge1"]), "word_rouge2": pct(word["rouge2"]), "word_rougeL": pct(word["rougeL"]),
        "lead_k": k, "lead_rouge1": pct(floor["rouge1"]), "lead_rouge2": pct(floor["rouge2"]),
        "lead_rougeL": pct(floor["rougeL"]),
        "rougeL_minus_lead": pct(char["rougeL"] - floor["rougeL"]),
        # the best single summary written for every input (chosen on the training split)
        "constant_summary": constant, "constant_rouge1": pct(const["rouge1"]),
        "constant_rouge2": pct(const["rouge2"]), "constant_rougeL": pct(const["rougeL"]),
        "rougeL_minus_constant": pct(char["rougeL"] - const["rougeL"]),
        "gen_chars_mean": round(sum(map(len, preds)) / max(1, len(preds)), 2),
        "ref_chars_mean": round(sum(map(len, refs)) / max(1, len(refs)), 2),
        "empty_predictions": sum(not p for p in preds),
        # a model that writes the same few summaries for everything can still score ROUGE on
        # templated references (the demo's did: 9 distinct predictions for 300 inputs)
        "distinct_predictions_share": round(n_pred / max(1, len(preds)), 3),
        "distinct_references_share": round(n_ref / max(1, len(refs)), 3),
        "examples": len(preds),
    }
    if metrics["distinct_predictions_share"] < 0.5 * metrics["distinct_references_share"]:
        log.warning("only %d distinct predictions for %d examples (references: %d distinct): the model writes "
                    "the same few summaries whatever the input; ROUGE against templated references overstates it",
                    n_pred, len(preds), n_ref)
    if metrics["rougeL_minus_lead"] <= 0 or metrics["rougeL_minus_constant"] <= 0:
        log.warning("ROUGE-L %.2f does not beat both floors (lead-%d %.2f, constant summary %.2f): the model is "
                    "no better than copying the input's start or writing %r for everything",
                    metrics["rougeL"], k, metrics["lead_rougeL"], metrics["constant_rougeL"], constant)
    return metrics, char["per_example"]


def fact_metrics(cfg: params.EvaluateParams, preds: list[str], sources: list[str], constant: str,
                 rows: list[dict], train_rows: list[dict], guides: list[str] | None = None) -> tuple[dict, dict]:
    """Fact recall of the model and of both floors (the floors show what chance gives), and of the
    guide alone where the model reads one."""
    cols = cfg.fact_columns
    if not cols:  # data without them (CSL, VCSum): ROUGE and its floors only
        log.info("fact recall: not measured (evaluate.fact_columns is empty)")
        return {}, {}
    missing = [c for c in cols if any(c not in r.get("facts", {}) for r in rows)]
    if missing:
        raise ValueError(f"evaluate.fact_columns {missing} are not in data/splits/test.jsonl: the subsample "
                         "stage carries them; rerun it (dvc repro)")
    known = {c: {r["facts"][c] for r in train_rows + rows if r.get("facts", {}).get(c)} for c in cols}
    facts_ = [r["facts"] for r in rows]
    model, details = facts.recall(preds, facts_, cols, known, cfg.max_label_values)
    _, lead = rouge.lead_k(sources, [r["summary"] for r in rows])
    out = {"fact_recall": model,
           "lead_fact_recall": facts.recall(lead, facts_, cols, known, cfg.max_label_values)[0],
           "constant_fact_recall": facts.recall([constant] * len(rows), facts_, cols, known,
                                                cfg.max_label_values)[0]}
    if guides is not None:
        out["guide_fact_recall"] = facts.recall(guides, facts_, cols, known, cfg.max_label_values)[0]
    for col in cols:
        log.info("fact recall %s: %s (lead floor %s, constant summary %s); most frequent confusions: %s", col,
                 model[col], out["lead_fact_recall"][col], out["constant_fact_recall"][col],
                 (details[col]["top_confusions"] or [])[:3])
    return out, details


def _cell(text: str, limit: int) -> str:
    text = text.replace("\n", " / ").replace("|", "\\|")
    return text if len(text) <= limit else text[:limit] + "…"


def predictions_table(predictions: list[dict], n: int) -> str:
    """Markdown: the best, the worst and evenly spaced examples between, by per-example ROUGE-L."""
    ranked = sorted(range(len(predictions)), key=lambda i: (-predictions[i]["rougeL"], i))
    k = min(n, len(ranked))
    ends = max(1, k // 3)
    middle = ranked[ends:len(ranked) - ends]
    picks = ranked[:ends] + [middle[int(j * len(middle) / max(1, k - 2 * ends))]
                             for j in range(max(0, k - 2 * ends)) if middle] + ranked[len(ranked) - ends:]
    lines = ["| # | ROUGE-L | input (head) | reference | prediction |", "|---|---|---|---|---|"]
    for rank, i in enumerate(dict.fromkeys(picks)):
        p = predictions[i]
        lines.append(f"| {i} | {p['rougeL']:.1f} | {_cell(p['text'], 60)} | {_cell(p['reference'], 80)} | "
                     f"{_cell(p['prediction'], 80)} |")
    return "\n".join(lines) + "\n"


# what an extra test split reports (the test split reports everything, at the top level)
SPLIT_KEYS = ("rouge1", "rouge2", "rougeL", "word_rougeL", "lead_k", "lead_rougeL", "constant_rougeL",
              "rougeL_minus_lead", "rougeL_minus_constant", "distinct_predictions_share", "examples",
              "fact_recall", "lead_fact_recall", "constant_fact_recall", "guide_rougeL", "guide_fact_recall",
              "label_hint_accuracy")


def eval_splits(tokenized: Path) -> list[str]:
    """test first, then every extra test split the tokenize stage wrote (data.extra_test_splits)."""
    from datasets import load_from_disk

    names = [s for s in load_from_disk(str(tokenized)) if s not in ("train", "validation")]
    return sorted(names, key=lambda s: (s != "test", s))


def run_split(cfg: params.EvaluateParams, model, tok, ids: list, rows: list[dict], train_rows: list[dict],
              constant: str, split: str, guide=None, restored: dict | None = None) -> tuple[dict, list, dict]:
    if len(rows) != len(ids):
        raise ValueError(f"data/splits/{split}.jsonl has {len(rows)} rows but data/tokenized/{split} has "
                         f"{len(ids)}: rerun the tokenize stage (dvc repro)")
    t0 = time.perf_counter()
    preds = [punctuation.restore(p, restored) for p in generate(model, tok, ids, cfg)]
    gen_s = time.perf_counter() - t0
    sources = [r["text"] for r in rows]
    metrics, per_ex = score(sources, preds, [r["summary"] for r in rows], constant)
    guides = None
    if guide is not None:  # a third floor: the clauses the guide writes before the input, as the summary
        guides = guide.guides(sources)
        metrics["guide_rougeL"] = round(100 * rouge.rouge(guides, [r["summary"] for r in rows], "char")["rougeL"], 2)
        log.info("%s: the guide alone (tokenize.guide) scores ROUGE-L %.2f", split, metrics["guide_rougeL"])
        hint = guide.hint
        if hint is not None and all(hint.label in r.get("facts", {}) for r in rows):
            # a fourth floor: the label hint alone (tokenize.guide_label), the classifier without the model
            said = [guide.hint_of(g) for g in guides]
            metrics["label_hint_accuracy"] = round(
                sum(h == str(r["facts"][hint.label]) for h, r in zip(said, rows)) / max(1, len(rows)), 4)
            log.info("%s: the label hint alone names the %s right in %.1f%%", split, hint.label,
                     100 * metrics["label_hint_accuracy"])
    fact_scores, details = fact_metrics(cfg, preds, sources, constant, rows, train_rows, guides)
    metrics.update(fact_scores)
    metrics.update(generation_s=round(gen_s, 2), examples_per_s=round(len(preds) / gen_s, 2))
    log.info("%s: %d examples in %.1fs: ROUGE-1/2/L %.2f/%.2f/%.2f (words: L %.2f); floors L: lead-%d %.2f, "
             "constant %.2f (%r)", split, len(preds), gen_s, metrics["rouge1"], metrics["rouge2"], metrics["rougeL"],
             metrics["word_rougeL"], metrics["lead_k"], metrics["lead_rougeL"], metrics["constant_rougeL"], constant)
    predictions = [{"split": split, "text": r["text"], "reference": r["summary"], "prediction": p,
                    "rougeL": round(100 * s["rougeL"], 2), **({"facts": r["facts"]} if "facts" in r else {})}
                   for r, p, s in zip(rows, preds, per_ex)]
    return metrics, predictions, details


def run(cfg: params.EvaluateParams, model_dir: Path, tokenized: Path, splits_dir: Path) -> tuple[dict, list, dict]:
    """Score the test split (its figures at the top level of the metrics) and each extra test split
    (under its name: `heldout.rougeL`, `heldout.fact_recall.cause`, ...)."""
    import torch
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = hf.load_pretrained(str(model_dir))  # a copy-head model loads as one
    if torch.cuda.is_available():
        model = model.cuda()
    ds = load_from_disk(str(tokenized))
    train_rows = dataio.read_jsonl(splits_dir / "train.jsonl")
    constant = facts.best_constant([r["summary"] for r in train_rows])
    guide = guiding.load(model_dir)
    restored = punctuation.load(model_dir)  # the full-width marks the tokenizer folds (emosum/punctuation.py)
    metrics, predictions, details = {}, [], {}
    for split in eval_splits(tokenized):
        rows = dataio.read_jsonl(splits_dir / f"{split}.jsonl")
        m, p, d = run_split(cfg, model, tok, ds[split]["input_ids"], rows, train_rows, constant, split, guide,
                            restored)
        predictions += p
        details[split] = d
        if split == "test":
            metrics.update(m)
        else:
            metrics[split] = {k: m[k] for k in SPLIT_KEYS if k in m}
    metrics["max_new_tokens"] = max_new_tokens(model, cfg)
    return metrics, predictions, details


def main() -> int:
    setup_logging()
    try:
        (cfg,) = params.load("evaluate")
        hf.offline_env(False)  # everything evaluate reads is local
        log.info("params: %s", cfg.model_dump())
        with machine.Share("evaluation"):
            machine.before_start("evaluation")
            metrics, predictions, details = run(cfg, Path("model"), Path("data/tokenized"), Path("data/splits"))
    except (params.ParamsError, ValueError) as e:
        log.error("%s", e)
        return 1
    dataio.write_jsonl("metrics/predictions.jsonl", predictions)
    dataio.write_json("metrics/facts.json", details)  # per split: per-value recall, confusions (not a metric)
    with dataio.atomic_path("metrics/predictions.md") as tmp:
        parts = []
        for split in dict.fromkeys(p["split"] for p in predictions):
            rows = [p for p in predictions if p["split"] == split]
            parts.append(f"# {split.capitalize()} predictions: best, worst and between ({len(rows)} in all)\n\n"
                         + predictions_table(rows, cfg.table_examples))
        tmp.write_text("\n".join(parts), encoding="utf-8")
    # one point per run for the quality-vs-cost plot that `dvc plots diff` draws across experiments
    train = json.loads(Path("metrics/train.json").read_text(encoding="utf-8"))
    dataio.write_json("metrics/quality_cost.json", [{"train_wall_s": train["wall_s"], "rougeL": metrics["rougeL"]}])
    dataio.write_metrics("metrics/eval.json", metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
