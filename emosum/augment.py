"""Copy noise (`train.copy_noise`): the characters a training summary copies, swapped for other
characters, the same way in its input, fresh every epoch.

Why: on the demo's held-out split, whose causes begin with words training never saw (`爸爸迁移了大部`),
the most common miss was a cause started late, past its unfamiliar first word (`迁移了大部`): the
pointer had learnt *what* a cause's first characters look like (the person words most training
causes start with) as much as *where* the cause starts. Swapping a copied character for a random
one, consistently in the input and the summary, keeps every pair true (the summary still copies
its input) while its words stop being familiar, so only the place and the frame around it say
where the copy starts and ends. It is the placeholder trick of copy models (entities anonymised
as `@entity3` in the CNN/Daily Mail reading task, Hermann et al. 2015), drawn anew each time.

Which tokens: those of a summary run of at least `ALIGN_MIN_RUN` tokens found in its input (the
copy alignment's rule, emosum/pointer.py) and nowhere else in the summary (the frame and the
feeling's label stay), that are one CJK character and not among the
`PROTECT_TOP` most frequent tokens of the training inputs (我, 的, 了, 不...: the small words that
also carry the reading of the feeling, `我却`, `不是`, stay). Each such distinct token is swapped
with probability `copy_noise` for a character drawn uniformly from the vocabulary's other CJK
characters, none already in the pair. Validation, evaluation and the probes see the data as it is.

Deterministic: the draw is a function of the run's seed, the epoch and the pair's tokens, not of
any random state, so a resumed run swaps what the uninterrupted run swapped. Hand-written: the
collator of transformers has no such hook, and the swap works on token ids (no text round trip);
which tokens are copied is the copy head's own alignment (pointer.copy_alignment), one call a batch.
"""
from __future__ import annotations

import collections
import math
import zlib

import numpy as np

from emosum.pointer import ALIGN_MIN_RUN, copy_alignment

PROTECT_TOP = 100  # the most frequent training-input tokens never swapped (function words)


def _cjk(piece: str) -> bool:
    return len(piece) == 1 and "\u4e00" <= piece <= "\u9fff"


def copied_sets(sources: list[list[int]], labels: list[list[int]], min_run: int = ALIGN_MIN_RUN) -> list[set[int]]:
    """Per pair, the label ids its summary only copies: aligned by the copy alignment's rule
    (pointer.copy_alignment: inside a run of at least min_run label ids that the source holds) and
    never unaligned elsewhere in the labels (a character of the frame or the label, `因`, `感到开心`,
    that a copied cause happens to hold too, stays as it is). One call for a whole batch."""
    import torch

    def padded(rows, pad):  # pads match nothing: source -1, labels -2, no real id is negative
        out = torch.full((len(rows), max(1, *map(len, rows))), pad, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, :len(r)] = torch.as_tensor(r, dtype=torch.long)
        return out

    where = copy_alignment(padded(sources, -1), padded(labels, -2), min_run=min_run).tolist()
    return [{t for t, a in zip(lab, w) if a >= 0} - {t for t, a in zip(lab, w) if a < 0}
            for lab, w in zip(labels, where)]


def copied_ids(source: list[int], labels: list[int], min_run: int = ALIGN_MIN_RUN) -> set[int]:
    """copied_sets for one pair."""
    return copied_sets([source], [labels], min_run)[0]


class TrainingOnly:
    """What CopyNoise and LabelSwap share: they act while `active`, on training batches only, and
    know the epoch (their draws are functions of seed, epoch and pair)."""

    share: float = 0.0
    epoch: int = 0
    active: bool = False

    def callback(self):
        """Turns the swap on for training batches only: on at each epoch's start, off before each
        evaluation (validation loss stays the data's own likelihood), on again after it."""
        from transformers import TrainerCallback

        noise = self

        class Toggle(TrainerCallback):
            def on_epoch_begin(self, args, state, control, **kw):
                # state.epoch: the epoch index at an epoch's start; a run resumed mid-epoch, its fraction
                noise.epoch, noise.active = math.floor((state.epoch or 0) + 1e-9), True

            def on_step_end(self, args, state, control, **kw):
                if control.should_evaluate:
                    noise.active = False

            def on_epoch_end(self, args, state, control, **kw):
                noise.active = False

            def on_evaluate(self, args, state, control, **kw):
                noise.active = not control.should_training_stop and state.global_step < state.max_steps

        return Toggle()


