"""Batched generation shared by the evaluate stage and the `summarize` command."""
from __future__ import annotations

from emosum import hf


def generate(model, tok, input_ids: list[list[int]], cfg, desc="generate", progress: bool = True) -> list[str]:
    """Batched generation over length-sorted inputs; returns texts in the input order."""
    import torch
    from tqdm.auto import tqdm

    order = sorted(range(len(input_ids)), key=lambda i: -len(input_ids[i]))
    out: list[str] = [""] * len(input_ids)
    device = next(model.parameters()).device
    use_bf16 = hf.bf16_available()
    model.eval()
    with tqdm(total=len(order), desc=desc, unit="ex", disable=not progress) as bar:
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
