"""Hugging Face glue shared by the stages: offline mode, precision, loading checkpoints.

transformers is imported inside functions on purpose: the hub's offline switches are read when
huggingface_hub is first imported, so `offline_env()` must run before that import.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("emosum.hf")

SCRATCH = "scratch"
OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_EVALUATE_OFFLINE")


class CheckpointError(RuntimeError):
    pass


_online = False  # set by offline_env(); loaders also pass local_files_only, whatever the import order


def offline_env(online: bool) -> None:
    """Unless the user opted in (hub.online: true), a missing model fails in ~2 s, not a 50 s DNS wait."""
    global _online
    _online = online
    if online:
        return
    for var in OFFLINE_VARS:
        os.environ[var] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def is_scratch(name: str) -> bool:
    return name == SCRATCH


def bf16_available() -> bool:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:  # CPUs with AVX512-BF16 or AMX: oneDNN runs bf16 matmuls natively there.
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_precision(requested: str, allow_fp16: bool = False) -> str:
    """Validate a forced precision; 'auto' is left to the train stage's measurement. Never fp16 for
    T5 models unless forced: T5's activations overflow fp16's range and the loss turns NaN."""
    if requested == "fp16" and not allow_fp16:
        raise ValueError("params.yaml: train.precision: fp16 gives NaN loss on T5/mT5 models; "
                         "use bf16 or fp32 (or set train.allow_fp16: true to force it)")
    if requested == "auto":
        return "auto"  # measured by the train stage (emosum/precision.py), not guessed
    if requested == "bf16" and not bf16_available():
        raise ValueError("params.yaml: train.precision: bf16 requested but this device has no bf16 "
                         "support; use auto or fp32")
    return requested


def _missing(name: str, err: Exception) -> CheckpointError:
    return CheckpointError(
        f"model.name '{name}': could not load it ({type(err).__name__}: {str(err).splitlines()[0]}). "
        "It is neither a local checkpoint directory nor in the Hugging Face cache, and the hub is "
        "offline. Either download it once where there is network (it lands in the cache under "
        "HF_HOME), point model.name at a local directory holding config.json and the weights, or "
        "set hub.online: true in params.yaml.")


def load_tokenizer(name: str, max_length: int | None = None):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(name, local_files_only=not _online)
    except (OSError, ValueError) as e:
        raise _missing(name, e) from None
    if max_length:
        tok.model_max_length = max_length  # saved as 1e30 by SentencePiece-made tokenizers
    return tok


def load_pretrained(name: str, copy_head: bool = False, **copy):
    """A checkpoint (a hub id or a folder); a saved copy-head model loads as one (emosum/pointer.py).
    copy_head: a plain mT5 gets a fresh copy head (`copy`: its copy_* settings, ModelParams.copy_options);
    one that has it keeps its own."""
    from transformers import AutoModelForSeq2SeqLM

    from emosum import pointer  # registers the copy-head model with the Auto classes

    if not Path(name).is_dir() and os.sep in name and not name.count("/") == 1:
        raise CheckpointError(f"model.name '{name}': no such directory")
    try:
        model = AutoModelForSeq2SeqLM.from_pretrained(name, local_files_only=not _online)
    except (OSError, ValueError) as e:
        raise _missing(name, e) from None
    if copy_head and not isinstance(model, pointer.MT5PointerGenerator):
        from transformers import MT5ForConditionalGeneration

        if not isinstance(model, MT5ForConditionalGeneration):
            raise CheckpointError(f"model.copy_head: true needs an mT5/T5 checkpoint; '{name}' is a "
                                  f"{type(model).__name__}: set model.copy_head: false")
        log.info("model %s: a fresh copy head on the checkpoint (emosum/pointer.py)", name)
        model = pointer.MT5PointerGenerator.from_mt5(model, **copy)
    return model


def scratch_model(cfg, tok, copy_head: bool = False, **copy):
    """An mT5 of model.scratch's shape, initialised from scratch, for this tokenizer; with
    copy_head, the pointer-generator of emosum/pointer.py (mT5 plus a copy head)."""
    import torch
    from transformers import MT5Config, MT5ForConditionalGeneration

    config_cls, model_cls, extra = MT5Config, MT5ForConditionalGeneration, {}
    if copy_head:
        from emosum import pointer

        config_cls, model_cls, extra = pointer.MT5PointerConfig, pointer.MT5PointerGenerator, copy
    config = config_cls(**extra, vocab_size=len(tok), d_model=cfg.d_model, d_ff=cfg.d_ff, d_kv=cfg.d_kv,
                       num_heads=cfg.num_heads, num_layers=cfg.num_layers,
                       num_decoder_layers=cfg.num_decoder_layers, dropout_rate=cfg.dropout_rate,
                       pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                       decoder_start_token_id=tok.pad_token_id)
    model = model_cls(config)
    # The default init draws embeddings with std 1 (a first loss near 100 instead of ~ln(vocab));
    # std d_model ** -0.5 (0.088 at d128; embedding_std null) fixed that but left the tied output logits so small that
    # the model could not become confident about a copied character: on the open-cause demo
    # (bench/copy_probe.py, 600 steps, bf16) std 0.5 reached emotion 45% and half the cause's
    # characters 27%, std 0.088 15% and 6%: params.yaml's model.scratch.embedding_std is 0.5.
    std = cfg.embedding_std or cfg.d_model ** -0.5
    with torch.no_grad():
        model.shared.weight.normal_(mean=0.0, std=std)
        if model.lm_head.weight.data_ptr() != model.shared.weight.data_ptr():
            model.lm_head.weight.normal_(mean=0.0, std=std)
    return model


def fast_tokenizer(model_proto: bytes):
    """A `tokenizers` Unigram tokenizer with SentencePiece's pieces, scores and normalisation.

    Built here because transformers 5's T5Tokenizer builds its Unigram with byte_fallback=False
    (and rebuilds it so from spiece.model on every load): a character outside the vocabulary, and
    the whole run of characters after it up to a space, became one <unk>. The generic fast
    tokenizer class saves this one as tokenizer.json and loads it back unchanged (tested)."""
    from sentencepiece import sentencepiece_model_pb2
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import PreTrainedTokenizerFast

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model_proto)
    byte = proto.trainer_spec.byte_fallback
    t = Tokenizer(Unigram([(p.piece, p.score) for p in proto.pieces], unk_id=2, byte_fallback=byte))
    t.normalizer = normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap)
    t.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")])
    meta = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    t.decoder = decoders.Sequence([decoders.ByteFallback(), meta]) if byte else meta
    t.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                     special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=t, eos_token="</s>", unk_token="<unk>", pad_token="<pad>")
