"""What the copy head's alignment loss (model.copy_alignment) costs a training step.

    python bench/alignment_cost.py                 # model/ and data/tokenized of the last dvc repro
    python bench/alignment_cost.py --batches 30 --precision fp32

The same batches of the training split (batch 32, in the order a length-grouped epoch would not
matter for: the same ones both ways), forward + backward through the trained model, with the
alignment loss at 0 (off) and at the given weight, interleaved batch by batch so that drift on a
shared machine falls on both alike; and the alignment's dynamic programme alone. Run it alone.
Prints seconds a step both ways and their ratio, then one JSON line.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    import torch
    from datasets import load_from_disk

    from emosum import hf, pointer
    from emosum.trainer_ext import token_mean_loss

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="model")
    ap.add_argument("--data", default="data/tokenized")
    ap.add_argument("--weight", type=float, default=0.3)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    args = ap.parse_args()

    model = hf.load_pretrained(args.model)
    if not isinstance(model, pointer.MT5PointerGenerator):
        print(f"{args.model} has no copy head (model.copy_head: false): nothing to measure", file=sys.stderr)
        return 1
    model.train()
    train = load_from_disk(args.data)["train"]
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(train), generator=g).tolist()
    batches = []
    for b in range(args.batches + 2):  # two to warm up
        rows = train[order[b * args.batch_size:(b + 1) * args.batch_size]]
        n = max(map(len, rows["input_ids"]))
        t = max(map(len, rows["labels"]))
        x = torch.tensor([r + [0] * (n - len(r)) for r in rows["input_ids"]])
        y = torch.tensor([r + [-100] * (t - len(r)) for r in rows["labels"]])
        batches.append((x, (x != 0).long(), y))
    amp = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if args.precision == "bf16" else contextlib.nullcontext

    def step(batch, weight):
        x, mask, y = batch
        model.config.copy_alignment = weight
        t0 = time.perf_counter()
        with amp():
            # as the Trainer calls it: labels popped, the collator's decoder inputs
            out = model(input_ids=x, attention_mask=mask, decoder_input_ids=model._shift_right(y))
            loss = token_mean_loss(out, y)
        loss.backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    times = {0.0: [], args.weight: []}
    for i, batch in enumerate(batches):
        for w in ((0.0, args.weight) if i % 2 else (args.weight, 0.0)):
            s = step(batch, w)
            if i >= 2:
                times[w].append(s)
    dp = []
    for x, mask, y in batches[2:]:
        t0 = time.perf_counter()
        pointer.copy_alignment(x, y.clamp_min(-1), mask, [0, 1])
        dp.append(time.perf_counter() - t0)
    off, on = statistics.median(times[0.0]), statistics.median(times[args.weight])
    print(f"{len(times[0.0])} batches of {args.batch_size}, {args.precision}, {torch.get_num_threads()} threads")
    print(f"forward + backward, median: without the alignment loss {off:.4f} s, with it ({args.weight}) "
          f"{on:.4f} s: x{on / off:.3f}; the alignment's dynamic programme alone {statistics.median(dp) * 1000:.1f} ms")
    print(json.dumps({"batches": len(times[0.0]), "precision": args.precision, "s_without": round(off, 4),
                      "s_with": round(on, 4), "ratio": round(on / off, 3),
                      "alignment_dp_ms": round(statistics.median(dp) * 1000, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
