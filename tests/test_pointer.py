"""The copy head (emosum/pointer.py): a distribution, trained through the Trainer's loss, saved and
loaded, started from a plain mT5, and copying tokens it never saw in training where a plain mT5
of the same size cannot."""
from __future__ import annotations

import pytest
import torch

from emosum import hf, pointer
from emosum.pointer import MT5PointerConfig, MT5PointerGenerator
from emosum.trainer_ext import token_mean_loss

SHAPE = dict(d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=2, num_decoder_layers=2, dropout_rate=0.0,
             pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)


def _batch():
    x = torch.tensor([[5, 6, 7, 8, 1], [9, 10, 11, 1, 0]])
    y = torch.tensor([[6, 7, 8, 1], [10, 11, 1, -100]])
    return x, (x != 0).long(), y


@pytest.mark.parametrize("heads", [1, 4])
def test_the_mixture_is_a_distribution_and_the_trainers_loss_is_the_models(heads):
    torch.manual_seed(0)
    model = MT5PointerGenerator(MT5PointerConfig(vocab_size=40, copy_heads=heads, **SHAPE))
    x, mask, y = _batch()
    out = model(input_ids=x, attention_mask=mask, labels=y)
    assert torch.allclose(out.logits.exp().sum(-1), torch.ones(2, 4), atol=1e-5)
    # the train stage's compute_loss_func takes a cross-entropy of the logits: over log-probabilities
    # that already sum to one it is their negative log-likelihood, the model's own loss
    assert torch.allclose(token_mean_loss(out, y), out.loss, atol=1e-6)
    out.loss.backward()
    names = ["copy_query.weight", "copy_key.weight", "copy_gate.weight", "copy_continue.weight"]
    for name in names + (["copy_head_mix.weight"] if heads > 1 else []):
        assert model.get_parameter(name).grad.abs().sum() > 0, name


def test_pointer_heads_that_do_not_divide_d_model_are_a_clear_error():
    with pytest.raises(ValueError, match=r"model.copy_heads: 3 must divide model d_model \(32\)"):
        MT5PointerGenerator(MT5PointerConfig(vocab_size=40, copy_heads=3, **SHAPE))


def test_a_fully_copying_head_puts_the_mass_on_the_input_tokens_only():
    torch.manual_seed(0)
    model = MT5PointerGenerator(MT5PointerConfig(vocab_size=40, **SHAPE)).eval()
    with torch.no_grad():
        model.copy_gate.bias.fill_(-30.0)  # g ~ 0: everything is copied
    x, mask, y = _batch()
    p = model(input_ids=x, attention_mask=mask, labels=y).logits.exp()
    assert torch.allclose(p[0][:, [5, 6, 7, 8, 1]].sum(-1), torch.ones(4), atol=1e-4)
    assert torch.allclose(p[1][:, [9, 10, 11, 1]].sum(-1), torch.ones(4), atol=1e-4)  # never the padding
    assert p[1][:, 0].max() < 1e-6


def test_saved_and_loaded_through_the_auto_classes(tmp_path):
    torch.manual_seed(0)
    model = MT5PointerGenerator(MT5PointerConfig(vocab_size=40, **SHAPE)).eval()
    model.save_pretrained(tmp_path / "m")
    loaded = hf.load_pretrained(str(tmp_path / "m"))
    assert isinstance(loaded, MT5PointerGenerator)
    x, mask, y = _batch()
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=x, attention_mask=mask, labels=y).logits,
                           model(input_ids=x, attention_mask=mask, labels=y).logits)


