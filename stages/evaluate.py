"""Stage 4: summarise the test split with model/ and score it with Chinese ROUGE.

    python -m stages.evaluate             # what `dvc repro evaluate` runs

Reads params `evaluate`; model/, data/tokenized/test (inputs already prefixed and truncated as
the model was trained) and data/splits/test.jsonl (references). Generates in length-sorted
batches (little padding) with explicit num_beams and max_new_tokens (never the 20-token default).
Writes metrics/eval.json (character-level ROUGE-1/2/L, jieba word-level ROUGE, the lead-k floor,
generation lengths) and metrics/predictions.jsonl.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from emosum import dataio, hf, params, rouge
from emosum.logs import setup_logging

log = logging.getLogger("emosum.evaluate")


def generate(model, tok, input_ids: list[list[int]], cfg: params.EvaluateParams, desc="generate") -> list[str]:
    """Batched generation over length-sorted inputs; returns texts in the input order."""
    import torch
    from tqdm.auto import tqdm

    order = sorted(range(len(input_ids)), key=lambda i: -len(input_ids[i]))
    out: list[str] = [""] * len(input_ids)
    device = next(model.parameters()).device
    use_bf16 = hf.bf16_available()
    model.eval()
    with tqdm(total=len(order), desc=desc, unit="ex") as bar:
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            batch = tok.pad({"input_ids": [input_ids[i] for i in idx]}, return_tensors="pt").to(device)
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                gen = model.generate(**batch, num_beams=cfg.num_beams, max_new_tokens=cfg.max_new_tokens,
                                     length_penalty=cfg.length_penalty,
                                     no_repeat_ngram_size=cfg.no_repeat_ngram_size)
            for i, text in zip(idx, tok.batch_decode(gen, skip_special_tokens=True)):
                out[i] = text.strip()
            bar.update(len(idx))
    return out


def score(sources: list[str], preds: list[str], refs: list[str]) -> tuple[dict, list[dict]]:
    char = rouge.rouge(preds, refs, "char", per_example=True)
    word = rouge.rouge(preds, refs, "jieba")
    k, lead = rouge.lead_k(sources, refs)
    floor = rouge.rouge(lead, refs, "char")
    pct = lambda x: round(100 * x, 2)  # noqa: E731  ROUGE is reported x100, as papers do
    metrics = {
        "rouge1": pct(char["rouge1"]), "rouge2": pct(char["rouge2"]), "rougeL": pct(char["rougeL"]),
        "word_rouge1": pct(word["rouge1"]), "word_rouge2": pct(word["rouge2"]), "word_rougeL": pct(word["rougeL"]),
        "lead_k": k, "lead_rouge1": pct(floor["rouge1"]), "lead_rouge2": pct(floor["rouge2"]),
        "lead_rougeL": pct(floor["rougeL"]),
        "rougeL_minus_lead": pct(char["rougeL"] - floor["rougeL"]),
        "gen_chars_mean": round(sum(map(len, preds)) / max(1, len(preds)), 2),
        "ref_chars_mean": round(sum(map(len, refs)) / max(1, len(refs)), 2),
        "empty_predictions": sum(not p for p in preds),
        "examples": len(preds),
    }
    return metrics, char["per_example"]


def run(cfg: params.EvaluateParams, model_dir: Path, tokenized: Path, test_file: Path) -> tuple[dict, list]:
    import torch
    from datasets import load_from_disk
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForSeq2SeqLM.from_pretrained(str(model_dir))
    if torch.cuda.is_available():
        model = model.cuda()
    ids = load_from_disk(str(tokenized))["test"]["input_ids"]
    rows = [json.loads(line) for line in open(test_file, encoding="utf-8")]
    if len(rows) != len(ids):
        raise ValueError(f"{test_file} has {len(rows)} rows but {tokenized}/test has {len(ids)}: "
                         "rerun the tokenize stage (dvc repro)")
    t0 = time.perf_counter()
    preds = generate(model, tok, ids, cfg)
    gen_s = time.perf_counter() - t0
    metrics, per_ex = score([r["text"] for r in rows], preds, [r["summary"] for r in rows])
    metrics.update(generation_s=round(gen_s, 2), examples_per_s=round(len(preds) / gen_s, 2))
    log.info("%d test examples in %.1fs: ROUGE-1/2/L %.2f/%.2f/%.2f (words: L %.2f); lead-%d floor L %.2f",
             len(preds), gen_s, metrics["rouge1"], metrics["rouge2"], metrics["rougeL"],
             metrics["word_rougeL"], metrics["lead_k"], metrics["lead_rougeL"])
    predictions = [{"text": r["text"], "reference": r["summary"], "prediction": p,
                    "rougeL": round(100 * s["rougeL"], 2)} for r, p, s in zip(rows, preds, per_ex)]
    return metrics, predictions


def main() -> int:
    setup_logging()
    try:
        (cfg,) = params.load("evaluate")
        hf.offline_env(False)  # everything evaluate reads is local
        log.info("params: %s", cfg.model_dump())
        metrics, predictions = run(cfg, Path("model"), Path("data/tokenized"), Path("data/splits/test.jsonl"))
    except (params.ParamsError, ValueError) as e:
        log.error("%s", e)
        return 1
    dataio.write_jsonl("metrics/predictions.jsonl", predictions)
    dataio.write_json("metrics/eval.json", metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
