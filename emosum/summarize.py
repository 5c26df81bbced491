"""summarize: Chinese emotion summaries from a trained emosum model.

    summarize "今天被老板当众批评了，委屈得想哭。"
    summarize --file posts.jsonl --output summaries.jsonl     # JSONL, JSON, CSV, TSV or Parquet
    cat posts.txt | summarize                                  # one text per line on stdin

Loads model/ (or --model DIR), fits long inputs to the model's context as it was trained (the
tokenizer's saved max length; the sentence selection saved with the model, `selector.json`, else
the first tokens; the guide clauses before the text where the model has `guide.json`; the source
prefix from params.yaml when present), generates in length-sorted batches
with the evaluate section's generation params unless overridden, and keeps the input order.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def summarize(texts: list[str], model_dir: str = "model", gen=None, prefix: str = "", progress: bool = False):
    from emosum import guide, hf, punctuation, selection
    from emosum.generation import generate

    hf.offline_env(False)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = hf.load_pretrained(model_dir)
    # the tokenize stage's own path: the same ids for the same text, selected or truncated
    ids = selection.encode(tok, texts, tok.model_max_length, prefix, selection.load(Path(model_dir)),
                           guide.load(Path(model_dir)))
    restored = punctuation.load(Path(model_dir))  # full-width marks the tokenizer folded (emosum/punctuation.py)
    return [punctuation.restore(s, restored) for s in generate(model, tok, ids, gen, desc="summarize", progress=progress)]


def _read_params(path: str) -> dict:
    import yaml

    return (yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}) if Path(path).exists() else {}


def generation_settings(params_file: str, **overrides):
    """What `evaluate` generates with, from one read of params_file: its evaluate section (the
    overrides that are not None over it) and model.source_prefix."""
    from emosum import params

    doc = _read_params(params_file)
    raw = dict(doc.get("evaluate") or {})
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return params.parse_section("evaluate", raw, params_file), (doc.get("model") or {}).get("source_prefix", "")


def main(argv=None) -> int:
    from emosum import dataio, guide, params, selection

    ap = argparse.ArgumentParser(prog="summarize", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("text", nargs="*", help="texts to summarise (none: read --file or stdin)")
    ap.add_argument("--file", help="a file of rows; --text-column names the input column")
    ap.add_argument("--text-column", default="text")
    ap.add_argument("--output", help="write JSONL rows {text, summary} here (default: stdout)")
    ap.add_argument("--model", default="model", help="a trained model folder (default: model)")
    ap.add_argument("--params", default="params.yaml", help="generation defaults from its evaluate section")
    ap.add_argument("--num-beams", dest="num_beams", type=int)
    ap.add_argument("--max-new-tokens", dest="max_new_tokens", type=int)
    ap.add_argument("--batch-size", dest="batch_size", type=int)
    ap.add_argument("--copy-bias", dest="copy_bias", type=float,
                    help="bonus for continuing a span of the text (evaluate.copy_bias; 0: off)")
    args = ap.parse_args(argv)
    try:
        if args.text:
            texts = args.text
        elif args.file:
            texts = []
            for where, row in dataio.read_rows(args.file):
                if not isinstance(row.get(args.text_column), str):
                    raise dataio.DataError(f"{where}: no text in column '{args.text_column}'; use --text-column")
                texts.append(row[args.text_column])
        else:
            texts = [line.strip() for line in sys.stdin if line.strip()]
        if not texts:
            raise dataio.DataError("no input: pass texts, --file, or lines on stdin")
        if not Path(args.model, "config.json").exists():
            raise dataio.DataError(f"{args.model}: no trained model here (config.json missing); run `dvc repro` "
                                   "or pass --model DIR")
        gen, prefix = generation_settings(args.params, num_beams=args.num_beams, max_new_tokens=args.max_new_tokens,
                                          batch_size=args.batch_size, copy_bias=args.copy_bias)
        out = summarize(texts, args.model, gen, prefix, progress=len(texts) > 1)
    except (dataio.DataError, params.ParamsError, selection.SelectorError, guide.GuideError) as e:
        print(f"summarize: {e}", file=sys.stderr)
        return 1
    rows = [{"text": t, "summary": s} for t, s in zip(texts, out)]
    if args.output:
        dataio.write_jsonl(args.output, rows)
        print(f"wrote {len(rows)} summaries to {args.output}", file=sys.stderr)
    elif args.text and len(args.text) == 1:
        print(out[0])
    else:
        for r in rows:
            print(json.dumps(r, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
