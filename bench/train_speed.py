"""Benchmark: emosum's fast preset against a run_summarization.py-style baseline, mt5-small shape.

    python bench/train_speed.py                  # ~10 min on 2 CPU cores
    python bench/train_speed.py --steps 5 --emosum-steps 20   # a quick look

One command runs every configuration on the same data and the same stand-in checkpoint: the real
mt5-small config (d_model 512, 8 + 8 layers, vocabulary 250,112, untied head), randomly
initialised and saved to a local folder so the real loading path is used, with a SentencePiece
tokenizer trained on the demo data (nothing can be downloaded here). Each configuration runs in
its own child process so its peak memory is its own; all go through the real tokenize and train
stages, differing only in their params:

  baseline      what transformers' run_summarization.py does by default: fp32, the full
                vocabulary, AdamW, dynamic padding, random batches (no length grouping)
  emosum        the user's fast mode (one epoch, batch 4) with emosum's settings: pruned
                vocabulary, precision auto (the fastest measured of fp32, tf32 on CUDA, bf16), length-grouped
                batches, fused AdamW
  emosum_32000  the same with the vocabulary held at 32,000 rows, about what Chinese text keeps of
                the real mT5 vocabulary: the stand-in tokenizer uses far fewer ids, which would
                flatter the headline
  emosum_compile  emosum with torch.compile, padding to multiples of 16 tokens (few shapes to compile)
  emosum_graphs   emosum with torch.compile's reduce-overhead mode (CUDA graphs replay a small step's
                hundreds of kernel launches as one), padding to multiples of 32

tokens/s counts real (non-padding) source + target tokens, over the steps after the first two;
"late it/s" is optimizer steps per second over the second half of the steps run, after compiling.
The emosum runs plan the whole fast-mode epoch (5,000 samples, batch 4: 1,250 steps) and stop
after --emosum-steps, so the train stage's own prediction for the full run is printed beside the
measured s/step. Ends with one JSON line.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPES = {  # the real google/mt5-small and mt5-base configs
    "mt5-small": dict(d_model=512, d_ff=1024, d_kv=64, num_heads=6, num_layers=8, num_decoder_layers=8,
                      vocab_size=250112, feed_forward_proj="gated-gelu", dropout_rate=0.1),
    "mt5-base": dict(d_model=768, d_ff=2048, d_kv=64, num_heads=12, num_layers=12, num_decoder_layers=12,
                     vocab_size=250112, feed_forward_proj="gated-gelu", dropout_rate=0.1),
}


def lengthen(splits: Path, seed: int = 0) -> None:
    """--long: every input and summary longer than the limits, so every batch is full length (the
    original full mode's worst case: 1024 + 512 tokens)."""
    import random

    rng = random.Random(seed)
    for f in splits.glob("*.jsonl"):
        rows = [json.loads(line) for line in open(f, encoding="utf-8")]
        long = [{"text": "".join(r["text"] for r in rng.sample(rows, min(len(rows), 30))),
                 "summary": "".join(r["summary"] for r in rng.sample(rows, min(len(rows), 80)))} for _ in rows]
        f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in long), encoding="utf-8")


def prepare(work: Path, samples: int, shape: str, long: bool) -> None:
    import torch
    import yaml
    from transformers import MT5Config, MT5ForConditionalGeneration

    from emosum import params
    from stages import subsample, tokenize

    doc = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    data = params.parse_section("data", {**doc["data"], "path": str(ROOT / doc["data"]["path"])})
    sub = params.parse_section("subsample", {**doc["subsample"], "max_samples": samples, "max_eval_samples": 32})
    subsample.run(data, sub, work / "splits")
    if long:
        lengthen(work / "splits")
    texts = [json.loads(line)["text"] for line in open(work / "splits" / "train.jsonl", encoding="utf-8")]
    tok = tokenize.train_sentencepiece(texts, 8000, work / "ckpt")
    torch.manual_seed(0)
    model = MT5ForConditionalGeneration(MT5Config(**SHAPES[shape], decoder_start_token_id=0))
    # real mT5 checkpoints have their own LM head; transformers 5 keeps it untied on load when it
    # differs from the embeddings
    model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.shared.weight) * 0.05)
    model.save_pretrained(work / "ckpt")
    tok.save_pretrained(work / "ckpt")


