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


class CopyNoise:
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
