"""Decode one trained model several ways: copy bias and transformers' encoder_repetition_penalty.

    python bench/copy_bias.py                         # model/, the grid below, params.yaml's evaluate
    python bench/copy_bias.py --bias 0 1 2 3 --penalty 1.0 1.2

For each setting: validation, test and every extra test split (ROUGE-L, cause exact / half its
characters, emotion; the fact rules of the evaluate stage) and the hand-written texts
(emosum.handwritten). The same model decoded several ways, so the differences are the decoding's
alone; choose on validation, and read test, held-out and hand-written as the check. Run it alone:
it times generation too.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    from emosum import dataio, demo_data, facts, guide, handwritten, hf, params, selection
    from emosum.generation import generate
    from emosum.summarize import generation_settings
    from stages import evaluate

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="model")
    ap.add_argument("--bias", type=float, nargs="+", default=[0.0, 1.0, 2.0, 3.0, 5.0])
    ap.add_argument("--penalty", type=float, nargs="+", default=[1.0])
    ap.add_argument("--beams", type=int, nargs="+", default=None, help="num_beams values (default: params.yaml's)")
    ap.add_argument("--length-penalty", type=float, nargs="+", default=None,
                    help="length_penalty values (default: params.yaml's)")
    ap.add_argument("--splits", nargs="+", default=None, help="default: validation, test and the extra ones")
    ap.add_argument("--no-handwritten", action="store_true",
                    help="skip the demo's hand-written texts (data other than the demo)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    hf.offline_env(False)
    base, prefix = generation_settings("params.yaml")
    tok = AutoTokenizer.from_pretrained(args.model)
    model = hf.load_pretrained(args.model)
    ds = load_from_disk("data/tokenized")
    splits = args.splits or ["validation"] + evaluate.eval_splits(Path("data/tokenized"))
    train_rows = dataio.read_jsonl("data/splits/train.jsonl")
    constant = facts.best_constant([r["summary"] for r in train_rows])
    hw_rows = dataio.read_jsonl(handwritten.DEFAULT_FILE)
    hw_ids = selection.encode(tok, [r["text"] for r in hw_rows], tok.model_max_length, prefix,
                              selection.load(Path(args.model)), guide.load(Path(args.model)))
    results = []
    grid = [(b, lp, pen, bias) for b in (args.beams or [base.num_beams])
            for lp in (args.length_penalty or [base.length_penalty]) for pen in args.penalty for bias in args.bias]
    for beams, length_penalty, penalty, bias in grid:
        if True:
            cfg = base.model_copy(update={"copy_bias": bias, "encoder_repetition_penalty": penalty,
                                          "num_beams": beams, "length_penalty": length_penalty})
            row = {"copy_bias": bias, "encoder_repetition_penalty": penalty, "num_beams": beams,
                   "length_penalty": length_penalty}
            for split in splits:
                rows = dataio.read_jsonl(f"data/splits/{split}.jsonl")
                t0 = time.perf_counter()
                m, _, _ = evaluate.run_split(cfg, model, tok, ds[split]["input_ids"], rows, train_rows, constant, split)
                f = m.get("fact_recall", {})
                row[split] = {"rougeL": m["rougeL"], "cause": f.get("cause"), "cause_half": f.get("cause_half"),
                              "emotion": f.get("emotion"), "s": round(time.perf_counter() - t0, 1)}
            hw = ""
            if not args.no_handwritten:
                preds = generate(model, tok, hw_ids, cfg, progress=False)
                row["handwritten"] = h = handwritten.score(preds, hw_rows, set(demo_data.EMOTIONS))
                hw = f"  handwritten {h['cause']:.1%}/{h['cause_half']:.1%}/{h['emotion']:.1%}"
            results.append(row)
            cells = "  ".join(f"{s} {v['rougeL']:.2f}" + ("" if v["cause"] is None else
                              f" {v['cause']:.1%}/{v['cause_half']:.1%}/{v['emotion']:.1%}")
                              for s, v in row.items() if isinstance(v, dict) and "rougeL" in v)
            print(f"beams {beams} length_penalty {length_penalty:g} bias {bias:g} penalty {penalty:g}: {cells}{hw}",
                  flush=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