class CopyNoise(TrainingOnly):
    """Swaps copied characters in training features (dicts with input_ids and labels lists)."""

    def __init__(self, tokenizer, train_input_ids, share: float, seed: int):
        self.share, self.seed, self.epoch, self.active = share, seed, 0, False
        counts = collections.Counter(i for ids in train_input_ids for i in ids)
        vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        special = set(tokenizer.all_special_ids)
        self.swappable = {i for i, p in enumerate(vocab) if _cjk(p) and i not in special}
        self.protected = {i for i, _ in counts.most_common(PROTECT_TOP)}
        self.pool = np.array(sorted(self.swappable - self.protected), dtype=np.int64)

    def swap(self, feature: dict, epoch: int, copied: set[int] | None = None) -> dict:
        """`copied`: copied_ids of the feature, if computed (the collator does it for the batch)."""
        src, lab = list(feature["input_ids"]), list(feature["labels"])
        copied = copied_ids(src, lab) if copied is None else copied
        candidates = sorted((copied & self.swappable) - self.protected)
        if not candidates or not len(self.pool):
            return feature
        key = zlib.crc32(np.asarray(src + [-1] + lab, dtype=np.int64).tobytes())
        rng = np.random.default_rng([self.seed, epoch, key])
        chosen = [c for c, u in zip(candidates, rng.random(len(candidates))) if u < self.share]
        if not chosen:
            return feature
        taken = set(src) | set(lab)
        free = self.pool[~np.isin(self.pool, list(taken))]
        if len(free) < len(chosen):
            return feature
        mapping = dict(zip(chosen, rng.choice(free, size=len(chosen), replace=False).tolist()))
        out = dict(feature)
        out["input_ids"] = [mapping.get(i, i) for i in src]
        out["labels"] = [mapping.get(i, i) for i in lab]
        return out

    def collator(self, inner):
        """`inner` (e.g. DataCollatorForSeq2Seq) with the swap applied while `active`."""
        def collate(features):
            if self.active and self.share > 0:
                copied = copied_sets([f["input_ids"] for f in features], [f["labels"] for f in features])
                features = [self.swap(f, self.epoch, c) for f, c in zip(features, copied)]
            return inner(features)
        return collate


class Lexicon:
    """A label -> wordings lexicon found in token ids: `find` matches any wording (longest first) in
    the text of ids (`_text`: one character a token, so string positions are token positions),
    `label_of` maps a wording to its label, `name` matches a label's own name (in a summary).
    Wordings a character of which is not one piece of the tokenizer are skipped (`skipped`)."""

    OTHER = "\ue000"  # stands for any id that is not one character, so string positions are token positions

    def __init__(self, tokenizer, lexicon: dict[str, list[str]]):
        import re

        vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        special = set(tokenizer.all_special_ids)
        self.chars = np.array([p if len(p) == 1 and i not in special else self.OTHER for i, p in enumerate(vocab)],
                              dtype=object)
        char_id = {p: i for i, p in enumerate(self.chars) if p != self.OTHER}
        self.labels = sorted(lexicon)
        self.ids: dict[str, list[int]] = {}  # wording -> its ids
        self.label_of: dict[str, str] = {}
        self.wordings: dict[str, list[str]] = {}
        for label in self.labels:
            for w in [label, *lexicon[label]]:
                if w and all(c in char_id for c in w) and w not in self.label_of:
                    self.ids[w], self.label_of[w] = [char_id[c] for c in w], label
                    self.wordings.setdefault(label, []).append(w)
        self.skipped = len({w for lab, ws in lexicon.items() for w in [lab, *ws] if w}) - len(self.ids)
        self.labels = [lab for lab in self.labels if lab in self.ids]  # a label whose name is not in the vocabulary: never swapped
        self.find = re.compile("|".join(re.escape(w) for w in sorted(self.ids, key=len, reverse=True))) if self.ids else None
        self.name = re.compile("|".join(re.escape(lab) for lab in sorted(self.labels, key=len, reverse=True))) \
            if self.labels else None

    def _text(self, ids: list[int]) -> str:
        return "".join(self.chars[[i if 0 <= i < len(self.chars) else 0 for i in ids]]) if ids else ""