def one(name: str, work: Path, steps: int, args) -> dict:
    """Child process: tokenize and train one configuration; returns train.json's dict."""
    import yaml
    from transformers import TrainerCallback

    from emosum import hf, params, prune
    from stages import tokenize, train

    hf.offline_env(False)
    doc = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    model_p = params.parse_section("model", {**doc["model"], "name": str(work / "ckpt")})
    tok_over, train_over = {}, {}
    if name == "baseline":
        tok_over = {"prune_vocab": False}
        train_over = {"precision": "fp32", "optimizer": "adamw_torch", "group_by_length": False,
                      "learning_rate": 5e-5, "warmup_ratio": 0.0}
    if name == "emosum_compile":  # torch.compile over length buckets of 16 tokens
        train_over = {"torch_compile": True, "pad_to_multiple_of": 16}
    if name == "emosum_graphs":  # the same with CUDA graphs (launch-bound small steps); fewer shapes
        train_over = {"torch_compile": True, "torch_compile_mode": "reduce-overhead", "pad_to_multiple_of": 32}
    if name == "emosum_fp32":  # to isolate what each knob buys
        train_over = {"precision": "fp32"}
    if name == "emosum_nogroup":
        train_over = {"group_by_length": False}
    if name != "baseline":
        # the user's fast mode: one epoch (--epochs), precision auto (params.yaml's demo preset
        # trains a small scratch model for 8 epochs at batch 32: not the mt5-small fast mode's knobs)
        train_over = {"epochs": args.epochs, "precision": "auto", **train_over}
        for item in args.override or []:  # --override train.optimizer=adamw_torch_fused
            key, _, val = item.partition("=")
            section, _, field = key.partition(".")
            target = train_over if section == "train" else tok_over
            target[field] = yaml.safe_load(val)
    tok_cfg = params.parse_section("tokenize", {**doc["tokenize"], **tok_over, "max_source_length": args.src,
                                                "max_target_length": args.tgt})
    d = work / name
    tokenize.run(model_p, tok_cfg, work / "splits", d / "tok", d / "tokenized")
    if name == "emosum_32000":
        vmap = json.loads((d / "tok" / prune.MAP_FILE).read_text())
        kept = vmap["kept_ids"]
        base = max(kept) + 1  # unused rows above every kept id keep the token ids aligned
        vmap["kept_ids"] = kept + list(range(base, base + 32000 - len(kept)))
        (d / "tok" / prune.MAP_FILE).write_text(json.dumps(vmap))
    train_cfg = params.parse_section("train", {**doc["train"], **train_over, "save_steps": 100_000,
                                               "batch_size": args.batch,
                                               "max_steps": steps if name == "baseline" else -1})

    class StopAfter(TrainerCallback):  # the emosum runs plan the whole epoch, run `steps` of it
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= steps:
                control.should_training_stop = True

    import os
    os.chdir(d)  # the train stage's scratch checkpoints land under the bench folder
    return train.run(model_p, train_cfg, d / "tok", d / "tokenized", d / "model", None,
                     callbacks=[StopAfter()])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=15, help="baseline steps, at least 4 (random batches: any window is typical)")
    ap.add_argument("--emosum-steps", type=int, default=60,
                    help="emosum steps; length grouping sorts 50-batch chunks, so run at least one whole chunk")
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--work", default=str(ROOT / ".scratch" / "bench_train"))
    ap.add_argument("--configs", default="baseline,emosum,emosum_32000",
                    help="any of baseline, emosum, emosum_32000, emosum_compile, emosum_graphs, emosum_fp32, "
                         "emosum_nogroup")
    ap.add_argument("--config-timeout", type=float, default=None,
                    help="seconds per configuration; one that runs over (or fails) is reported and skipped")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds for the whole benchmark: each configuration gets at most what is left "
                         "(less a margin for the table), so a lent machine's time limit never cuts the table")
    ap.add_argument("--shape", default="mt5-small", choices=sorted(SHAPES))
    ap.add_argument("--src", type=int, default=128, help="max source tokens")
    ap.add_argument("--tgt", type=int, default=128, help="max target tokens")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--epochs", type=float, default=1,
                    help="epochs the emosum runs plan (they stop after --emosum-steps): a plan of fewer "
                         "steps than precision auto's probe needs takes fp32 or the remembered answer")
    ap.add_argument("--override", action="append", metavar="SECTION.KEY=VALUE",
                    help="train.* or tokenize.* params for the emosum configs (repeatable)")
    ap.add_argument("--long", action="store_true", help="inputs and summaries past the limits: full-length batches")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = Path(args.work).resolve()
    if args.one:
        from emosum.logs import setup_logging

        setup_logging()
        steps = args.steps if args.one == "baseline" else args.emosum_steps
        stats = one(args.one, work, steps, args)
        (work / f"{args.one}.json").write_text(json.dumps(stats))
        return
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t0 = time.perf_counter()
    prepare(work, args.samples, args.shape, args.long)
    print(f"prepared data and the mt5-small-shaped checkpoint in {time.perf_counter() - t0:.0f}s", flush=True)
    results, failed = {}, {}
    for name in args.configs.split(","):
        t = time.perf_counter()
        limit = args.config_timeout
        if args.budget:
            left = args.budget - (t - t0) - 10  # 10 s for the table
            if left < 30:
                failed[name] = "skipped: the --budget was spent"
                print(f"{name}: {failed[name]}", flush=True)
                continue
            limit = min(limit or left, left)
        # one configuration that fails or hangs (a compile mode on a new GPU) must not cost the others
        try:
            subprocess.run([sys.executable, __file__, *sys.argv[1:], "--one", name, "--work", str(work)], check=True,
                           timeout=limit)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
            failed[name] = f"{type(e).__name__} after {time.perf_counter() - t:.0f}s"
            print(f"{name}: FAILED ({failed[name]}); see its log above", flush=True)
            continue
        results[name] = json.loads((work / f"{name}.json").read_text())
        sp = results[name]["speed"]
        print(f"{name}: done in {time.perf_counter() - t:.0f}s: {sp.get('steady_s_per_step')} s/step, "
              f"{sp.get('steady_tokens_per_s')} tokens/s, vocab {results[name]['vocab_size']}, "
              f"{results[name]['precision']}, peak {results[name]['peak_memory_gb']} GB", flush=True)
    print(f"shape {args.shape}, batch {args.batch}, {args.src} + {args.tgt} tokens"
          f"{', full-length batches' if args.long else ''}")
    print_table(results, failed)


