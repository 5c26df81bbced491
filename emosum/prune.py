"""Vocabulary pruning for a pretrained mT5: keep only the token ids the data uses.

mT5's 250,112-token vocabulary covers 101 languages; Chinese text uses about 30,000 of them, yet
at 128 + 128 tokens the output layer (d_model x vocab, run for every target token, forward and
backward) is about 73% of mt5-small's training FLOPs. Pruning slices the embedding and LM-head
rows to the kept ids and rewrites the SentencePiece model to the kept pieces (same order, so the
special tokens keep ids 0, 1, 2).

It is exact for a unigram SentencePiece model: a text whose best segmentation uses only kept
pieces has the same best segmentation over the kept subset (a subset of paths that still holds the
optimum), and the sliced model computes the same logits for the kept ids.

There is no well-kept library for this (the known scripts are one-off notebooks), hence our own.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

log = logging.getLogger("emosum.prune")
MAP_FILE = "vocab_map.json"


def _proto(spm_file: Path):
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    proto.ParseFromString(Path(spm_file).read_bytes())
    return proto


def count_ids(tok, texts: list[str], batch: int = 2000) -> Counter:
    counts: Counter = Counter()
    for i in range(0, len(texts), batch):
        for ids in tok(texts[i:i + batch], verbose=False)["input_ids"]:
            counts.update(ids)
    return counts


def select_ids(proto, counts: Counter, min_vocab: int = 0) -> list[int]:
    """Specials + every used id, topped up to min_vocab with the likeliest remaining pieces."""
    n = len(proto.pieces)
    keep = {i for i, p in enumerate(proto.pieces) if p.type in (2, 3)}  # UNKNOWN, CONTROL: <unk> <pad> </s>
    keep |= {i for i in counts if i < n}
    keep |= {i for i, p in enumerate(proto.pieces) if p.type == 6}  # BYTE: byte fallback needs all 256
    if min_vocab > len(keep):
        # a unigram piece's score is its log-probability: the best proxy for how common it is
        rest = sorted((i for i in range(n) if i not in keep), key=lambda i: -proto.pieces[i].score)
        keep |= set(rest[:min_vocab - len(keep)])
    return sorted(keep)


def prune_tokenizer(tok, texts: list[str], out_dir: Path, min_vocab: int = 0):
    """Write a pruned SentencePiece tokenizer and the id map to out_dir; returns (tokenizer, kept ids)."""
    from transformers import T5Tokenizer

    spm_file = getattr(tok, "vocab_file", None) or Path(getattr(tok, "name_or_path", "") or ".") / "spiece.model"
    if not spm_file or not Path(spm_file).is_file():
        raise ValueError("tokenize.prune_vocab: the checkpoint's tokenizer has no SentencePiece model "
                         "file (spiece.model); set tokenize.prune_vocab: false")
    proto = _proto(Path(spm_file))
    counts = count_ids(tok, texts)
    keep = select_ids(proto, counts, min_vocab)
    kept = [proto.pieces[i] for i in keep]
    del proto.pieces[:]
    proto.pieces.extend(kept)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "spiece.model").write_bytes(proto.SerializeToString())
    (out_dir / MAP_FILE).write_text(json.dumps({"original_vocab": len(tok), "kept_ids": keep}))
    if proto.trainer_spec.byte_fallback:  # T5Tokenizer would drop it (emosum/hf.py: fast_tokenizer)
        from emosum.hf import fast_tokenizer

        new = fast_tokenizer(proto.SerializeToString())
    else:
        new = T5Tokenizer.from_pretrained(str(out_dir), extra_ids=0)
    log.info("pruned the vocabulary from %d to %d pieces (%d used by the data)", len(tok), len(keep),
             len(counts))
    return new, keep


def kept_ids(tok_dir: Path) -> list[int] | None:
    f = Path(tok_dir) / MAP_FILE
    return json.loads(f.read_text())["kept_ids"] if f.exists() else None


def prune_model(model, keep: list[int]):
    """Slice the embedding and LM-head rows to `keep` (in place); the tie state is preserved."""
    import torch

    idx = torch.tensor(keep, dtype=torch.long)
    old_in, old_out = model.get_input_embeddings(), model.get_output_embeddings()
    tied = old_out.weight.data_ptr() == old_in.weight.data_ptr()
    emb = torch.nn.Embedding(len(keep), old_in.embedding_dim)
    emb.weight.data = old_in.weight.data[idx].clone()
    model.set_input_embeddings(emb)
    head = torch.nn.Linear(old_in.embedding_dim, len(keep), bias=False)
    head.weight = emb.weight if tied else torch.nn.Parameter(old_out.weight.data[idx].clone())
    model.set_output_embeddings(head)
    model.config.vocab_size = len(keep)
    return model
