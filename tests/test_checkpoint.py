"""Issue 3: a real checkpoint through model.name: a tiny mT5 saved by the test to a temporary folder,
shaped like google/mt5-* (its own, untied LM head; config says tie_word_embeddings: false)."""
import json

import pytest

from conftest import tiny_section as section, write_demo_rows
from emosum import params, prune
from stages import subsample, tokenize, train


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import torch
    from transformers import MT5Config, MT5ForConditionalGeneration

    d = tmp_path_factory.mktemp("ckpt")
    rows = write_demo_rows(d / "corpus.jsonl", n=200, seed=7)
    texts = [json.loads(line)["text"] for line in open(rows, encoding="utf-8")]
    tok = tokenize.train_sentencepiece(texts, 4000, d / "mt5-tiny")
    cfg = MT5Config(vocab_size=len(tok), d_model=32, d_ff=64, d_kv=16, num_heads=2, num_layers=1,
                    num_decoder_layers=1, decoder_start_token_id=0)
    torch.manual_seed(0)
    model = MT5ForConditionalGeneration(cfg)
    model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.shared.weight) * 0.05)
    model.save_pretrained(d / "mt5-tiny")
    tok.save_pretrained(d / "mt5-tiny")
    conf = json.loads((d / "mt5-tiny" / "config.json").read_text())
    conf["tie_word_embeddings"] = False  # as the real google/mt5-small config says
    (d / "mt5-tiny" / "config.json").write_text(json.dumps(conf))
    return d / "mt5-tiny", model.lm_head.weight.detach().clone()



def test_checkpoint_tokenizer_prefix_and_auto_length(checkpoint, tmp_path):
    ckpt, _ = checkpoint
    src = write_demo_rows(tmp_path / "d.jsonl", n=80)
    subsample.run(params.parse_section("data", {"path": str(src)}), section("subsample"), tmp_path / "splits")
    model_p = section("model", name=str(ckpt), source_prefix="summarize: ")
    stats = tokenize.run(model_p, section("tokenize", max_source_length="auto", source_length_percentile=50,
                                          prune_vocab=False),
                         tmp_path / "splits", tmp_path / "tok", tmp_path / "tokenized")
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    original = AutoTokenizer.from_pretrained(str(ckpt))
    assert tok.get_vocab() == original.get_vocab()
    prefix = tok("summarize: ", add_special_tokens=False)["input_ids"]
    first = load_from_disk(str(tmp_path / "tokenized"))["train"][0]["input_ids"]
    assert first[:len(prefix)] == prefix
    # auto: half the training inputs fit, so about half are truncated; the choice is recorded
    assert stats["max_source_length"] % 8 == 0 and tok.model_max_length == stats["max_source_length"]
    assert 0.3 <= stats["splits"]["train"]["source_truncated_share"] <= 0.5


def test_checkpoint_trains_and_keeps_its_untied_head(checkpoint, tmp_path, monkeypatch):
    import torch
    from transformers import AutoModelForSeq2SeqLM

    ckpt, head = checkpoint
    monkeypatch.chdir(tmp_path)
    src = write_demo_rows(tmp_path / "d.jsonl", n=80)
    subsample.run(params.parse_section("data", {"path": str(src)}), section("subsample"), tmp_path / "splits")
    model_p = section("model", name=str(ckpt), source_prefix="summarize: ")
    tokenize.run(model_p, section("tokenize"), tmp_path / "splits", tmp_path / "tok", tmp_path / "tokenized")
    stats = train.run(model_p, section("train", learning_rate=1e-4), tmp_path / "tok", tmp_path / "tokenized",
                      tmp_path / "model", tmp_path / "live")
    assert stats["steps"] == 4
    keep = prune.kept_ids(tmp_path / "tok")  # pruned by default
    assert stats["vocab_size"] == len(keep) < head.shape[0]
    assert stats["parameters"] < stats["parameters_before_pruning"]
    trained = AutoModelForSeq2SeqLM.from_pretrained(str(tmp_path / "model"))
    assert trained.lm_head.weight.data_ptr() != trained.shared.weight.data_ptr()
    # still the checkpoint's own head rows (moved a little by 4 small steps), not the embeddings
    assert (trained.lm_head.weight - head[keep]).abs().max() < 0.01
    assert not torch.allclose(trained.lm_head.weight, trained.shared.weight)


def test_pruning_is_exact_on_text_made_of_kept_tokens(checkpoint, tmp_path):
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    ckpt, _ = checkpoint
    tok = AutoTokenizer.from_pretrained(str(ckpt))
    texts = [json.loads(line)["text"] for line in open(write_demo_rows(tmp_path / "d.jsonl", n=30, seed=11),
                                                          encoding="utf-8")]
    pruned_tok, keep = prune.prune_tokenizer(tok, texts[:20], tmp_path / "pruned")
    assert len(keep) < len(tok) and keep[:3] == [0, 1, 2]
    new_id = {old: new for new, old in enumerate(keep)}
    for text in texts[:20]:  # every kept-token text: the same segmentation, ids mapped
        old = tok(text)["input_ids"]
        assert pruned_tok(text)["input_ids"] == [new_id[i] for i in old]

    original = AutoModelForSeq2SeqLM.from_pretrained(str(ckpt)).eval()
    small = prune.prune_model(AutoModelForSeq2SeqLM.from_pretrained(str(ckpt)), keep).eval()
    assert small.config.vocab_size == len(keep)
    enc_old = tok(texts[:4], padding=True, return_tensors="pt")
    enc_new = pruned_tok(texts[:4], padding=True, return_tensors="pt")
    dec_old = tok(text_target=texts[4:8], padding=True, return_tensors="pt")["input_ids"]
    dec_new = pruned_tok(text_target=texts[4:8], padding=True, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        a = original(**enc_old, labels=dec_old).logits[..., keep]
        b = small(**enc_new, labels=dec_new).logits
    assert torch.allclose(a, b, atol=1e-5, rtol=0)
    # and the top-k fill: min_vocab tops up with the likeliest unused pieces
    _, keep_min = prune.prune_tokenizer(tok, texts[:20], tmp_path / "pruned2", min_vocab=len(keep) + 50)
    assert len(keep_min) == len(keep) + 50 and set(keep) < set(keep_min)