def print_table(results: dict, failed: dict | None = None) -> None:
    base = results.get("baseline")
    # peak GB: the process's peak (loading included); train GB: the peak while training, which the
    # train stage predicts before the first step (pred GB)
    print(f"\n{'config':14} {'vocab':>8} {'precision':>9} {'s/step':>8} {'tokens/s':>9} {'peak GB':>8} "
          f"{'train GB':>8} {'pred GB':>8} {'pred err':>8} {'x base':>7} {'late it/s':>9}")
    for name, r in results.items():
        sp, mem = r["speed"], r.get("memory") or {}
        ratio = sp["steady_tokens_per_s"] / base["speed"]["steady_tokens_per_s"] if base else float("nan")
        err = mem.get("prediction_error")
        probe = r.get("precision_probe") or {}
        if probe.get("s_per_pass"):
            print(f"{name}: precision probe ({probe['source']}): " + ", ".join(
                f"{m} {t:.3f} s" for m, t in probe["s_per_pass"].items()) + f" per forward+backward -> {probe['choice']}")
        print(f"{name:14} {r['vocab_size']:>8} {r['precision']:>9} {sp['steady_s_per_step']:>8.3f} "
              f"{sp['steady_tokens_per_s']:>9.1f} {r['peak_memory_gb']:>8.2f} {mem.get('actual_peak_gb') or 0:>8.2f} "
              f"{mem.get('predicted_peak_gb', 0):>8.2f} "
              f"{'-' if err is None else f'{err:+.0%}':>8} {ratio:>7.2f} "
              f"{1 / sp['late_s_per_step'] if sp.get('late_s_per_step') else float('nan'):>9.1f}")
    # late it/s: optimizer steps per second over the second half of the steps run (compiling done)
    for name in ("emosum", "emosum_32000"):
        if name in results and results[name]["speed"].get("predicted_train_s"):
            sp = results[name]["speed"]
            chk = sp.get("prediction_check", {})
            print(f"{name}: predicted {sp['predicted_train_s'] / 60:.1f} min for the whole fast-mode epoch "
                  f"({sp['batches_per_epoch']} steps); measured {sp['steady_s_per_step']:.3f} s/step over "
                  f"{sp['steady_steps']} steps -> {sp['steady_s_per_step'] * sp['batches_per_epoch'] / 60:.1f} min; "
                  f"on the steps run the fit predicted {chk.get('predicted_s')} s, actual {chk.get('actual_s')} s; "
                  f"padding waste {sp['padding_waste']:.0%} (random batches {sp['padding_waste_random_batches']:.0%})")
    line = {f"{n}_memory_prediction_error": r["memory"]["prediction_error"] for n, r in results.items()
            if (r.get("memory") or {}).get("prediction_error") is not None}
    line.update({f"{n}_precision": r["precision"] for n, r in results.items()})
    line.update({f"{n}_s_per_step": r["speed"]["steady_s_per_step"] for n, r in results.items()})
    line.update({f"{n}_late_it_per_s": round(1 / r["speed"]["late_s_per_step"], 2) for n, r in results.items()
                 if r["speed"].get("late_s_per_step")})
    line.update({f"{n}_failed": why for n, why in (failed or {}).items()})
    line.update({f"{n}_precision_s_per_pass": r["precision_probe"]["s_per_pass"] for n, r in results.items()
                 if (r.get("precision_probe") or {}).get("s_per_pass")})
    if base:
        bt = base["speed"]["steady_tokens_per_s"]
        line["baseline_tokens_per_s"] = bt
        if "emosum" in results:
            line["emosum_tokens_per_s"] = results["emosum"]["speed"]["steady_tokens_per_s"]
            line["ratio"] = round(line["emosum_tokens_per_s"] / bt, 2)
            line["pruned_vocab"] = results["emosum"]["vocab_size"]
        if "emosum_32000" in results:
            line["ratio_at_32000"] = round(results["emosum_32000"]["speed"]["steady_tokens_per_s"] / bt, 2)
    print(json.dumps(line))


if __name__ == "__main__":
    main()
