"""Batched generation shared by the evaluate stage and the `summarize` command."""
from __future__ import annotations

from emosum import hf, machine, params


def beam_cache(model, num_beams: int):
    """A cache for `model.generate(cache=...)` whose beam search leaves the cross-attention cache alone.

    transformers' EncoderDecoderCache reorders the cross-attention keys/values at every beam-search
    step, though the rows of one example's beams all hold the same encoder states (so the reorder is
    a copy that changes nothing). At batch 32 x 4 beams x 128 source tokens that copy is 134 MB per
    step; at batch 64 it doubled the evaluation time (6.76 s against 3.80 s for 100 examples,
    measured). OpenNMT and fairseq2 skip it for the same reason. Hand-written because transformers
    has no switch for it; the check below falls back to the full reorder if a beam ever moves across
    examples, so outputs stay identical (tested).
    """
    import torch
    from transformers import DynamicCache, EncoderDecoderCache

    class SharedCrossAttentionCache(EncoderDecoderCache):
        def reorder_cache(self, beam_idx: torch.LongTensor):
            self.self_attention_cache.reorder_cache(beam_idx)
            rows = torch.arange(beam_idx.shape[0], device=beam_idx.device)
            if not torch.equal(torch.div(beam_idx, num_beams, rounding_mode="floor"),
                               torch.div(rows, num_beams, rounding_mode="floor")):
                self.cross_attention_cache.reorder_cache(beam_idx)

    config = model.config.get_text_config(decoder=True)
    return SharedCrossAttentionCache(DynamicCache(config=config), DynamicCache(config=config))


def max_new_tokens(model, cfg) -> int:
    """evaluate.max_new_tokens, or with `auto` the longest training summary that the train stage
    saved in the model's generation_config.json (the model never learned to write longer)."""
    if cfg.max_new_tokens != "auto":
        return cfg.max_new_tokens
    n = model.generation_config.max_new_tokens
    if not n:  # a params error, so evaluate and `summarize` report it in one line
        raise params.ParamsError(
            f"evaluate.max_new_tokens: auto needs max_new_tokens in {model.name_or_path or 'the model'}"
            "/generation_config.json, which the train stage writes; this model has none: set "
            "evaluate.max_new_tokens (or --max-new-tokens) to a number")
    return n


def generate(model, tok, input_ids: list[list[int]], cfg, desc="generate", progress: bool = True,
             stats: dict | None = None) -> list[str]:
    """Batched generation over length-sorted inputs; returns texts in the input order.

    `stats`, if given, gets `decoder_steps`: the decoder steps run, summed over the examples of each
    batch (a batch runs until its longest output ends, so batching adds idle steps; the benchmark
    compares this with the one-by-one count)."""
    import torch
    from tqdm.auto import tqdm

    new_tokens = max_new_tokens(model, cfg)
    order = sorted(range(len(input_ids)), key=lambda i: -len(input_ids[i]))
    out: list[str] = [""] * len(input_ids)
    device = next(model.parameters()).device
    use_bf16 = hf.bf16_available()
    model.eval()
    with tqdm(total=len(order), desc=desc, unit="ex", disable=not progress) as bar:
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            batch = tok.pad({"input_ids": [input_ids[i] for i in idx]}, return_tensors="pt").to(device)
            extra = {"cache": beam_cache(model, cfg.num_beams)} if cfg.num_beams > 1 else {}
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                gen = model.generate(**batch, num_beams=cfg.num_beams, max_new_tokens=new_tokens,
                                     length_penalty=cfg.length_penalty,
                                     no_repeat_ngram_size=cfg.no_repeat_ngram_size, **extra)
            if stats is not None:
                stats["decoder_steps"] = stats.get("decoder_steps", 0) + len(idx) * (gen.shape[1] - 1)
            for i, text in zip(idx, tok.batch_decode(gen, skip_special_tokens=True)):
                out[i] = text.strip()
            bar.update(len(idx))
            machine.rebalance()  # another emosum run started or ended: take the new share of the cores
    return out
