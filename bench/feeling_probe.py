"""Is the feeling misread or mis-decoded, and is it read or remembered? A teacher-forced probe.

    python bench/feeling_probe.py model metrics/predictions.jsonl          # test and held-out rows
    python bench/feeling_probe.py model data/splits/train.jsonl --limit 1000  # rows it trained on

For each row: the reference summary with its feeling swapped for each of the demo's 15 labels
(`作者因<cause>感到<label>。`), scored by the model under teacher forcing (the sum of the tokens'
log-probabilities, the input encoded as the model was trained: `selection.encode`, guide
included); the probe's feeling is the best-scoring label. Beside it, what beam search wrote (the
predictions file's `prediction`, where it has one). Rows are split by the feeling's shape
(`bench/feeling_shapes.py`: negation, someone else's, plain) and by how many other feelings' words
the text holds (distractors: someone else's feeling, a negated one), and each error by whether it
named such a distractor. The same probe on the training rows says whether the model reads the
feeling or remembers it: a model that remembers names its training rows' feelings whatever their
shape. Demo data only (the labels, words and templates are the generator's).
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from emosum.demo_data import EMOTIONS, HELD  # noqa: E402
from feeling_shapes import shape  # noqa: E402

LABELS = sorted(EMOTIONS)


def mentions(text: str, label: str) -> bool:
    """Whether the text holds one of the label's words or phrases (any family, held-out ones too)."""
    _, words, phrases = EMOTIONS[label]
    return any(w.lstrip(HELD) in text for w in words + phrases)


def probe(model, tok, input_ids: list[int], reference: str, emotion: str) -> str:
    import torch

    from emosum.pointer import MT5PointerGenerator

    cands = [reference.replace(f"感到{emotion}", f"感到{lab}", 1) for lab in LABELS]
    dec = [tok(text_target=c).input_ids for c in cands]
    width, pad = max(map(len, dec)), tok.pad_token_id
    labels = torch.tensor([d + [-100] * (width - len(d)) for d in dec])
    start = model.config.decoder_start_token_id
    dec_in = torch.tensor([[start] + d[:-1] + [pad] * (width - len(d)) for d in dec])
    with torch.no_grad():
        logp = model(input_ids=torch.tensor([input_ids] * len(LABELS)), decoder_input_ids=dec_in).logits.float()
    if not isinstance(model, MT5PointerGenerator):  # a plain mT5's logits; the copy head's are log-probabilities
        logp = logp.log_softmax(-1)
    tok_lp = logp.gather(-1, labels.clamp(min=0)[..., None])[..., 0] * (labels >= 0)
    return LABELS[int(tok_lp.sum(-1).argmax())]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a trained model folder (model/)")
    ap.add_argument("rows", help="metrics/predictions.jsonl or a data/splits/*.jsonl file")
    ap.add_argument("--limit", type=int, default=None, help="the first N rows only")
    args = ap.parse_args(argv)
    from emosum import guide, hf, selection
    from transformers import AutoTokenizer

    hf.offline_env(False)
    tok = AutoTokenizer.from_pretrained(args.model)
    model = hf.load_pretrained(args.model).eval()
    with open(args.rows, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f][:args.limit]
    ids = selection.encode(tok, [r["text"] for r in rows], tok.model_max_length, "",
                           selection.load(Path(args.model)), guide.load(Path(args.model)))
    n, right, beam, errors = (collections.Counter() for _ in range(4))
    for r, x in zip(rows, ids):
        emo, ref = r["facts"]["emotion"], r.get("reference") or r["summary"]
        got = probe(model, tok, x, ref, emo)
        others = [e for e in LABELS if e != emo and mentions(r["text"], e)]
        split = r.get("split", "?")
        for group in ("all", shape(r["text"]), f"distractors {min(len(others), 2)}{'+' if len(others) > 1 else ''}"):
            n[split, group] += 1
            right[split, group] += got == emo
            beam[split, group] += "prediction" in r and f"感到{emo}" in r["prediction"]
        if got != emo:
            errors[split, "a distractor" if got in others else "another feeling"] += 1
    has_beam = any("prediction" in r for r in rows)
    print("| split | group | rows | probe: named right | beam search: named right |")
    print("|---|---|---|---|---|")
    for split, group in sorted(n, key=lambda k: (k[0], k[1] != "all", k[1])):
        k = (split, group)
        print(f"| {split} | {group} | {n[k]} | {100 * right[k] / n[k]:.1f}% | "
              + (f"{100 * beam[k] / n[k]:.1f}% |" if has_beam else "- |"))
    for split in sorted({s for s, _ in n}):
        print(f"{split}: probe errors naming a feeling the text gives someone else or negates: "
              f"{errors[split, 'a distractor']}; another: {errors[split, 'another feeling']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
