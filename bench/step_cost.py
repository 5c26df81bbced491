"""Benchmark: where a training step of the default model goes, part by part.

    python bench/step_cost.py                     # the committed tokenizer and data; about 3 min; run it alone
    python bench/step_cost.py --steps 20 --precision fp32

The fast mode's price is its steps ("Fast vs full": the same 5,000 pairs trained 2.3x as long
match the full recipe), so a cheaper step is more quality in the same time. This times full
optimizer steps (forward, backward, AdamW) of the default's model on real training batches
(data/tokenized, the run's collator, batches of `train.batch_size` drawn from the length groups
alike for every variant), with one part of the copy head turned off at a time: the counted runs
(`model.copy_runs`), the alignment loss (`model.copy_alignment`), the position keys
(`model.copy_positions`), the whole head (a plain mT5), and the copy noise's swap
(`train.copy_noise`, emosum/augment.py, timed on the collated batches). Variants are interleaved
round by round and the median counts, so a busy second hits them alike. Prints a table of
s/step and the share of the default's step each part costs, then one JSON line.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=12, help="timed steps per variant (after 2 untimed)")
    ap.add_argument("--precision", default="bf16", choices=("bf16", "fp32"))
    args = ap.parse_args()

    import torch
    from datasets import load_from_disk
    from transformers import DataCollatorForSeq2Seq, set_seed

    from emosum import augment, hf, params, prune, speed

    model_p, train_p = params.load("model", "train", path=ROOT / "params.yaml")
    tok_dir, data_dir = ROOT / "data" / "tokenizer", ROOT / "data" / "tokenized"
    tok = hf.load_tokenizer(str(tok_dir))
    ds = load_from_disk(str(data_dir))["train"]
    # padded as the train stage pads (speed.pad_multiple: `auto` pads bf16 batches on a CPU to 16)
    collate = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100,
                                     pad_to_multiple_of=speed.pad_multiple(train_p.pad_to_multiple_of,
                                                                           args.precision, "cpu"))
    # batches across the length range, as group_by_length gives them: sorted by length, cut in runs of 32
    order = sorted(range(len(ds)), key=lambda i: ds[i]["length"])
    n = train_p.batch_size
    starts = [int(k * (len(order) - n) / (args.steps + 1)) for k in range(args.steps + 2)]
    rows = [[{k: ds[i][k] for k in ("input_ids", "attention_mask", "labels")} for i in order[s:s + n]] for s in starts]
    batches = [collate(r) for r in rows]

    base = model_p.copy_options()
    variants = {
        "default": (True, base),
        "copy_runs 0": (True, {**base, "copy_runs": 0}),
        "copy_alignment 0": (True, {**base, "copy_alignment": 0.0}),
        "copy_positions 0": (True, {**base, "copy_positions": 0}),
        "plain mT5 (no copy head)": (False, {}),
    }
    keep = prune.kept_ids(tok_dir)
    models, opts = {}, {}
    for name, (head, copy) in variants.items():
        set_seed(train_p.seed)
        m = hf.scratch_model(model_p.scratch, tok, head, **copy)
        if head:
            m.config.copy_alignment = copy["copy_alignment"]
        if keep is not None:
            prune.prune_model(m, keep)
        m.train()
        models[name] = m
        opts[name] = torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=train_p.weight_decay, fused=True)

    from emosum.trainer_ext import token_mean_loss

    def step(name, batch):
        m, opt = models[name], opts[name]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            out = m(**batch)
            loss = token_mean_loss(out, batch["labels"])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    times = {name: [] for name in variants}
    for k, batch in enumerate(batches):
        for name in variants:  # interleaved: a busy moment hits every variant alike
            t = time.perf_counter()
            step(name, batch)
            if k >= 2:
                times[name].append(time.perf_counter() - t)

    # the copy noise's swap: the collator with the swap on against the plain collator, same rows
    noise = augment.CopyNoise(tok, ds["input_ids"], train_p.copy_noise, train_p.seed)
    noisy = noise.collator(collate)
    noise.active = True
    swap = []
    for r in rows[2:]:
        t = time.perf_counter()
        collate(r)
        plain = time.perf_counter() - t
        t = time.perf_counter()
        noisy(r)
        swap.append(time.perf_counter() - t - plain)

    med = {name: statistics.median(v) for name, v in times.items()}
    d = med["default"]
    print(f"{len(batches) - 2} timed steps per variant, batch {n}, {args.precision}, "
          f"{torch.get_num_threads()} threads; median s/step:\n")
    print("| variant | s/step | vs default |")
    print("|---|---|---|")
    for name, v in med.items():
        print(f"| {name} | {v:.3f} | {v / d:.2f}x |")
    if swap:
        print(f"| copy noise swap (collator, per batch) | {statistics.median(swap):.4f} | "
              f"{statistics.median(swap) / d:.3f}x |")
    print(json.dumps({"precision": args.precision, "batch": n, "median_s_per_step": med,
                      "copy_noise_swap_s": statistics.median(swap) if swap else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