def test_a_plain_mt5_checkpoint_gets_a_fresh_copy_head_only_when_asked(tmp_path):
    from transformers import MT5Config, MT5ForConditionalGeneration

    torch.manual_seed(0)
    MT5ForConditionalGeneration(MT5Config(vocab_size=40, **SHAPE)).save_pretrained(tmp_path / "plain")
    plain = hf.load_pretrained(str(tmp_path / "plain"))
    assert type(plain) is MT5ForConditionalGeneration
    wrapped = hf.load_pretrained(str(tmp_path / "plain"), copy_head=True)
    assert isinstance(wrapped, MT5PointerGenerator)
    assert torch.equal(wrapped.shared.weight, plain.shared.weight)
    assert torch.equal(wrapped.decoder.block[1].layer[2].DenseReluDense.wo.weight,
                       plain.decoder.block[1].layer[2].DenseReluDense.wo.weight)
    assert wrapped.copy_gate.weight.abs().sum() == 0
    assert wrapped.copy_continue.bias.item() == pointer.CONTINUE_INIT and wrapped.copy_continue.weight.abs().sum() == 0


def test_an_untied_checkpoint_keeps_its_own_head_and_embeddings_under_a_copy_head(tmp_path):
    """google/mt5-* have an LM head of their own (tie_word_embeddings: false); the copy head must
    not tie it to the input embeddings, nor write one over the other."""
    import json

    from transformers import MT5Config, MT5ForConditionalGeneration

    torch.manual_seed(0)
    model = MT5ForConditionalGeneration(MT5Config(vocab_size=40, **SHAPE))
    model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.shared.weight) * 0.05)
    model.save_pretrained(tmp_path / "untied")
    conf = json.loads((tmp_path / "untied" / "config.json").read_text())
    (tmp_path / "untied" / "config.json").write_text(json.dumps({**conf, "tie_word_embeddings": False}))
    plain = hf.load_pretrained(str(tmp_path / "untied"))
    wrapped = hf.load_pretrained(str(tmp_path / "untied"), copy_head=True)
    assert wrapped.lm_head.weight.data_ptr() != wrapped.shared.weight.data_ptr()
    assert torch.equal(wrapped.shared.weight, plain.shared.weight)
    assert torch.equal(wrapped.lm_head.weight, plain.lm_head.weight)
    assert not torch.equal(wrapped.lm_head.weight, wrapped.shared.weight)


def _copy_task(n, lo, hi, g):
    seqs = [torch.randint(lo, hi, (int(torch.randint(3, 7, (1,), generator=g)),), generator=g).tolist()
            for _ in range(n)]
    return seqs


