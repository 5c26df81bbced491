"""The beam-search cache that skips reordering cross-attention states changes no output."""
from __future__ import annotations

import pytest

from emosum.generation import beam_cache


@pytest.fixture(scope="module")
def tiny_model():
    import torch
    from transformers import MT5Config, MT5ForConditionalGeneration

    torch.manual_seed(0)
    cfg = MT5Config(vocab_size=64, d_model=32, d_ff=64, d_kv=16, num_heads=2, num_layers=2,
                    num_decoder_layers=2, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
                    initializer_factor=5.0)  # large weights: the decoder's own states steer the beams
    return MT5ForConditionalGeneration(cfg).eval()


def test_shared_cross_attention_cache_gives_the_stock_beam_search_output(tiny_model):
    import torch

    torch.manual_seed(1)
    ids = torch.randint(3, 64, (5, 11))
    mask = torch.ones_like(ids)
    for row, length in enumerate((11, 11, 10, 9, 7)):  # padded rows, as length-sorted batches have
        ids[row, length:] = 0
        mask[row, length:] = 0
    kw = dict(input_ids=ids, attention_mask=mask, num_beams=3, max_new_tokens=10, do_sample=False)
    with torch.inference_mode():
        stock = tiny_model.generate(**kw)
        ours = tiny_model.generate(**kw, cache=beam_cache(tiny_model, 3))
    assert torch.equal(stock, ours)
    # control: a cache that reorders nothing changes the output, so the comparison above has teeth
    from transformers import DynamicCache, EncoderDecoderCache

    class NoReorder(EncoderDecoderCache):
        def reorder_cache(self, beam_idx):
            pass

    config = tiny_model.config
    with torch.inference_mode():
        broken = tiny_model.generate(**kw, cache=NoReorder(DynamicCache(config=config), DynamicCache(config=config)))
    assert not torch.equal(stock, broken)


def test_cross_attention_cache_is_reordered_when_a_beam_moves_to_another_example(tiny_model):
    import torch

    cache = beam_cache(tiny_model, num_beams=2)
    k = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 2, 3, 16).contiguous()  # rows 0..3 = 2 examples x 2 beams
    for layer in range(2):
        cache.self_attention_cache.update(k.clone(), k.clone(), layer)
        cache.cross_attention_cache.update(k.clone(), k.clone(), layer)
    cross = cache.cross_attention_cache
    cache.reorder_cache(torch.tensor([1, 1, 2, 3]))  # within each example: cross states left as they are
    assert cross.layers[0].keys[:, 0, 0, 0].tolist() == [0, 1, 2, 3]
    assert cache.self_attention_cache.layers[0].keys[:, 0, 0, 0].tolist() == [1, 1, 2, 3]
    cache.reorder_cache(torch.tensor([2, 0, 2, 3]))  # row 0 takes example 2's beam: full reorder
    assert cross.layers[0].keys[:, 0, 0, 0].tolist() == [2, 0, 2, 3]


def test_auto_length_needs_the_length_the_train_stage_saves(tiny_model):
    from emosum import params
    from emosum.generation import max_new_tokens

    auto = params.parse_section("evaluate", {"max_new_tokens": "auto"})
    with pytest.raises(params.ParamsError, match="set evaluate.max_new_tokens .or --max-new-tokens. to a number"):
        max_new_tokens(tiny_model, auto)  # a checkpoint not trained here: no saved length
    assert max_new_tokens(tiny_model, params.parse_section("evaluate", {"max_new_tokens": 7})) == 7
    with pytest.raises(params.ParamsError, match="max_new_tokens"):
        params.parse_section("evaluate", {"max_new_tokens": 0})