class LabelSwap(Lexicon, TrainingOnly):
    """Label swap (`train.label_swap`): the labels a training pair's text shows (the author's
    feeling and any other one: a negated feeling, someone else's) permuted at random, each wording
    of a label in the input replaced by a wording of the label it maps to, and the label the
    summary names by the label it maps to; fresh every epoch.

    Why: the model named the feeling of 98-100% of its training posts that hold a second feeling
    (`不是生气，是失望`, `同事很开心，我却...`) and of only 54-66% of the test's: it remembered each
    training post's feeling instead of learning which of two feeling words is the author's (weight
    decay, dropout, a larger model, more such posts and recast causes did not change that;
    docs/default-model.md "The feeling beside the cause"). With the labels permuted per epoch a
    post's feeling is no longer a fact to remember: only the cue (`不是`, `我却`, the place) says
    which of the swapped wordings the summary names. Every swapped pair stays true: its summary
    names the label of the wording the author uses. Synonym replacement from a lexicon is a standard
    text augmentation (EDA, Wei and Zou 2019); here the replacement is chosen so that the label
    changes with it, consistently in the input and the summary (counterfactual augmentation,
    Kaushik et al. 2020). Hand-written for the same reasons as CopyNoise: no collator hook, token ids.

    `lexicon`: label -> its wordings (data/demo/feelings.json: the demo's training wordings only,
    none of the held-out split's). Found in the input longest first, one id per character (the
    scratch tokenizer's `max_piece_length: 1`; wordings a character of which is not one piece are
    skipped). A pair is swapped, with probability `share`, only when its summary names exactly one
    label and its input holds a wording of it; a replacement is of the same size class as the
    wording it replaces (up to 2 characters, or longer: `很火大` stays a word, `气得浑身发抖` a phrase)
    where the label has one. An input the swap lengthens past `max_length` is cut to it, its last
    token (`</s>`) kept. Deterministic like CopyNoise: (seed, epoch, the pair's tokens)."""

    def __init__(self, tokenizer, lexicon: dict[str, list[str]], share: float, seed: int, max_length: int):
        super().__init__(tokenizer, lexicon)
        self.share, self.seed, self.epoch, self.active, self.max_length = share, seed, 0, False, max_length

    @staticmethod
    def _replace(ids: list[int], spans: list[tuple[int, int, list[int]]]) -> list[int]:
        out, at = [], 0
        for start, end, new in spans:
            out += ids[at:start] + new
            at = end
        return out + ids[at:]

    def swap(self, feature: dict, epoch: int) -> dict:
        if self.find is None:
            return feature
        src, lab = list(feature["input_ids"]), list(feature["labels"])
        named = {m.group(0) for m in self.name.finditer(self._text(lab))}
        if len(named) != 1:
            return feature
        label = named.pop()
        found = list(self.find.finditer(self._text(src)))
        if not any(self.label_of[m.group(0)] == label for m in found):
            return feature
        key = zlib.crc32(np.asarray(src + [-1] + lab, dtype=np.int64).tobytes())
        rng = np.random.default_rng([self.seed, epoch, key, 1])
        if rng.random() >= self.share:
            return feature
        perm = dict(zip(self.labels, rng.permutation(self.labels).tolist()))
        pick: dict[str, str] = {}  # one replacement per distinct wording: the guide's copy and the text's agree
        for w in sorted({m.group(0) for m in found}):
            target = self.wordings[perm[self.label_of[w]]]
            same = [t for t in target if (len(t) <= 2) == (len(w) <= 2)] or target
            pick[w] = same[int(rng.integers(len(same)))]
        new_src = self._replace(src, [(m.start(), m.end(), self.ids[pick[m.group(0)]]) for m in found])
        if len(new_src) > max(self.max_length, len(src)):
            new_src = new_src[:self.max_length - 1] + [src[-1]]
        new_lab = self._replace(lab, [(m.start(), m.end(), self.ids[perm[m.group(0)]])
                                      for m in self.name.finditer(self._text(lab))])
        out = dict(feature)
        out["input_ids"], out["labels"] = new_src, new_lab
        if "attention_mask" in out:
            out["attention_mask"] = [1] * len(new_src)
        return out

    def collator(self, inner):
        def collate(features):
            if self.active and self.share > 0:
                features = [self.swap(f, self.epoch) for f in features]
            return inner(features)
        return collate


class FeelingTags(Lexicon):
    """Feeling tags (`train.feeling_tags`): for each input token of a training pair, which feeling
    word is the author's, a target for a small head on the encoder (emosum/pointer.py
    `add_feeling_head`): 1 inside a wording of the label the summary names, 0 inside a wording of
    another label (a negated feeling, `说不上迷茫`; someone else's, `同事很开心，我却...`), ignored
    (-100) everywhere else and in pairs whose summary names not exactly one label.

    Why: the model named the feeling of 98-100% of its training posts that hold a second feeling
    and of 50-66% of the test's: it remembered each post's feeling, and taking the remembering away
    (LabelSwap) did not teach it the cue either (docs/default-model.md "Label swap"). The summary's
    label is one token whose loss says only that the answer was wrong, not which word of the input
    was the author's; the tags say it at the input, where the cue (`不是`, `我却`, `更多的是`) is read.
    An auxiliary token-level loss on the encoder (multi-task learning: e.g. the tagging losses beside
    the sequence model of Rei 2017, "Semi-supervised multitask learning for sequence labeling"). The
    head is a training aid: dropped before the model is saved, so `summarize` loads the model as
    it was. Tags are computed on the collated batch (after LabelSwap and CopyNoise), so they match
    what the model reads; they depend on the tokens alone, so a resumed run tags what the
    uninterrupted one did. Hand-written: no library tags a lexicon's wordings in token ids."""

    def tags(self, source: list[int], labels: list[int]) -> list[int]:
        out = [-100] * len(source)
        if self.find is None:
            return out
        named = {m.group(0) for m in self.name.finditer(self._text([i for i in labels if i >= 0]))}
        if len(named) != 1:
            return out
        label = named.pop()
        for m in self.find.finditer(self._text(source)):
            out[m.start():m.end()] = [int(self.label_of[m.group(0)] == label)] * (m.end() - m.start())
        return out

    def collator(self, inner):
        """`inner` (the collator with the swaps), its batch given `feeling_tags` (batch x input length)."""
        import torch

        def collate(features):
            batch = inner(features)
            batch["feeling_tags"] = torch.tensor([self.tags(s, lab) for s, lab in
                                                  zip(batch["input_ids"].tolist(), batch["labels"].tolist())],
                                                 dtype=torch.long)
            return batch
        return collate
