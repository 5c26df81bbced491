"""How fast does a small mT5 from scratch learn to find and copy the cause? A probe outside the
pipeline, for choosing the default recipe: demo pairs -> SentencePiece -> a plain training loop
(AdamW, linear decay, bf16 autocast where the CPU has it) -> greedy summaries of held-back pairs,
scored for the exact cause, half its characters and the emotion every `--every` steps.

    python bench/copy_probe.py --steps 1200 --free-share 0.5 --piece 1
    python bench/copy_probe.py --steps 1200 --lr 3e-3 --d-model 128 --layers 4

Run it alone: it times nothing, but two trainings on 2 cores slow each other down.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    import torch

    from emosum import demo_data, facts, hf, params
    from stages.tokenize import train_sentencepiece

    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--every", type=int, default=300)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0, help="init and batch order (the data stay the same)")
    ap.add_argument("--wd", type=float, default=0.0, help="AdamW weight decay, on every parameter (train.weight_decay, params.yaml 0.1, spares norms and biases)")
    ap.add_argument("--piece", type=int, default=1)
    ap.add_argument("--free-share", type=float, default=demo_data.FREE_SHARE)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--d-ff", type=int, default=512)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--decoder-layers", type=int, default=None, help="default: --layers")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--d-kv", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--only-copy", action="store_true", help="train on the auxiliary copy pairs alone")
    ap.add_argument("--emb-std", type=float, default=0.5,
                    help="init std of the embeddings and the LM head (model.scratch.embedding_std; params.yaml: 0.5)")
    ap.add_argument("--copy-head", action="store_true", help="mT5 with a copy head (model.copy_head; emosum/pointer.py)")
    ap.add_argument("--no-continuation", action="store_true", help="with --copy-head: without the learned continuation weight")
    ap.add_argument("--copy-share", type=float, default=0.0,
                    help="add this many auxiliary pairs per training pair: '复述：' + a clause -> the clause")
    args = ap.parse_args()
    demo_data.FREE_SHARE = args.free_share
    torch.manual_seed(args.seed)
    rng0 = random.Random(1)
    rows = demo_data.generate(args.n + 150, seed=0, heldout=150)
    train, test, held = rows[:args.n], rows[args.n:args.n + 150], rows[args.n + 150:]
    tok = train_sentencepiece([r["text"] for r in train] + [r["summary"] for r in train], 8000,
                              Path(tempfile.mkdtemp()), args.piece, 0.9995, True)
    enc = lambda rs: tok([r["text"] for r in rs], truncation=True, max_length=args.max_len)["input_ids"]  # noqa: E731
    src, tgt = enc(train), tok(text_target=[r["summary"] for r in train])["input_ids"]
    if args.copy_share:
        import re
        aux = []
        for r in train:
            if rng0.random() < args.copy_share:
                parts = [c for c in re.split(r"[，。！？\n：]", r["text"]) if 4 <= len(c) <= 40]
                if parts:
                    aux.append(rng0.choice(parts))
        if args.only_copy:
            src, tgt = [], []
        src += tok(["复述：" + a for a in aux], truncation=True, max_length=args.max_len)["input_ids"]
        tgt += tok(text_target=aux)["input_ids"]
        print(f"{len(aux)} auxiliary copy pairs", flush=True)
    cfg = params.parse_section("model", {"scratch": {"d_model": args.d_model, "d_ff": args.d_ff, "d_kv": args.d_kv,
                                                     "num_heads": args.heads, "num_layers": args.layers,
                                                     "num_decoder_layers": args.decoder_layers or args.layers,
                                                     "dropout_rate": 0.0, "embedding_std": args.emb_std}})
    model = hf.scratch_model(cfg.scratch, tok, copy_head=args.copy_head)
    if args.copy_head and args.no_continuation:
        model.copy_continue, model.config.copy_continuation = None, False
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.wd)
    warm = int(0.05 * args.steps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / max(1, warm), max(0.0, (args.steps - s) / max(1, args.steps - warm))))
    rng = random.Random(args.seed)
    order = sorted(range(len(src)), key=lambda i: len(src[i]))
    batches = [order[i:i + args.batch] for i in range(0, len(order), args.batch)]

    def pad(seqs, value):
        n = max(map(len, seqs))
        return torch.tensor([s + [value] * (n - len(s)) for s in seqs])

    def evaluate(split, rs):
        model.eval()
        ids = enc(rs)
        preds = []
        with torch.no_grad():
            for i in range(0, len(ids), 50):
                b = ids[i:i + 50]
                x = pad(b, 0)
                out = model.generate(input_ids=x, attention_mask=(x != 0).long(), max_new_tokens=48, num_beams=1)
                preds += tok.batch_decode(out, skip_special_tokens=True)
        model.train()
        exact = sum(facts.normalize(r["cause"]) in facts.normalize(p) for r, p in zip(rs, preds)) / len(rs)
        half = sum(facts.char_recall(p, r["cause"]) >= 0.5 for r, p in zip(rs, preds)) / len(rs)
        emo = sum(r["emotion"] in p for r, p in zip(rs, preds)) / len(rs)
        return f"{split}: cause {exact:.0%} (half {half:.0%}) emotion {emo:.0%}", preds

    t0, step = time.perf_counter(), 0
    model.train()
    while step < args.steps:
        rng.shuffle(batches)
        for b in batches:
            x, y = pad([src[i] for i in b], 0), pad([tgt[i] for i in b], -100)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                loss = model(input_ids=x, attention_mask=(x != 0).long(), labels=y).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step(), sched.step(), opt.zero_grad()
            step += 1
            if step % 50 == 0:
                print(f"  step {step} loss {loss.item():.3f}", flush=True)
            if step % args.every == 0 or step == args.steps:
                t, p = evaluate("test", test)
                h, _ = evaluate("heldout", held)
                print(f"step {step} lr {sched.get_last_lr()[0]:.2e} loss {loss.item():.3f} {time.perf_counter() - t0:.0f}s | {t} | {h} | e.g. {p[0]}",
                      flush=True)
            if step >= args.steps:
                break


if __name__ == "__main__":
    main()
