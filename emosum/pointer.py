"""mT5 with a copy head: a pointer-generator (See et al., 2017, "Get To The Point") on mT5.

Why: an mT5 trained from scratch for minutes on 2 CPU cores learns the summary's shape and the
feeling but does not learn to copy: it writes a frame it remembers and fills it from memory
(`同桌把我的秘密告诉了全班` -> `同事把我的秘密告诉了别人`; 8% of test causes exact after the fast
preset's 1,256 steps, docs/default-model.md). To copy through the vocabulary, the decoder must find the input
position, carry that token's identity through its layers and map it back onto the output
embedding, for every one of thousands of characters. A pointer-generator copies directly: at each
step one attention over the encoder's states gives a distribution over input positions, its mass
goes to the tokens at those positions, and a gate mixes it with the vocabulary distribution:

    P(w) = g * P_vocab(w) + (1 - g) * sum of the copy attention over the positions holding w

so the model has only to learn *where* to look (the position after the one it just copied) and
*when* to copy (the cause) or to write (`作者因`, `感到` + the feeling). A character never seen in
training is copied as easily as a common one.

Hand-written because neither transformers nor another maintained library ships a copy head for
T5/mT5 (transformers' pointer-style models are retrieval ones). The class is a subclass of
`MT5ForConditionalGeneration`: the same encoder, decoder, tokenizer, Trainer, `generate`, beam
search and logits processors; `save_pretrained` writes its extra layers (query, key, gate, the
continuation weight and, with several pointer heads, their mix) into the same
safetensors file, and `from_pretrained` reads them back (its config's model_type is registered
with transformers' Auto classes by `register()`). It also starts from a plain mT5 checkpoint
(`MT5PointerGenerator.from_mt5`): the copy layers start fresh, the rest is the checkpoint's.

`logits` are the mixture's log-probabilities (they already sum to one, so the log_softmax that
beam search applies leaves them unchanged), and the loss is their negative log-likelihood.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSeq2SeqLM, MT5Config, MT5ForConditionalGeneration
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput

MODEL_TYPE = "mt5_pointer"
# Start of the continuation weight. As a lone scalar it moved about the learning rate a step, so its
# start decided it: on the toy copy task of tests/test_pointer.py (seed 0, 150 and 250 steps),
# sequences of never-seen tokens were copied exactly 12-25% of the time from 1.0, 42-46% from 3.0,
# 50-67% from 5.0. Computed from the decoder state (as now) it learns faster and the start matters
# less (42-50%, 33-54%, 62%): 3 is not tuned further; the demo runs of docs/default-model.md used it.
CONTINUE_INIT = 3.0
# The shortest run of summary tokens found in the input that counts as a copy for the alignment
# loss: one or two tokens match by chance (我, 了, 感到), a run of three is a copied phrase.
ALIGN_MIN_RUN = 3
# Input positions past this share the copy keys' last position buckets (log-spaced, as T5's own)
POSITION_MAX_DISTANCE = 128


# The run scores' scale. Adam moves a parameter by about the learning rate a step whatever its
# gradient, so a scalar score learnt at 1e-3 for 942 steps stays under one logit: the default's runs
# ended at 0.2-0.25, every row at that cap, the run of 1 after the first 弟 and after the second
# alike (2026-12-08). Scaled by 10 they can reach the few logits that outvote the pointer's content
# scores. Models saved before copy_leftmost keep 1.
RUN_SCALE = {False: 1.0, True: 10.0}


@dataclass
class PointerOutput(Seq2SeqLMOutput):
    """Seq2SeqLMOutput plus the alignment loss (summed over the aligned tokens, times its weight),
    present only in training with model.copy_alignment > 0; token_mean_loss adds it."""
    copy_alignment_loss: torch.FloatTensor | None = None
    # the feeling tags' loss (summed over the tagged input tokens, times its weight), present only in
    # training with a feeling head (add_feeling_head) and a batch with `feeling_tags`
    feeling_tags_loss: torch.FloatTensor | None = None


def runs_ending(match):
    """(batch, target, source) long: how many consecutive matches end at (t, j), along the
    diagonal: match[t, j] * (1 + the run ending at (t - 1, j - 1)). The longest-common-substring
    dynamic programme, one step a target token."""
    m = match.long()
    out = torch.zeros_like(m)
    for t in range(m.shape[1]):
        prev = nn.functional.pad(out[:, t - 1, :-1], (1, 0)) if t else torch.zeros_like(m[:, 0])
        out[:, t] = m[:, t] * (prev + 1)
    return out


def matched_runs(source_ids, history_ids, max_run: int):
    """(batch, steps, source) long: after each step t (history_ids[:, t] just written), for each input
    position j, how many of the tokens written up to t the input holds right before j:
    the largest k <= max_run with source[j-k:j] == history[t-k+1:t+1]; 0 where source[j-1] is not
    the token just written.

    Why: the continuation weight marks the position after *every* input position holding the token
    just written, so in `被姑姑骗走了` or `涨了711块`, after the first 姑 or 1 both the second one and
    the character after it were marked alike, and the model wrote 姑 or 1 once (7 / 21 of the
    test / held-out causes the position-keyed model missed, 2026-12-07). The run tells them apart:
    `被姑` matches two tokens before the second 姑, one before 骗. Computed from the tokens written
    (runs_ending) rather than from where the pointer pointed, so generation needs no state beyond
    the ids it keeps."""
    ending = runs_ending(history_ids[:, :, None] == source_ids[:, None, :])   # runs ending *at* j
    return nn.functional.pad(ending[:, :, :-1], (1, 0)).clamp_max(max_run)    # ... before j


def shadowed_runs(runs):
    """(batch, steps, source) bool: a position whose run (matched_runs) an earlier input position
    matches or beats, i.e. not the leftmost place the tokens just written continue.

    Why: a span that starts the guide's clause has no written token before it to match, so in
    `弟弟不肯压迫银元` after `因弟` the second 弟 and 不 both follow a run of 1 and the model wrote
    `因弟不肯` (8 of the 21 test causes the default missed, 2026-12-08: 弟弟, 爷爷, 妈妈, 心心念念).
    Copying the first place first tells them apart: the second 弟 follows the first 弟, the
    leftmost run of 1; 不 follows a run of 1 that the first 弟 already had. After `因弟弟`, 不
    follows the only run of 2. Stateless like the runs: generation needs only the ids written."""
    before = nn.functional.pad(runs.cummax(-1).values[..., :-1], (1, 0))   # the best run left of j
    return (runs > 0) & (before >= runs)


def copy_alignment(source_ids, labels, source_mask=None, skip_ids=(), min_run: int = ALIGN_MIN_RUN):
    """The input position each summary token copies, or -1: (batch, target) long.

    A summary token is aligned where it lies in a run of at least `min_run` consecutive summary
    tokens that occurs in the input; it points at its place in the longest such run (the first
    one on a tie), so every token of a copied span points one position after the token before it.
    Hand-written (a dynamic programme over the match matrix, the longest-common-substring one)
    because the copy head is our own; it runs on the batch's tensors, no data column needed.
    """
    match = labels[:, :, None] == source_ids[:, None, :]           # (batch, target, source)
    if source_mask is not None:
        match &= source_mask[:, None, :].bool()
    for i in skip_ids:
        match &= (labels != i)[:, :, None]
    m = match.long()
    ends = runs_ending(m)          # length of the matching run ending at (t, j)
    starts = torch.zeros_like(m)   # length of the matching run starting at (t, j)
    t_len = m.shape[1]
    for t in reversed(range(t_len)):
        nxt = nn.functional.pad(starts[:, t + 1, 1:], (0, 1)) if t + 1 < t_len else torch.zeros_like(m[:, 0])
        starts[:, t] = m[:, t] * (nxt + 1)
    run = (ends + starts - 1).clamp_min(0)
    best, where = run.max(-1)   # the first position on a tie
    return torch.where(best >= min_run, where, torch.full_like(where, -1))


class MT5PointerConfig(MT5Config):
    model_type = MODEL_TYPE

    def __init__(self, copy_continuation: bool = True, copy_heads: int = 1, copy_alignment: float = 0.0,
                 copy_positions: int = 0, copy_runs: int = 0, copy_leftmost: bool = False, **kwargs):
        self.copy_continuation = copy_continuation
        self.copy_heads = copy_heads
        # buckets of a learned input-position embedding added to the copy keys (0: none, as saved
        # before 2026-12-07; MT5PointerGenerator.copy_keys)
        self.copy_positions = copy_positions
        # the longest run of just-written tokens the input holds before a position, up to this many
        # (0: none, as saved before 2026-12-07; matched_runs)
        self.copy_runs = copy_runs
        # copy_runs also scores whether an earlier position has as long a run (False: not, as saved
        # before 2026-12-08; shadowed_runs)
        self.copy_leftmost = copy_leftmost
        # weight of the supervised alignment loss in training (0: off; MT5PointerGenerator.alignment_loss)
        self.copy_alignment = copy_alignment
        super().__init__(**kwargs)


class MT5PointerGenerator(MT5ForConditionalGeneration):
    config_class = MT5PointerConfig

    def __init__(self, config: MT5Config):
        super().__init__(config)
        d = config.d_model
        heads = getattr(config, "copy_heads", 1)
        if heads < 1 or d % heads:
            raise ValueError(f"model.copy_heads: {heads} must divide model d_model ({d}) evenly: "
                             f"each pointer head gets d_model / copy_heads dimensions; use one of "
                             f"{[h for h in range(1, 9) if d % h == 0]}")
        self.copy_query = nn.Linear(d, d, bias=False)   # from the decoder's last state
        self.copy_key = nn.Linear(d, d, bias=False)     # from the encoder's last states
        self.copy_gate = nn.Linear(2 * d, 1)            # [decoder state; copy context] -> write or copy
        # several pointer heads, mixed per step by weights from the decoder state
        self.copy_head_mix = nn.Linear(d, heads) if heads > 1 else None
        # a learned weight on "the input position after one holding the token just written"
        self.copy_continue = nn.Linear(d, 1) if getattr(config, "copy_continuation", False) else None
        positions = getattr(config, "copy_positions", 0)
        self.copy_position = nn.Embedding(positions, d) if positions else None
        runs = getattr(config, "copy_runs", 0)
        # a learned score per run length (row 0, no run, fixed at zero); with copy_leftmost a second
        # set of rows for runs an earlier position matches too (shadowed_runs)
        self.copy_leftmost = bool(runs and getattr(config, "copy_leftmost", False))
        self.copy_run = nn.Embedding((runs + 1) * (2 if self.copy_leftmost else 1), 1, padding_idx=0) if runs else None
        # with copy_leftmost, how much the runs count at each step, from the decoder's state: a run
        # continues a span being copied, but after `感到` the runs point at the text's own `感到很…`,
        # while the feeling to write is the hint's (the ungated runs named 10 more test feelings wrong)
        self.copy_run_gate = nn.Linear(d, 1) if self.copy_leftmost else None
        self._init_copy_head()

    def _init_copy_head(self) -> None:
        d = self.config.d_model
        with torch.no_grad():
            self.copy_query.weight.normal_(0.0, d ** -0.5)
            self.copy_key.weight.normal_(0.0, d ** -0.5)
            self.copy_gate.weight.zero_()   # starts at an even mix: g = 0.5 for every token
            self.copy_gate.bias.zero_()
            if self.copy_head_mix is not None:
                self.copy_head_mix.weight.normal_(0.0, d ** -0.5)
                self.copy_head_mix.bias.zero_()
            if self.copy_continue is not None:
                self.copy_continue.weight.zero_()
                self.copy_continue.bias.fill_(CONTINUE_INIT)
            if self.copy_position is not None:
                self.copy_position.weight.zero_()   # starts as no position at all: the content decides
            if self.copy_run is not None:
                self.copy_run.weight.zero_()   # starts as the plain continuation weight alone
            if self.copy_run_gate is not None:
                self.copy_run_gate.weight.zero_()   # starts counting the runs at every step alike
                self.copy_run_gate.bias.fill_(1.0)

    def _init_weights(self, module):
        super()._init_weights(module)
        if module is self:  # from_pretrained initialises what a checkpoint lacks (a plain mT5's)
            self._init_copy_head()

    @classmethod
    def from_mt5(cls, model: MT5ForConditionalGeneration, copy_heads: int = 1, **copy) -> "MT5PointerGenerator":
        """This mT5 (its weights copied) with a fresh copy head (`copy`: more of MT5PointerConfig's
        copy_* settings).

        An untied LM head (google/mt5-*: its own output matrix) stays untied. transformers 5 loads
        such a checkpoint untied while its config still reads tie_word_embeddings: true, and a
        model built from that config ties the two: loading the state dict into it then wrote the
        head's values over the input embeddings (caught by tests/test_checkpoint.py)."""
        tied = model.lm_head.weight.data_ptr() == model.shared.weight.data_ptr()
        config = MT5PointerConfig(**{**model.config.to_diff_dict(), "copy_heads": copy_heads, **copy,
                                     "tie_word_embeddings": tied})
        out = cls(config)
        if not tied and out.lm_head.weight.data_ptr() == out.shared.weight.data_ptr():
            out.lm_head.weight = nn.Parameter(out.lm_head.weight.detach().clone())
        missing, unexpected = out.load_state_dict(model.state_dict(), strict=False)
        assert not unexpected and all(k.startswith("copy_") for k in missing), (missing, unexpected)
        out.generation_config = model.generation_config
        return out

    def copy_keys(self, encoder_states):
        """The pointer's key of each input position: from the encoder's state and, with
        config.copy_positions, a learned embedding of the position itself.

        Why: mT5 has relative position biases only, so an encoder state does not say where in the
        input it is, and the pointer found the cause's first character by content alone. The
        guide (tokenize.guide) puts the clause holding the cause at the very start of the input,
        yet the aligned default copied `航天器不肯咳嗽队友` (positions 0-8) as `队友`: its first
        step pointed at a person word, where most training causes start. The buckets are T5's
        (exact for the first half, log-spaced up to POSITION_MAX_DISTANCE)."""
        keys = self.copy_key(encoder_states)
        if self.copy_position is not None:
            from transformers.models.mt5.modeling_mt5 import MT5Attention

            where = torch.arange(encoder_states.shape[1], device=encoder_states.device)
            bucket = MT5Attention._relative_position_bucket(-where, bidirectional=False,
                                                            num_buckets=self.copy_position.num_embeddings,
                                                            max_distance=POSITION_MAX_DISTANCE)
            keys = keys + self.copy_position(bucket).to(keys.dtype)
        return keys

    def copy_distribution(self, decoder_states, encoder_states, encoder_mask, source_ids, previous_ids=None,
                          return_attention=False, history_ids=None):
        """log P(w) of the mixture, and the gate g (the share written from the vocabulary); with
        return_attention, also the copy attention over input positions (batch, target, source).
        previous_ids: the decoder's input ids (the token written before each step); history_ids:
        every token written so far, where previous_ids are the last few only (generation's steps)."""
        heads = self.copy_head_mix.out_features if self.copy_head_mix is not None else 1
        b, t, d = decoder_states.shape
        q = self.copy_query(decoder_states).float().view(b, t, heads, d // heads).transpose(1, 2)
        k = self.copy_keys(encoder_states).float().view(b, -1, heads, d // heads).transpose(1, 2)
        scores = q @ k.transpose(2, 3) / math.sqrt(d // heads)   # (batch, heads, target, source)
        if self.copy_continue is not None and previous_ids is not None:
            # CopyNet's "selective read" (Gu et al., 2016) made stateless: the position after an input
            # position holding the token just written continues a span. A copy is a chain of such
            # steps, and the decoder alone learns that chaining slowly (docs/default-model.md). With a key-value
            # cache, generate passes only the last token: exactly the one needed.
            before = nn.functional.pad(source_ids[:, :-1], (1, 0), value=-1)   # before[:, j] = source[:, j - 1]
            follows = before[:, None, :] == previous_ids[:, :, None]
            scores = scores + (self.copy_continue(decoder_states).float() * follows)[:, None]
        if self.copy_run is not None and previous_ids is not None:
            history = previous_ids if history_ids is None else history_ids
            longest = self.config.copy_runs
            runs = matched_runs(source_ids, history, longest)[:, -t:]
            if self.copy_leftmost:
                runs = runs + (longest + 1) * shadowed_runs(runs).long()
            run_scores = RUN_SCALE[self.copy_leftmost] * self.copy_run(runs).squeeze(-1).float()
            if self.copy_run_gate is not None:
                run_scores = run_scores * self.copy_run_gate(decoder_states).float()
            scores = scores + run_scores[:, None]
        if encoder_mask is not None:
            scores = scores.masked_fill(encoder_mask[:, None, None, :] == 0, torch.finfo(scores.dtype).min)
        attn = scores.softmax(-1)
        if self.copy_head_mix is None:
            attn = attn[:, 0]
        else:
            mix = self.copy_head_mix(decoder_states).float().softmax(-1)   # (batch, target, heads)
            attn = (attn * mix.transpose(1, 2)[..., None]).sum(1)
        context = attn @ encoder_states.float()
        gate = self.copy_gate(torch.cat([decoder_states.float(), context], -1).to(self.copy_gate.weight.dtype)).float()
        lm_logits = self.lm_head(decoder_states).float()
        copy = torch.zeros_like(lm_logits).scatter_add_(
            2, source_ids[:, None, :].expand(-1, attn.shape[1], -1), attn)
        # log(g * P_vocab + (1 - g) * P_copy), in log space: tokens absent from the input have
        # P_copy = 0, and the vocabulary term alone keeps their log-probability finite
        logp = torch.logaddexp(nn.functional.logsigmoid(gate) + lm_logits.log_softmax(-1),
                               nn.functional.logsigmoid(-gate) + copy.clamp_min(1e-30).log())
        if return_attention:
            return logp, torch.sigmoid(gate), attn
        return logp, torch.sigmoid(gate)

    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None,
                decoder_attention_mask=None, encoder_outputs=None, cache=None, inputs_embeds=None,
                decoder_inputs_embeds=None, labels=None, use_cache=None, source_ids=None,
                decoder_history_ids=None, return_dict=None, **kwargs) -> Seq2SeqLMOutput:
        """As MT5ForConditionalGeneration.forward; `source_ids` are the encoder's input ids where
        `input_ids` is not given (generation's decoding steps: `generate` passes them on);
        `decoder_history_ids`, every token written so far where `decoder_input_ids` holds only the
        last (generation with a cache; prepare_inputs_for_generation passes them)."""
        feeling_tags = kwargs.pop("feeling_tags", None)  # training batches with train.feeling_tags only
        src = input_ids if input_ids is not None else source_ids
        if src is None:
            raise ValueError("MT5PointerGenerator needs the input ids (input_ids or source_ids) to copy from")
        if encoder_outputs is None:
            encoder_outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                           inputs_embeds=inputs_embeds, **kwargs)
        elif not isinstance(encoder_outputs, BaseModelOutput):
            encoder_outputs = BaseModelOutput(last_hidden_state=encoder_outputs[0])
        encoder_states = encoder_outputs[0]
        if labels is not None and decoder_input_ids is None and decoder_inputs_embeds is None:
            decoder_input_ids = self._shift_right(labels)
        decoder_outputs = self.decoder(input_ids=decoder_input_ids, attention_mask=decoder_attention_mask,
                                       inputs_embeds=decoder_inputs_embeds, cache=cache,
                                       encoder_hidden_states=encoder_states,
                                       encoder_attention_mask=attention_mask, use_cache=use_cache, **kwargs)
        logp, _, attn = self.copy_distribution(decoder_outputs[0], encoder_states, attention_mask, src,
                                               decoder_input_ids, return_attention=True,
                                               history_ids=decoder_history_ids)
        loss = None
        if labels is not None:
            loss = nn.functional.nll_loss(logp.view(-1, logp.shape[-1]), labels.to(logp.device).view(-1),
                                          ignore_index=-100)
        align = None
        if getattr(self.config, "copy_alignment", 0.0) and self.training:
            align = self.alignment_loss(attn, src, attention_mask, labels, decoder_input_ids)
        tagged = None
        if feeling_tags is not None and self.training and getattr(self, "feeling_head", None) is not None:
            tagged = self.feeling_tags_weight * nn.functional.cross_entropy(
                self.feeling_head(encoder_states).float().flatten(0, 1), feeling_tags.to(encoder_states.device).view(-1),
                ignore_index=-100, reduction="sum")
        return PointerOutput(loss=loss, logits=logp, cache=decoder_outputs.cache, copy_alignment_loss=align,
                             feeling_tags_loss=tagged,
                               decoder_hidden_states=decoder_outputs.hidden_states,
                               decoder_attentions=decoder_outputs.attentions,
                               cross_attentions=decoder_outputs.cross_attentions,
                               encoder_last_hidden_state=encoder_states,
                               encoder_hidden_states=encoder_outputs.hidden_states,
                               encoder_attentions=encoder_outputs.attentions)

    def add_feeling_head(self, weight: float) -> None:
        """A linear head on the encoder's last states that tags each input token of a feeling word as
        the author's (1) or not (0), trained with `weight` times its summed cross-entropy against
        the batch's `feeling_tags` (emosum/augment.py FeelingTags: why). A training aid:
        drop_feeling_head() removes it before the model is saved."""
        self.feeling_head = nn.Linear(self.config.d_model, 2)
        self.feeling_tags_weight = weight

    def drop_feeling_head(self) -> None:
        if getattr(self, "feeling_head", None) is not None:
            del self.feeling_head

    def alignment_loss(self, attn, source_ids, source_mask, labels, decoder_input_ids):
        """The copy attention's negative log-likelihood of the aligned input positions, summed over
        the aligned summary tokens, times model.copy_alignment.

        Supervised attention (Garg et al., 2019, "Jointly Learning to Align and Translate"): the
        mixture's likelihood rewards pointing at *any* input position that holds the next token,
        and a cause's first characters (我, 在, 被, 小...) occur all over a text, so the pointer learnt
        to start late or on the wrong clause (docs/default-model.md "Supervised copying"). This also tells it the
        one position it copies from: its place in the longest run the summary shares with the input
        (copy_alignment). Training only: the validation loss stays the summary's likelihood.
        """
        if labels is None:
            # the Trainer pops the labels when a compute_loss_func takes the loss (ours does): the
            # summary is the decoder's input moved one step left (its last token is eos or padding,
            # neither ever aligned)
            labels = nn.functional.pad(decoder_input_ids[:, 1:], (0, 1), value=self.config.pad_token_id)
        skip = [i for i in (self.config.eos_token_id, self.config.pad_token_id) if i is not None]
        where = copy_alignment(source_ids, labels.clamp_min(-1), source_mask, skip)
        picked = attn.gather(-1, where.clamp_min(0)[..., None]).squeeze(-1)
        return self.config.copy_alignment * -(picked.clamp_min(1e-30).log() * (where >= 0)).sum()

    def prepare_inputs_for_generation(self, input_ids, *args, **kwargs):
        inputs = super().prepare_inputs_for_generation(input_ids, *args, **kwargs)
        if self.copy_run is not None:  # the runs need every token written, not only the last
            inputs["decoder_history_ids"] = input_ids
        return inputs

    def _prepare_text_encoder_decoder_kwargs_for_generation(self, inputs_tensor, model_kwargs,
                                                           model_input_name, generation_config):
        # generate encodes once and then calls forward with the encoder's states only: keep the
        # ids to copy from beside them (generate expands every tensor kwarg per beam)
        model_kwargs = super()._prepare_text_encoder_decoder_kwargs_for_generation(
            inputs_tensor, model_kwargs, model_input_name, generation_config)
        model_kwargs["source_ids"] = inputs_tensor
        return model_kwargs


_registered = False


def register() -> None:
    """Lets AutoConfig / AutoModelForSeq2SeqLM load a saved MT5PointerGenerator (idempotent)."""
    global _registered
    if not _registered:
        AutoConfig.register(MODEL_TYPE, MT5PointerConfig)
        AutoModelForSeq2SeqLM.register(MT5PointerConfig, MT5PointerGenerator)
        _registered = True


register()
