"""Benchmark: batched, length-sorted generation against one example at a time; no-op `dvc repro`.

    python bench/eval_speed.py            # after `dvc repro` (it uses model/ and the test split)
    python bench/eval_speed.py -n 50      # fewer examples

Both generation modes run in this process on the same test examples with the evaluate section's
params (num_beams, max_new_tokens); the per-example mode is what a loop over `model.generate`
does. Then `dvc repro` with nothing changed is timed (median of 3). Ends with one JSON line.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def encoder_time(model, tok, ids, batch_size: int) -> float:
    """The encoder alone over the same length-sorted batches: work both modes must do, whatever the batching."""
    import torch

    order = sorted(ids, key=len, reverse=True)
    t = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            model.get_encoder()(**tok.pad({"input_ids": order[start:start + batch_size]}, return_tensors="pt"))
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=100, help="test examples to generate for")
    ap.add_argument("--model", default=str(ROOT / "model"), help="a trained model folder")
    ap.add_argument("--tokenized", default=str(ROOT / "data" / "tokenized"), help="its tokenized splits")
    ap.add_argument("--no-repro", action="store_true", help="skip timing the no-op dvc repro")
    ap.add_argument("--num-beams", type=int, help="override evaluate.num_beams")
    ap.add_argument("--batch-size", type=int, help="override evaluate.batch_size")
    args = ap.parse_args()
    from emosum import hf, params
    from emosum.generation import generate, max_new_tokens

    hf.offline_env(False)
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    if not (Path(args.model) / "config.json").exists():
        raise SystemExit(f"no model in {args.model}: run `dvc repro` first")
    (cfg,) = params.load("evaluate", path=ROOT / "params.yaml")
    cfg = cfg.model_copy(update={k: v for k, v in (("num_beams", args.num_beams), ("batch_size", args.batch_size))
                                 if v is not None})
    tok = AutoTokenizer.from_pretrained(args.model)
    model = hf.load_pretrained(args.model)
    ids = load_from_disk(args.tokenized)["test"]["input_ids"][:args.n]
    print(f"model {args.model}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters")
    generate(model, tok, ids[:4], cfg, progress=False)  # warm-up

    t = time.perf_counter()
    batched_stats, single_stats = {}, {}
    batched = generate(model, tok, ids, cfg, desc="batched", stats=batched_stats)
    t_batched = time.perf_counter() - t
    one = cfg.model_copy(update={"batch_size": 1})
    t = time.perf_counter()
    single = generate(model, tok, ids, one, desc="one by one", stats=single_stats)
    t_single = time.perf_counter() - t
    same = sum(a == b for a, b in zip(batched, single)) / len(ids)
    t_encoder = encoder_time(model, tok, ids, cfg.batch_size)

    import os

    bindir = str(Path(sys.executable).parent)  # this environment's dvc, and its python for the stages
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    noop = []
    for _ in range(0 if args.no_repro else 3):
        t = time.perf_counter()
        out = subprocess.run([str(Path(bindir) / "dvc"), "repro"], cwd=ROOT, capture_output=True, text=True, env=env)
        noop.append(time.perf_counter() - t)
        if "Running stage" in out.stdout or out.returncode:
            raise SystemExit(f"dvc repro was not a no-op; run it once first:\n{out.stdout}{out.stderr}")

    print(f"{len(ids)} test examples, num_beams {cfg.num_beams}, max_new_tokens {max_new_tokens(model, cfg)}")
    print(f"batched (batch {cfg.batch_size}, length-sorted): {t_batched:7.2f} s  {len(ids) / t_batched:7.1f} ex/s")
    print(f"one by one:                        {t_single:7.2f} s  {len(ids) / t_single:7.1f} ex/s")
    print(f"speed-up {t_single / t_batched:.1f}x; identical outputs {100 * same:.0f}%")
    steps_b, steps_1 = batched_stats["decoder_steps"], single_stats["decoder_steps"]
    print(f"where the batched time goes: encoder alone {t_encoder:.2f} s ({100 * t_encoder / t_batched:.0f}%); "
          f"decoder steps x examples {steps_b} batched vs {steps_1} one by one "
          f"({100 * (1 - steps_1 / steps_b):.0f}% spent waiting for the longest output of a batch)")
    no_idle = t_encoder + (t_batched - t_encoder) * steps_1 / steps_b
    print(f"ceiling: with no idle decoder steps (each example retired when its output ends) batching would be "
          f"{no_idle:.2f} s, {t_single / no_idle:.1f}x; with free decoding {t_single / t_encoder:.1f}x")
    if noop:
        print(f"no-op dvc repro: {', '.join(f'{x:.2f}' for x in noop)} s (median {statistics.median(noop):.2f})")
    print(json.dumps({"generation_ratio": round(t_single / t_batched, 2), "batched_s": round(t_batched, 2),
                      "per_example_s": round(t_single, 2), "identical_share": round(same, 3),
                      "encoder_s": round(t_encoder, 2), "decoder_steps_batched": steps_b,
                      "decoder_steps_per_example": steps_1,
                      "ratio_without_idle_steps": round(t_single / no_idle, 2),
                      "noop_repro_s": round(statistics.median(noop), 2) if noop else None}))


if __name__ == "__main__":
    main()