def _train_copier(model, steps=300, seed=0):
    """Teach `model` to repeat its input, on tokens 3..19 only."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        seqs = _copy_task(16, 3, 20, g)
        n = max(map(len, seqs)) + 1
        x = torch.tensor([s + [1] + [0] * (n - len(s) - 1) for s in seqs])
        y = torch.tensor([s + [1] + [-100] * (n - len(s) - 1) for s in seqs])
        loss = model(input_ids=x, attention_mask=(x != 0).long(), labels=y).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    return model.eval()


def _copied_share(model, lo, hi, num_beams):
    g = torch.Generator().manual_seed(99)
    seqs = _copy_task(24, lo, hi, g)
    n = max(map(len, seqs)) + 1
    x = torch.tensor([s + [1] + [0] * (n - len(s) - 1) for s in seqs])
    out = model.generate(input_ids=x, attention_mask=(x != 0).long(), num_beams=num_beams, max_new_tokens=10)
    got = [[t for t in row.tolist()[1:] if t not in (0,)] for row in out]
    return sum(o[:len(s) + 1] == s + [1] for o, s in zip(got, seqs)) / len(seqs)


def test_the_copy_head_copies_tokens_never_seen_in_training_and_a_plain_mt5_does_not():
    from transformers import MT5Config, MT5ForConditionalGeneration

    torch.manual_seed(0)
    pointer = _train_copier(MT5PointerGenerator(MT5PointerConfig(vocab_size=40, **SHAPE)))
    torch.manual_seed(0)
    plain = _train_copier(MT5ForConditionalGeneration(MT5Config(vocab_size=40, **SHAPE)))
    with torch.no_grad():
        assert _copied_share(pointer, 3, 20, 1) >= 0.8   # what it was taught
        # tokens 20..39 never occurred in training: their embeddings are as initialised, random. Whole
        # sequences copied exactly (seeds 0-2: 50%, 46%, 33% greedy), where the plain mT5 copies none
        unseen_greedy, unseen_beam = _copied_share(pointer, 20, 40, 1), _copied_share(pointer, 20, 40, 3)
        plain_unseen = _copied_share(plain, 20, 40, 1)
    assert unseen_greedy >= 0.25 and unseen_beam >= 0.25, (unseen_greedy, unseen_beam)
    assert plain_unseen <= 0.05, plain_unseen


def test_decoding_with_the_cache_gives_what_recomputing_every_step_gives():
    """With a key-value cache generate passes only the last token and no input ids: the copy head
    reads the source from the kwarg it stashed and the continuation from that one token."""
    from emosum.generation import beam_cache

    torch.manual_seed(0)
    model = MT5PointerGenerator(MT5PointerConfig(vocab_size=64, initializer_factor=5.0, **SHAPE)).eval()
    with torch.no_grad():
        model.copy_gate.bias.fill_(-1.0)   # copy and write both matter
        model.copy_continue.weight.normal_(0, 1.0)
    torch.manual_seed(1)
    ids = torch.randint(3, 64, (4, 9))
    mask = torch.ones_like(ids)
    for row, length in enumerate((9, 8, 6, 5)):
        ids[row, length:] = 0
        mask[row, length:] = 0
    for beams in (1, 3):
        kw = dict(input_ids=ids, attention_mask=mask, num_beams=beams, max_new_tokens=8, do_sample=False)
        with torch.inference_mode():
            cached = model.generate(**kw, **({"cache": beam_cache(model, beams)} if beams > 1 else {}))
            full = model.generate(**kw, use_cache=False)
        assert torch.equal(cached, full), beams
        copied = [t for row, src in zip(cached.tolist(), ids.tolist()) for t in row if t in src and t > 2]
        assert copied  # the outputs do take tokens from their inputs


def test_copy_alignment_points_each_copied_token_at_its_place_in_the_longest_shared_run():
    src = torch.tensor([[5, 6, 7, 8, 9, 10, 7, 8, 9, 11, 1, 0],
                        [4, 4, 4, 5, 6, 3, 1, 0, 0, 0, 0, 0]])
    labels = torch.tensor([[20, 7, 8, 9, 11, 21, 5, 6, 1, -100],
                           [4, 5, 6, 22, 4, 4, 1, -100, -100, -100]])
    where = pointer.copy_alignment(src, labels.clamp_min(-1), (src != 0).long(), skip_ids=[0, 1])
    # 7 8 9 11 is in the input at 6..9 (7 8 9 alone also at 2..4: the longer run wins);
    # 5 6 is a run of two: chance, not a copy; eos is never aligned
    assert where[0].tolist() == [-1, 6, 7, 8, 9, -1, -1, -1, -1, -1]
    # 4 5 6 at 2..4 (the 4 before 5, not the first 4); the lone 4 4 after it is too short
    assert where[1].tolist() == [2, 3, 4, -1, -1, -1, -1, -1, -1, -1]
    # a tie goes to the first place: the guide's copy of a clause before the text's
    twice = torch.tensor([[7, 8, 9, 3, 7, 8, 9, 1]])
    assert pointer.copy_alignment(twice, torch.tensor([[7, 8, 9, 1]]), skip_ids=[1])[0].tolist() == [0, 1, 2, -1]
    # padding never matches, even a label equal to the pad id
    assert pointer.copy_alignment(src[1:], torch.tensor([[0, 0, 0]]), (src[1:] != 0).long())[0].tolist() == [-1] * 3


def _span_task(n, g, length=12, span=4):
    """Inputs of tokens 3..9 (so a span's first token recurs all over them) with a marker (39)
    before the span to copy: the summary is that span."""
    xs, ys = [], []
    for _ in range(n):
        x = torch.randint(3, 10, (length,), generator=g)
        at = int(torch.randint(1, length - span, (1,), generator=g))
        x[at - 1] = 39
        xs.append(x.tolist() + [1])
        ys.append(x[at:at + span].tolist() + [1])
    return torch.tensor(xs), torch.tensor(ys)


def _train_and_point(model, task, steps):
    """Train on `task(32, generator)` batches for `steps` steps, then return a fresh batch of 64, the
    model's output on it (evaluation mode) and its copy attention at every step."""
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        x, y = task(32, g)
        # as the Trainer calls it with a compute_loss_func: the labels popped, the collator's decoder inputs
        out = model(input_ids=x, attention_mask=torch.ones_like(x), decoder_input_ids=model._shift_right(y))
        loss = token_mean_loss(out, y)
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    x, y = task(64, torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(input_ids=x, attention_mask=torch.ones_like(x), labels=y)
        enc = out.encoder_last_hidden_state
        states = model.decoder(input_ids=model._shift_right(y), encoder_hidden_states=enc)[0]
        _, _, attn = model.copy_distribution(states, enc, torch.ones_like(x), x, model._shift_right(y),
                                             return_attention=True)
    return x, out, attn


def _pointer_on_span_start(weight, steps=80):
    torch.manual_seed(0)
    model = MT5PointerGenerator(MT5PointerConfig(vocab_size=40, copy_alignment=weight, **SHAPE))
    x, out, attn = _train_and_point(model, _span_task, steps)
    start = (x == 39).int().argmax(-1) + 1
    assert out.copy_alignment_loss is None   # evaluation: the loss is the summary's likelihood only
    return attn[torch.arange(len(x)), 0, start].mean().item()


def test_the_alignment_loss_teaches_the_pointer_where_a_span_starts():
    """The first token of the span occurs about twice elsewhere in each input: the likelihood alone
    rewards pointing at any of them, the alignment loss at the one after the marker (seed 0, 80
    steps: 0.91 of the first step's copy attention on it with the loss, 0.32 without)."""
    with_loss, without = _pointer_on_span_start(1.0), _pointer_on_span_start(0.0)
    assert with_loss >= 0.6 and with_loss >= without + 0.3, (with_loss, without)


def test_the_trainers_loss_takes_the_alignment_term_though_it_pops_the_labels(tmp_path):
    """With a compute_loss_func the Trainer takes the labels out of the batch before calling the
    model: the alignment still comes from the decoder's inputs, in training only."""
    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments

    torch.manual_seed(0)
    model = MT5PointerGenerator(MT5PointerConfig(vocab_size=40, copy_alignment=1.0, **SHAPE))
    x, y = _span_task(4, torch.Generator().manual_seed(0))
    trainer = Seq2SeqTrainer(model=model, args=Seq2SeqTrainingArguments(str(tmp_path), report_to="none", use_cpu=True),
                             compute_loss_func=token_mean_loss)
    batch = lambda: {"input_ids": x, "attention_mask": torch.ones_like(x), "labels": y,  # noqa: E731
                     "decoder_input_ids": model._shift_right(y)}
    model.train()
    with torch.no_grad():
        trained = trainer.compute_loss(model, batch())
        model.config.copy_alignment = 0.0
        plain = trainer.compute_loss(model, batch())
        model.config.copy_alignment = 1.0
        model.eval()
        evaluated = trainer.compute_loss(model, batch())
    where = pointer.copy_alignment(x, y, skip_ids=[0, 1])
    assert (where >= 0).sum() >= 4 * 3            # each summary's span is a run of 4 in its input
    assert trained > plain + 0.1 and torch.isclose(evaluated, plain), (trained, plain, evaluated)


def test_matched_runs_tell_a_doubled_token_from_the_one_after_it():
    """`被姑姑骗`: after `因被姑` the input holds two written tokens before the second 姑, one
    before 骗; the plain continuation weight marked both alike (the model wrote 姑 once)."""
    bei, gu, pian, yin = 5, 6, 7, 8
    src = torch.tensor([[bei, gu, gu, pian, 1]])
    runs = pointer.matched_runs(src, torch.tensor([[0, yin, bei, gu]]), max_run=8)
    assert runs.shape == (1, 4, 5)
    assert runs[0, -1].tolist() == [0, 0, 2, 1, 0]   # positions after a 姑: the second 姑 (run 2), 骗 (run 1)
    assert runs[0, -2].tolist() == [0, 1, 0, 0, 0]   # after 被: the first 姑
    assert pointer.matched_runs(src, torch.tensor([[bei, gu, gu, pian]]), max_run=2)[0, -1].tolist() == [0, 0, 0, 0, 2]


def test_shadowed_runs_copy_a_doubled_token_that_starts_the_span_twice():
    """`弟弟不`, copied after `因` (not in the input): after `因弟` the second 弟 and 不 both follow
    a run of 1; only the second 弟 follows the leftmost one. After `因弟弟`, 不 follows the only run
    of 2. The same span again later in the input (the text behind the guide) is shadowed throughout."""
    di, bu, yin, comma = 5, 6, 8, 9
    src = torch.tensor([[di, di, bu, comma, di, di, bu, 1]])
    runs = pointer.matched_runs(src, torch.tensor([[0, yin, di, di]]), max_run=8)
    shadow = pointer.shadowed_runs(runs)
    assert runs[0, -2].tolist() == [0, 1, 1, 0, 0, 1, 1, 0]          # after 因弟: a tie of 1s
    assert shadow[0, -2].tolist() == [False, False, True, False, False, True, True, False]
    assert runs[0, -1].tolist() == [0, 1, 2, 0, 0, 1, 2, 0]          # after 因弟弟: 不 follows a 2
    assert shadow[0, -1].tolist() == [False, False, False, False, False, True, True, False]
    assert not shadow[runs == 0].any()


def test_copy_leftmost_scores_shadowed_runs_on_their_own_rows_and_older_configs_load_without():
    model = _copy_model(copy_leftmost=True)
    assert model.copy_run.num_embeddings == 2 * (4 + 1)
    x = torch.tensor([[5, 5, 6, 9, 5, 5, 6, 1]])   # 弟弟不，弟弟不
    y = torch.tensor([[5, 5, 6, 1]])
    model.train()
    model(input_ids=x, attention_mask=torch.ones_like(x), labels=y).loss.backward()
    grad = model.copy_run.weight.grad[:, 0]
    assert grad[0] == 0 and grad[1:5].abs().sum() > 0 and grad[5:].abs().sum() > 0   # both sets learn
    assert model.copy_run_gate.weight.grad.abs().sum() > 0   # and how much they count at each step
    assert _copy_model().copy_run.num_embeddings == 4 + 1   # copy_leftmost off: as saved before


def _copy_model(**over):
    torch.manual_seed(0)
    model = MT5PointerGenerator(MT5PointerConfig(vocab_size=40, copy_positions=8, copy_runs=4, **{**SHAPE, **over}))
    with torch.no_grad():  # trained-looking copy layers: the runs and the positions change the scores
        model.copy_run.weight[1:].normal_(0.0, 2.0)
        model.copy_position.weight.normal_(0.0, 1.0)
        model.copy_gate.bias.fill_(-2.0)
    return model.eval()


@pytest.mark.parametrize("leftmost", [False, True])
def test_generation_with_a_cache_scores_the_runs_from_every_token_written(leftmost):
    """With a key-value cache generate passes only the last token; the runs need them all
    (prepare_inputs_for_generation hands them over): the same beams with and without the cache.
    With copy_leftmost the shadow is also read across the input at each step, and the gate from
    the decoder's state of that step alone."""
    model = _copy_model(copy_leftmost=leftmost)
    if leftmost:
        with torch.no_grad():  # a gate that differs from step to step
            model.copy_run_gate.weight.normal_(0.0, 1.0)
    x = torch.tensor([[5, 6, 6, 7, 8, 6, 6, 9, 1], [9, 9, 9, 5, 6, 7, 1, 0, 0]])
    kw = dict(input_ids=x, attention_mask=(x != 0).long(), num_beams=3, max_new_tokens=10, do_sample=False,
              output_scores=True, return_dict_in_generate=True)
    cached, plain = model.generate(**kw, use_cache=True), model.generate(**kw, use_cache=False)
    assert cached.sequences.tolist() == plain.sequences.tolist()
    assert torch.allclose(cached.sequences_scores, plain.sequences_scores, atol=1e-4)


def test_copy_positions_and_runs_are_saved_and_older_checkpoints_load_without_them(tmp_path):
    model = _copy_model()
    x, mask, y = _batch()
    out = model(input_ids=x, attention_mask=mask, labels=y)
    out.loss.backward()
    for name in ("copy_position.weight", "copy_run.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name
    assert model.copy_run.weight.grad[0].abs().sum() == 0   # no run: fixed at zero
    model.save_pretrained(tmp_path / "m")
    loaded = hf.load_pretrained(str(tmp_path / "m"))
    assert torch.equal(loaded.copy_position.weight, model.copy_position.weight)
    assert torch.allclose(loaded(input_ids=x, attention_mask=mask, labels=y).logits, out.logits, atol=1e-6)
    # the keys carry the position: one encoder state repeated gets a different key at each place
    same = torch.ones(1, 5, SHAPE["d_model"])
    keys = model.copy_keys(same)
    assert not torch.allclose(keys[0, 0], keys[0, 1])
    # a long input (summarize reads any length): positions past POSITION_MAX_DISTANCE share the last bucket
    far = model.copy_keys(torch.ones(1, 3 * pointer.POSITION_MAX_DISTANCE, SHAPE["d_model"]))
    assert torch.equal(far[0, 2 * pointer.POSITION_MAX_DISTANCE], far[0, -1])
    assert not torch.allclose(far[0, 0], far[0, -1])
    old = MT5PointerGenerator(MT5PointerConfig(vocab_size=40, **SHAPE))   # as saved before copy_positions
    old.save_pretrained(tmp_path / "old")
    again = hf.load_pretrained(str(tmp_path / "old"))
    assert again.copy_position is None and again.copy_run is None


def _pointer_on_a_fixed_place(positions, at=6, steps=80):
    """Inputs of 12 tokens 3..9, the summary the four from position `at` on: the span's first token
    recurs all over the input, and only its place says which one starts the span."""
    torch.manual_seed(0)
    model = MT5PointerGenerator(MT5PointerConfig(vocab_size=40, copy_alignment=1.0, copy_positions=positions,
                                                 **SHAPE))
    def task(n, g):
        x = torch.cat([torch.randint(3, 10, (n, 12), generator=g), torch.ones(n, 1, dtype=torch.long)], 1)
        return x, torch.cat([x[:, at:at + 4], torch.ones(n, 1, dtype=torch.long)], 1)

    _, _, attn = _train_and_point(model, task, steps)
    return attn[:, 0, at].mean().item()


def test_copy_positions_let_the_pointer_find_a_place_by_where_it_is():
    """Seed 0, 80 steps: 0.975 of the first step's copy attention on position 6 with 16 position
    buckets, 0.679 without. mT5's relative positions do find some places by themselves (position 5:
    0.956 / 0.936; position 0: both near 1 after 80 steps), so the toy asks for one they do not."""
    with_positions, without = _pointer_on_a_fixed_place(16), _pointer_on_a_fixed_place(0)
    assert with_positions >= 0.9 and with_positions >= without + 0.2, (with_positions, without)
