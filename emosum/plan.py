"""emosum-plan: what a run would cost on this machine, before any of it runs.

    emosum-plan                                   # the current params.yaml
    emosum-plan -S train.epochs=2 -S subsample.max_samples=10000   # one row per -S (as dvc exp run takes it)
    emosum-plan -S 'train.epochs=2;train.batch_size=16'            # several overrides in one row
    emosum-plan --presets --budget 45min          # the README's presets, each checked against a deadline
    emosum-plan --preset fast-mt5 -S model.name=google/mt5-base --json

One row per configuration: training samples, optimizer steps, the share of inputs truncated, the
precision `auto` would choose, predicted seconds per step and training time, predicted peak
memory, checkpoint and model size on disk, and whether the stage fits --budget. Every figure
comes from measured passes of that configuration on this machine, never from a formula alone:
the data is subsampled and tokenized as the stages do it (a scratch tokenizer is trained; a
checkpoint's is used where cached), the run's batches are laid out by the train stage's own
sampler, and the model (from its config, random weights: a checkpoint that is not cached has the
same architecture, hence the same time and memory) runs forward and backward on the typical and
the largest batch in each precision (the precision probe), then one optimizer step, a validation
forward pass and a save are timed, and the memory probe measures the peak (emosum/memory.py).
Each row runs in its own process, so its memory is its own.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRESETS = {  # the README's preset table ("Fast vs full, measured"), as `dvc exp run -S` overrides
    "fast-demo": [],
    "fast-steps2196": ["train.max_steps=2196"],  # the fast preset trained as many steps as full-demo (its price: steps)
    "middle-demo": ["subsample.max_samples=null", "tokenize.max_source_length=256", "train.epochs=4"],
    "full-demo": ["subsample.max_samples=null", "tokenize.max_source_length=512", "train.epochs=6"],
    # the user's original fast and full modes, with the real mT5 architectures
    "fast-mt5": ["model.name=google/mt5-small", "model.source_prefix='summarize: '", "train.learning_rate=5e-4",
                 "train.epochs=1", "train.batch_size=4"],
    "full-mt5": ["model.name=google/mt5-base", "model.source_prefix='summarize: '", "subsample.max_samples=null",
                 "train.epochs=3", "train.batch_size=2", "tokenize.max_source_length=1024",
                 "tokenize.max_target_length=512", "train.learning_rate=3e-4"],
}
ARCHITECTURES = {  # the published configs, for a checkpoint that is not in the cache
    "google/mt5-small": dict(d_model=512, d_ff=1024, d_kv=64, num_heads=6, num_layers=8, num_decoder_layers=8,
                             vocab_size=250112, feed_forward_proj="gated-gelu", tie_word_embeddings=False),
    "google/mt5-base": dict(d_model=768, d_ff=2048, d_kv=64, num_heads=12, num_layers=12, num_decoder_layers=12,
                            vocab_size=250112, feed_forward_proj="gated-gelu", tie_word_embeddings=False),
    "google/mt5-large": dict(d_model=1024, d_ff=2816, d_kv=64, num_heads=16, num_layers=24, num_decoder_layers=24,
                             vocab_size=250112, feed_forward_proj="gated-gelu", tie_word_embeddings=False),
}
COLUMNS = [("row", "row", "{}"), ("samples", "samples", "{:,}"), ("steps", "steps", "{:,}"),
           ("epochs", "epochs", "{:.2f}"), ("truncated", "truncated_share", "{:.0%}"),
           ("precision", "precision", "{}"), ("s/step", "s_per_step", "{:.3f}"),
           ("train min", "train_s", "{:.1f}"), ("stage min", "stage_s", "{:.1f}"),
           ("peak GB", "peak_memory_gb", "{:.2f}"), ("ckpt MB", "checkpoint_mb", "{:,.0f}"),
           ("model MB", "model_mb", "{:,.0f}"), ("fits", "fits_budget", "{}"), ("planned in s", "plan_s", "{:.0f}")]


def configurations(doc: dict, sets: list[str], presets: bool, base: str | None) -> list[tuple[str, list[str]]]:
    """(label, overrides) per row: the presets, or the base (params.yaml or a preset), then one row per
    -S. Every row is validated now, as a stage validates params.yaml, before any of them runs."""
    from emosum import params

    base_over = PRESETS[base] if base else []
    rows = list(PRESETS.items()) if presets else [(base or "params.yaml", base_over)]
    rows += [(s, base_over + [a for a in s.split(";") if a.strip()]) for s in sets]
    for _, over in rows:
        d = doc
        for a in over:
            d = params.override(d, a)
        params.validate(d, source="params.yaml")
    return rows


def _lengths(tok, texts: list[str], limit: int, target: bool = False) -> tuple[list[int], float]:
    enc = tok(text_target=texts, verbose=False) if target else tok(texts, verbose=False)
    n = [len(x) for x in enc["input_ids"]]
    return [min(x, limit) for x in n], sum(x > limit for x in n) / max(1, len(n))


def _batch(lengths: list[tuple[int, int]], vocab: int, pad_multiple: int | None, seed: int) -> dict:
    """A batch of random ids with exactly these (source, target) lengths, padded as the collator pads."""
    import torch

    g = torch.Generator().manual_seed(seed)
    rnd = lambda n: -(-n // pad_multiple) * pad_multiple if pad_multiple else n  # noqa: E731
    s, t = rnd(max(a for a, _ in lengths)), rnd(max(b for _, b in lengths))
    ids = torch.randint(3, max(4, vocab), (len(lengths), s), generator=g)
    mask = torch.zeros(len(lengths), s, dtype=torch.long)
    labels = torch.full((len(lengths), t), -100, dtype=torch.long)
    for i, (a, b) in enumerate(lengths):
        mask[i, :a] = 1
        labels[i, :b] = torch.randint(3, max(4, vocab), (b,), generator=g)
    ids = ids * mask
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def measure_row(doc: dict, label: str, over: list[str], full_length: bool, timed: int, batches: int = 16) -> dict:
    """One configuration, measured (runs in its own process: see main)."""
    import datasets  # noqa: F401  loaded as by the train stage, so the memory in use compares
    import torch
    from transformers import AutoConfig, MT5Config, MT5ForConditionalGeneration

    from emosum import budget, checkpoints, hf, memory, params, precision as prec, speed
    from emosum.trainer_ext import EpochSeededSampler, token_mean_loss
    from stages import subsample, tokenize, train

    from emosum import machine

    quiet_check = machine.Snapshot()  # what else ran while this row was measured
    t0 = time.perf_counter()
    for a in over:
        doc = params.override(doc, a)
    data, sub, model_p, tok_p, cfg, hub = params.validate(doc, "data", "subsample", "model", "tokenize", "train", "hub")
    hf.offline_env(hub.online)
    note = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subsample.run(data, sub, tmp / "splits", fact_columns=[])
        rows = {s: [json.loads(line) for line in open(tmp / "splits" / f"{s}.jsonl", encoding="utf-8")]
                for s in ("train", "validation")}
        texts = [model_p.source_prefix + r["text"] for r in rows["train"]]
        tok, arch = None, None
        if not hf.is_scratch(model_p.name):
            try:
                tok = hf.load_tokenizer(model_p.name)
                arch = AutoConfig.from_pretrained(model_p.name)
            except (hf.CheckpointError, OSError, ValueError):
                if model_p.name not in ARCHITECTURES:
                    raise params.ParamsError(f"model.name '{model_p.name}': not cached here and not one of the "
                                             f"architectures emosum-plan knows ({', '.join(ARCHITECTURES)})") from None
                note.append("checkpoint not cached: its architecture with random weights; token lengths from a "
                            "tokenizer trained on the data, vocabulary after pruning = the data's distinct characters")
        if tok is None:
            tok = tokenize.train_sentencepiece([r["text"] for r in rows["train"]] + [r["summary"] for r in rows["train"]],
                                               tok_p.vocab_size, tmp / "tok", tok_p.max_piece_length,
                                               tok_p.character_coverage)
        max_src = tokenize.resolve_max_source_length(tok, texts, tok_p)
        src, truncated = _lengths(tok, texts, max_src)
        tgt, _ = _lengths(tok, [r["summary"] for r in rows["train"]], tok_p.max_target_length, target=True)
        vsrc, _ = _lengths(tok, [model_p.source_prefix + r["text"] for r in rows["validation"]], max_src)
        vtgt, _ = _lengths(tok, [r["summary"] for r in rows["validation"]], tok_p.max_target_length, target=True)
        # the collator on the run's own typical rows, as the Trainer calls it each step
        from transformers import DataCollatorForSeq2Seq

        feats = [{"input_ids": ids[:max_src], "attention_mask": [1] * min(len(ids), max_src),
                  "labels": lab[:tok_p.max_target_length]} for ids, lab in zip(
                      tok(texts[:cfg.batch_size], verbose=False)["input_ids"],
                      tok(text_target=[r["summary"] for r in rows["train"][:cfg.batch_size]], verbose=False)["input_ids"])]
        if full_length:  # the user's own data: every input and summary at the limits
            src, tgt, vsrc, vtgt = ([max_src] * len(src), [tok_p.max_target_length] * len(tgt),
                                    [max_src] * len(vsrc), [tok_p.max_target_length] * len(vtgt))
            truncated = 1.0
        if hf.is_scratch(model_p.name):
            model = hf.scratch_model(model_p.scratch, tok, model_p.copy_head, **model_p.copy_options())
            vocab = len(tok)
        else:
            everything = [r["text"] + r["summary"] for s in rows.values() for r in s]
            if arch is not None:  # a cached checkpoint: its tokenizer tells which ids the data uses
                vocab = len(set(i for ids in tok(everything, verbose=False)["input_ids"] for i in ids)) + 3 \
                    if tok_p.prune_vocab else arch.vocab_size
            else:
                vocab = len(set("".join(everything))) + 3 if tok_p.prune_vocab else ARCHITECTURES[model_p.name]["vocab_size"]
                arch = MT5Config(**ARCHITECTURES[model_p.name])
            arch.vocab_size = max(tok_p.min_vocab, vocab) if tok_p.prune_vocab else vocab
            vocab = arch.vocab_size
            model = MT5ForConditionalGeneration(arch)
            if model_p.copy_head:
                from emosum.pointer import MT5PointerGenerator

                model = MT5PointerGenerator.from_mt5(model, **model_p.copy_options())  # its alignment loss too
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    world = cfg.num_processes * cfg.num_machines
    from emosum import launch

    accum = launch.accumulation(cfg, world)
    order = list(EpochSeededSampler(src, cfg.batch_size * accum, cfg.seed))
    pairs = [(src[i], tgt[i]) for i in order]
    micro = [pairs[i:i + cfg.batch_size] for i in range(0, len(pairs), cfg.batch_size)]
    by_len = sorted(range(len(src)), key=lambda i: src[i] + tgt[i])
    mid = max(0, len(by_len) // 2 - cfg.batch_size // 2)
    typical_largest = lambda pad: [_batch([(src[i], tgt[i]) for i in idx], vocab, pad, seed) for idx, seed in  # noqa: E731
                                   ((by_len[mid:mid + cfg.batch_size], 1), (by_len[-cfg.batch_size:], 2))]
    steps_per_epoch = max(1, math.ceil(len(micro) / accum))
    steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * cfg.epochs)
    built_s = time.perf_counter() - t0

    precision = hf.pick_precision(cfg.precision, cfg.allow_fp16)
    probe = None
    if precision == "auto":  # as the stage: the probe's batches unpadded, the padding follows the choice
        probe = prec.choose(model, typical_largest(None), device, steps, cfg.batch_size, token_mean_loss, timed=timed)
        precision = probe["choice"]
    pad = speed.pad_multiple(cfg.pad_to_multiple_of, precision, device)
    rnd = lambda n: -(-n // pad) * pad if pad else n  # noqa: E731
    micro_tokens = [len(m) * (rnd(max(a for a, _ in m)) + rnd(max(b for _, b in m))) for m in micro]
    typical, largest = typical_largest(pad)
    more = [_batch(micro[i], vocab, pad, 10 + i) for i in budget.spread(micro_tokens, batches)]
    collator = DataCollatorForSeq2Seq(tok, model=model, label_pad_token_id=-100, pad_to_multiple_of=pad)
    collate = lambda: collator(feats)  # noqa: E731
    mem = memory.predict(model, [largest], precision, device, cfg.optimizer, token_mean_loss)

    class _Loader:  # the validation batches as the Trainer's sequential eval loader makes them
        def __init__(self):
            self.pairs = list(zip(vsrc, vtgt))

        def __iter__(self):
            for i in range(0, len(self.pairs), cfg.eval_batch_size):
                yield _batch(self.pairs[i:i + cfg.eval_batch_size], vocab, pad, 3 + i)

    class _Trainer:
        def get_eval_dataloader(self):
            return _Loader()

    with tempfile.TemporaryDirectory() as scratch:
        costs = budget.measure(_Trainer(), model, [typical, largest], precision, device, cfg.optimizer, probe,
                               scratch, token_mean_loss, collate, more)
    plan = budget.Plan(float("inf"), costs["pass_fit"], micro_tokens, accum, costs["optimizer_step_s"],
                       costs["eval_s"], costs["checkpoint_save_s"], costs["final_save_s"], cfg.save_steps,
                       cfg.eval_steps)
    probe_s = (probe or {}).get("probe_s", 0.0)
    startup = built_s + probe_s  # loading, tokenizing and probing, as the stage does before its first step
    if cfg.time_budget:
        steps = plan.steps_within(0, budget.TARGET * budget.seconds(cfg.time_budget) - startup)
    train_s = plan.cost(0, steps) - plan.final_save_s
    n_params = sum(p.numel() for p in model.parameters())
    busy = machine.busy_between(quiet_check)
    if busy:
        note.append(f"measured while the machine was busy ({busy}): these times are this moment's, not the "
                    "machine's (and the precision is not remembered); plan again when it is quiet")
    return {
        "row": label, "busy": busy, "overrides": over, "samples": len(rows["train"]), "steps": steps,
        "epochs": round(steps / steps_per_epoch, 3), "truncated_share": round(truncated, 4),
        "max_source_length": max_src, "max_target_length": tok_p.max_target_length, "batch_size": cfg.batch_size,
        "precision": precision, "precision_source": (probe or {}).get("source", "forced"), "pad_to_multiple_of": pad,
        "s_per_pass": (probe or {}).get("s_per_pass", {}), "s_per_step": round(plan.step_s(), 4),
        "train_s": round(train_s, 1), "stage_s": round(startup + train_s + plan.final_save_s, 1),
        "peak_memory_gb": mem.get("predicted_peak_gb"), "memory": mem,
        "checkpoint_mb": round(checkpoints.size_bytes(n_params, cfg.optimizer) / 1e6, 1),
        "model_mb": round(4 * n_params / 1e6, 1), "parameters": n_params, "vocab_size": vocab,
        "measured": {**{k: (round(v, 4) if isinstance(v, float) else v) for k, v in costs.items()},
                     "eval_passes": plan.evals(0, steps), "startup_s": round(startup, 1)},
        "time_budget": cfg.time_budget, "notes": note, "device": device, "threads": torch.get_num_threads(),
        "plan_s": round(time.perf_counter() - t0, 1), "speed_padding_waste": round(
            1 - sum(a + b for a, b in pairs) / max(1, sum(micro_tokens)), 3) if micro_tokens else None,
    }


def _child(spec: dict) -> dict:
    """Run one row in a fresh interpreter (its memory is its own); its JSON comes back on stdout."""
    env = dict(os.environ, EMOSUM_PLAN_ROW=json.dumps(spec, ensure_ascii=False))
    proc = subprocess.run([sys.executable, "-m", "emosum.plan"], env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"row": spec["label"], "overrides": spec["over"], "error": tail}
    return json.loads(lines[-1])


def table(rows: list[dict], budget_s: float | None) -> str:
    head = [c[0] for c in COLUMNS]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['row']} | failed: {r['error']} |")
            continue
        r = {**r, "train_s": r["train_s"] / 60, "stage_s": r["stage_s"] / 60,
             "fits_budget": "-" if budget_s is None else ("yes" if r["stage_s"] <= budget_s else "no")}
        out.append("| " + " | ".join(fmt.format(r[k]) if r.get(k) is not None else "-" for _, k, fmt in COLUMNS) + " |")
    return "\n".join(out)


def main(argv=None) -> int:
    from emosum import budget, params

    if "EMOSUM_PLAN_ROW" in os.environ:  # a child: one row
        spec = json.loads(os.environ["EMOSUM_PLAN_ROW"])
        import logging

        logging.basicConfig(level=logging.WARNING)
        print(json.dumps(measure_row(spec["doc"], spec["label"], spec["over"], spec["full_length"], spec["timed"],
                                     spec["batches"]), ensure_ascii=False))
        return 0
    ap = argparse.ArgumentParser(prog="emosum-plan", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-S", "--set-param", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="a row: params.yaml with this override (several joined by ';'), as `dvc exp run -S`")
    ap.add_argument("--presets", action="store_true", help=f"rows for the presets: {', '.join(PRESETS)}")
    ap.add_argument("--preset", choices=list(PRESETS), help="the base the -S rows change (default params.yaml)")
    ap.add_argument("--budget", help="a deadline for the whole train stage: 90s, 45min, 2h")
    ap.add_argument("--full-length", action="store_true",
                    help="every input and summary at the length limits (data like the user's, 1,024-token inputs)")
    ap.add_argument("--passes", type=int, default=3, help="precision probe: timed passes per batch and precision")
    ap.add_argument("--batches", type=int, default=16, help="batches spread over the run's sizes timed for the step "
                    "time (one pass each; fewer for big models)")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--json", action="store_true", help="one JSON object per row instead of the table")
    args = ap.parse_args(argv)
    import yaml

    try:
        budget_s = budget.seconds(args.budget) if args.budget else None
        doc = yaml.safe_load(Path(args.params).read_text(encoding="utf-8"))
        rows = configurations(doc, args.sets, args.presets, args.preset)
    except (OSError, ValueError, params.ParamsError) as e:
        print(f"emosum-plan: {e}", file=sys.stderr)
        return 1
    from emosum import machine

    busy = machine.busy(1.0)
    if busy:
        print(f"emosum-plan: warning: the machine is busy ({busy}); what is measured now is slower than this "
              "machine alone, and the rows will say so", file=sys.stderr, flush=True)
    out = []
    for label, over in rows:
        print(f"emosum-plan: measuring {label} ...", file=sys.stderr, flush=True)
        r = _child({"doc": doc, "label": label, "over": over, "full_length": args.full_length, "timed": args.passes,
                    "batches": args.batches})
        if budget_s is not None and "error" not in r:
            r["fits_budget"] = r["stage_s"] <= budget_s
        out.append(r)
        if args.json:
            print(json.dumps(r, ensure_ascii=False), flush=True)
    if not args.json:
        print(table(out, budget_s))
        for r in out:
            for n in r.get("notes") or []:
                print(f"- {r['row']}: {n}")
    return 1 if any("error" in r for r in out) else 0


if __name__ == "__main__":
    sys.exit(main())
