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


def test_copy_bias_rewards_only_the_token_that_continues_a_span_of_the_input():
    import torch

    from emosum.generation import copy_bias_processor

    src = torch.tensor([[5, 6, 7, 1, 0], [8, 6, 9, 6, 1]])  # two examples (eos 1, pad 0)
    proc = copy_bias_processor(2.0, src, {0, 1, 2}, context=1)
    decoded = torch.tensor([[0, 6], [0, 7], [0, 6], [0, 3]])  # 2 beams each, example-major rows
    out = proc(decoded, torch.zeros(4, 12))
    assert torch.allclose(out.exp().sum(dim=1), torch.ones(4))  # still log-probabilities (renormalised)
    out = out - out.min(dim=1, keepdim=True).values  # the bonus: what a token gained over one with none
    bonus = {r: {i: round(v, 4) for i, v in enumerate(out[r].tolist()) if v} for r in range(4)}
    assert bonus[0] == {7: 2.0}  # example 0 wrote 6: its input continues 6 -> 7
    assert bonus[1] == {}  # 7 is followed by eos: no bonus for ending (special tokens never get one)
    assert bonus[2] == {9: 2.0}  # example 1: 6 -> 9, and 6 -> eos gets none
    assert bonus[3] == {}  # a token the input does not hold
    # with context 3, each matching token before the last adds a third of the bias
    proc = copy_bias_processor(3.0, torch.tensor([[4, 5, 6, 7, 9, 6, 8, 1]]), {0, 1}, context=3)
    gained = lambda written: {i: round(v, 4) for i, v in enumerate(  # noqa: E731
        (lambda o: (o - o.min()).tolist())(proc(torch.tensor([written]), torch.zeros(1, 12))[0])) if v}
    assert gained([0, 3, 6]) == {7: 1.0, 8: 1.0}  # 6 alone: either follower
    for written, want in (([0, 5, 6], {7: 2.0, 8: 1.0}), ([0, 4, 5, 6], {7: 3.0, 8: 1.0}), ([0, 9, 6], {7: 1.0, 8: 2.0})):
        assert gained(written) == want, written


def test_a_strong_copy_bias_makes_generation_continue_the_inputs_span():
    import torch
    from transformers import LogitsProcessorList, MT5Config, MT5ForConditionalGeneration

    from emosum import params
    from emosum.generation import copy_bias_processor

    torch.manual_seed(0)
    model = MT5ForConditionalGeneration(MT5Config(
        vocab_size=64, d_model=32, d_ff=64, d_kv=16, num_heads=2, num_layers=2, num_decoder_layers=2,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)).eval()
    with torch.no_grad():  # log-probabilities a few nats apart, as a model's choices between characters are
        model.lm_head.weight.mul_(0.05)
    src = torch.stack([torch.randperm(61)[:12] + 3 for _ in range(3)])  # distinct tokens: one span each
    start = torch.tensor([[0, int(src[r, 3])] for r in range(3)])  # decoding starts after input token 3
    kw = dict(input_ids=src, attention_mask=torch.ones_like(src), decoder_input_ids=start, num_beams=2,
              max_new_tokens=5, do_sample=False)
    with torch.inference_mode():
        plain = model.generate(**kw)[:, 2:]
        biased = model.generate(**kw, logits_processor=LogitsProcessorList(
            [copy_bias_processor(20.0, src, {0, 1}, context=1)]))[:, 2:]
    assert biased.tolist() == src[:, 4:9].tolist()  # the span continued, token by token
    assert plain.tolist() != src[:, 4:9].tolist()  # which the model alone does not do
    assert params.parse_section("evaluate", {}).copy_bias == 0.0  # off unless asked for


def test_punctuation_ids_are_the_pieces_made_only_of_punctuation_and_spaces():
    from emosum.generation import punctuation_ids

    class Tok:  # the one method punctuation_ids reads
        def get_vocab(self):
            return {"，": 5, "。": 6, "\u2581": 7, "好": 8, "\u2581好": 9, "!?": 10, "、": 11, "了。": 12, "1": 13}

    assert punctuation_ids(Tok()) == {5, 6, 7, 10, 11}  # a piece with a character in it is copyable


def test_punctuation_ids_include_the_bytes_of_ascii_punctuation():
    """A byte-fallback tokenizer without a `.` piece writes CSL's `.` as <0x2E>: a copy must stop
    there too; the first byte of a multi-byte character (、 is E3 80 81) and letters' bytes do not."""
    from emosum.generation import punctuation_ids

    class Tok:
        def get_vocab(self):
            return {"<0x2E>": 3, "<0x2C>": 4, "<0x20>": 5, "<0x41>": 6, "<0x31>": 7, "<0xE3>": 8, "<0x80>": 9,
                    "。": 10, "<0x2e>": 11}

    assert punctuation_ids(Tok()) == {3, 4, 5, 10, 11}
