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


def copy_bias_processor(bias: float, encoder_input_ids, no_bonus_ids, context: int = 3):
    """A LogitsProcessor adding to the log-probability of each token that continues a span of the
    input: the token after an input position holding the token just written gets bias / context, and
    as much again for each token before it that matches too, up to `context` tokens (the full bias).
    A longer match is surer evidence of a copy; with one token, a common character of the summary's
    own frame (`感到`'s 到) would pull in whatever follows it in the text (`加班到凌晨` -> `感到凌`).
    The sum is renormalised (the model's distribution times a copy prior), so beam scores stay
    log-probabilities: left unnormalised, every bonus token raised a beam's score above zero, the
    beams that copied most won whatever came after, and the feeling suffered (validation, bias 30:
    emotion 65.7% unnormalised, 70.7% renormalised; ROUGE-L 77.37 against 78.55).

    Why hand-written: transformers' own input-grounding knob, `encoder_repetition_penalty`, raises
    every input token alike (a bag of tokens), so it pulls the summary towards the input's
    characters in any order; what a summary that states the text's cause needs is the next
    character of the span it is copying (a model from scratch writes `同桌把我的秘密告诉了` and then,
    from memory, `别人` where the text says `全班`). This is the copy half of a pointer-generator
    (See et al., 2017) applied at decoding time: soft, so the model still decides where a span
    starts and ends, and 0 turns it off. `no_bonus_ids` are never the cause of a bonus nor given one:
    the special tokens (pad, eos, unk) and punctuation (generate passes both: a copied span stays within its clause,
    so where the text's clause ends the model alone decides what comes next; without that, a strong
    bias copied on through the text and never wrote the feeling).
    """
    import torch
    from transformers import LogitsProcessor

    src = encoder_input_ids
    special = torch.tensor(sorted(no_bonus_ids), device=src.device)
    nxt = src[:, 1:]  # nxt[:, i] follows src[:, i]
    # ctx[j][:, i]: the token j places before src[:, i] (-1 before the start: never matches)
    ctx = [torch.nn.functional.pad(src[:, :-1], (j, 0), value=-1)[:, :nxt.shape[1]]
           for j in range(context)]
    valid = ~torch.isin(nxt, special) & ~torch.isin(ctx[0], special)
    per_row: dict[int, tuple] = {}  # beams per example -> the tensors above, one row per beam (built once)

    class CopyContinuationBias(LogitsProcessor):
        def __call__(self, input_ids, scores):
            k = scores.shape[0] // src.shape[0]  # beams per example (rows are example-major)
            if k not in per_row:
                per_row[k] = tuple(t.repeat_interleave(k, dim=0) for t in (nxt, valid, *ctx))
            n, v, *c = per_row[k]
            match = v.clone()
            weight = torch.zeros(n.shape, dtype=scores.dtype, device=scores.device)
            for j in range(min(context, input_ids.shape[1])):  # the last j+1 tokens written match the input
                match &= c[j] == input_ids[:, -1 - j:input_ids.shape[1] - j]
                weight += match.to(scores.dtype)
            bonus = torch.zeros_like(scores).scatter_reduce(1, n, weight * (bias / context), reduce="amax")
            return torch.log_softmax(scores + bonus, dim=-1)

    return CopyContinuationBias()


def punctuation_ids(tok) -> set[int]:
    """Ids of the tokenizer's pieces made only of punctuation and spaces (，。！？ ... and ▁), and
    the byte-fallback pieces of ASCII punctuation (`<0x2E>`: a tokenizer trained on the demo has no
    piece for CSL's half-width `.`, so without them a copy ran on across the sentence's end).
    Bytes of multi-byte characters are not: `、`'s first byte starts 4,000 other characters."""
    import re
    import unicodedata

    def punct(c: str) -> bool:
        return unicodedata.category(c).startswith(("P", "Z")) or c == "\u2581"

    out = set()
    for piece, i in tok.get_vocab().items():
        byte = re.fullmatch(r"<0x([0-9A-Fa-f]{2})>", piece)
        if byte:
            if int(byte[1], 16) < 0x80 and punct(chr(int(byte[1], 16))):
                out.add(i)
        elif all(punct(c) for c in piece):
            out.add(i)
    return out


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
    if cfg.copy_bias:
        from transformers import LogitsProcessorList

        # special tokens and punctuation neither earn nor get the bonus (copy_bias_processor)
        no_bonus = {t for t in (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) if t is not None}
        no_bonus |= punctuation_ids(tok)
    model.eval()
    with tqdm(total=len(order), desc=desc, unit="ex", disable=not progress) as bar:
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            batch = tok.pad({"input_ids": [input_ids[i] for i in idx]}, return_tensors="pt").to(device)
            extra = {"cache": beam_cache(model, cfg.num_beams)} if cfg.num_beams > 1 else {}
            if cfg.copy_bias:
                extra["logits_processor"] = LogitsProcessorList(
                    [copy_bias_processor(cfg.copy_bias, batch["input_ids"], no_bonus)])
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                gen = model.generate(**batch, num_beams=cfg.num_beams, max_new_tokens=new_tokens,
                                     length_penalty=cfg.length_penalty,
                                     no_repeat_ngram_size=cfg.no_repeat_ngram_size,
                                     encoder_repetition_penalty=cfg.encoder_repetition_penalty, **extra)
            if stats is not None:
                stats["decoder_steps"] = stats.get("decoder_steps", 0) + len(idx) * (gen.shape[1] - 1)
            for i, text in zip(idx, tok.batch_decode(gen, skip_special_tokens=True)):
                out[i] = text.strip()
            bar.update(len(idx))
            machine.rebalance()  # another emosum run started or ended: take the new share of the cores
    return out
