"""tokenize -> train -> evaluate -> cleanup on tiny inputs, calling each stage's real run()."""
import json
import math
import shutil

import pytest

from conftest import tiny_section as section, write_demo_rows
from emosum import hf, params
from stages import cleanup, evaluate, subsample, tokenize, train



@pytest.fixture(scope="module")
def tokenized(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    src = write_demo_rows(d / "demo.jsonl", n=80)
    # the demo's own splits: test carved out of train, and the held-out rows scored on their own
    data = params.parse_section("data", {"path": str(src), "split_column": "split", "validation_split": None,
                                         "test_split": None, "extra_test_splits": ["heldout"]})
    subsample.run(data, section("subsample"), d / "splits", fact_columns=["cause", "emotion"])
    stats = tokenize.run(section("model"), section("tokenize"), d / "splits", d / "tokenizer", d / "tokenized")
    return d, stats


def test_tokenize_trains_sentencepiece_and_truncates(tokenized):
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    d, stats = tokenized
    tok = AutoTokenizer.from_pretrained(str(d / "tokenizer"))
    assert len(tok) == stats["vocab_size"] <= 4000
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    ds = load_from_disk(str(d / "tokenized"))
    train_ds = ds["train"]
    assert max(train_ds["length"]) <= 64 and max(map(len, train_ds["labels"])) <= 32
    assert all(ids[-1] == tok.eos_token_id for ids in train_ds["input_ids"])
    # unpadded: lengths vary, padding happens at collation
    assert len(set(train_ds["length"])) > 1 and 0 not in sum(train_ds["input_ids"], [])
    assert stats["splits"]["train"]["source_truncated_share"] > 0  # the demo has long inputs
    # the demo's help-post summaries write `，`, which the tokenizer reads as `,`: restored after generation
    assert stats["punctuation_restored"] == {",": "，"} and (d / "tokenizer" / "punctuation.json").is_file()


def test_tokenize_output_is_byte_identical_on_a_rerun(tokenized, tmp_path):
    """Same splits and params, same bytes: DVC then skips training after a tokenize rerun."""
    d, _ = tokenized
    tokenize.run(section("model"), section("tokenize"), d / "splits", tmp_path / "tok", tmp_path / "tokenized")
    files = sorted(p.relative_to(d / "tokenized") for p in (d / "tokenized").rglob("*") if p.is_file())
    assert any(f.name == "state.json" for f in files)  # where datasets wrote a random fingerprint
    for f in files:
        assert (tmp_path / "tokenized" / f).read_bytes() == (d / "tokenized" / f).read_bytes(), f


def test_too_small_vocab_is_a_clear_error(tokenized, tmp_path):
    d, _ = tokenized
    with pytest.raises(ValueError, match="tokenize.vocab_size: 100 is smaller than the \\d+ characters"):
        tokenize.run(section("model"), section("tokenize", vocab_size=100), d / "splits", tmp_path / "tok",
                     tmp_path / "tokenized")
    assert not (tmp_path / "tok").exists()


def test_train_writes_model_and_metrics_and_resumes(tokenized, tmp_path, monkeypatch):
    d, _ = tokenized
    monkeypatch.chdir(tmp_path)
    cfg = section("train")
    stats = train.run(section("model"), cfg, d / "tokenizer", d / "tokenized", tmp_path / "model",
                      tmp_path / "live")
    assert stats["steps"] == 4 and stats["steps_this_run"] == 4
    assert (tmp_path / "model" / "model.safetensors").exists()
    assert (tmp_path / "model" / "spiece.model").exists() or (tmp_path / "model" / "tokenizer.json").exists()
    assert stats["tokens_per_s"] > 0 and stats["peak_memory_gb"] > 0
    assert stats["precision"] in ("bf16", "fp32")
    # scaled embeddings: the first loss is near ln(vocab), not ~100
    curve = (tmp_path / "live" / "plots" / "metrics" / "loss.tsv").read_text().splitlines()
    assert curve[0] == "step\tloss" and [int(r.split("\t")[0]) for r in curve[1:]] == [1, 2, 3, 4]
    assert float(curve[1].split("\t")[1]) < 1.5 * math.log(stats["vocab_size"])
    assert (tmp_path / "live" / "plots" / "metrics" / "eval" / "loss.tsv").exists()

    # interrupted after step 2: the last complete checkpoint of the same params and data resumes
    run_dir = next((tmp_path / ".scratch" / "train").iterdir())
    shutil.rmtree(run_dir / "checkpoint-4")
    (run_dir / "checkpoint-3").mkdir()  # a half-written checkpoint is skipped
    again = train.run(section("model"), cfg, d / "tokenizer", d / "tokenized", tmp_path / "model",
                      tmp_path / "live")
    assert again["resumed_from_step"] == 2 and again["steps_this_run"] == 2 and again["steps"] == 4
    # other params: another fingerprint, never that run's checkpoints
    assert train.fingerprint(section("model"), section("train", learning_rate=0.01), d / "tokenized") \
        != run_dir.name


def test_gradient_accumulation_reports_and_trains_like_one_big_batch(tokenized, tmp_path, monkeypatch):
    """mT5's forward takes **kwargs but ignores num_items_in_batch; left to itself the Trainer then
    neither divides by the accumulation steps nor weights by tokens (transformers issue #47688):
    the loss read 2x with accumulation 2."""
    d, _ = tokenized
    monkeypatch.chdir(tmp_path)
    model = section("model", scratch={"dropout_rate": 0.0})
    runs = {}
    for batch, accum in ((8, 1), (4, 2)):
        cfg = section("train", batch_size=batch, gradient_accumulation_steps=accum, max_steps=1,
                      group_by_length=False)  # the random sampler: the same 8 examples either way
        runs[accum] = train.run(model, cfg, d / "tokenizer", d / "tokenized", tmp_path / f"model{accum}", None)
    assert runs[2]["global_batch_size"] == runs[1]["global_batch_size"] == 8
    assert runs[2]["final_loss"] == pytest.approx(runs[1]["final_loss"], rel=1e-3)


def test_eval_steps_gives_a_validation_curve(tokenized, tmp_path, monkeypatch):
    d, _ = tokenized
    monkeypatch.chdir(tmp_path)
    stats = train.run(section("model"), section("train", max_steps=5, eval_steps=2), d / "tokenizer",
                      d / "tokenized", tmp_path / "model", tmp_path / "live")
    curve = (tmp_path / "live" / "plots" / "metrics" / "eval" / "loss.tsv").read_text().splitlines()
    assert [int(r.split("\t")[0]) for r in curve[1:]] == [2, 4, 5]  # every 2 steps, and the end
    assert stats["eval_loss"] == pytest.approx(float(curve[-1].split("\t")[1]), abs=1e-4)


def test_evaluate_scores_the_test_split(tokenized, tmp_path, monkeypatch):
    d, _ = tokenized
    monkeypatch.chdir(tmp_path)
    train.run(section("model"), section("train"), d / "tokenizer", d / "tokenized", tmp_path / "model",
              tmp_path / "live")
    # max_label_values 20: the tiny data's ~50 causes are free text (the demo's thousands are), its 15 emotions labels
    metrics, preds, details = evaluate.run(section("evaluate", max_label_values=20), tmp_path / "model",
                                           d / "tokenized", d / "splits")
    for key in ("rouge1", "rouge2", "rougeL", "word_rougeL", "lead_rougeL", "lead_k", "gen_chars_mean",
                "constant_rougeL", "rougeL_minus_constant"):
        assert key in metrics
    # the constant floor is a training summary; fact recall for the model and both floors
    train_summaries = {json.loads(line)["summary"] for line in open(d / "splits" / "train.jsonl", encoding="utf-8")}
    assert metrics["constant_summary"] in train_summaries
    for key in ("fact_recall", "lead_fact_recall", "constant_fact_recall"):
        assert set(metrics[key]) == {"cause", "cause_half", "emotion", "all"} and all(0 <= v <= 1 for v in metrics[key].values())
    assert details["test"]["emotion"]["label"] and details["test"]["emotion"]["rows"] == 6
    assert preds[0]["facts"].keys() == {"cause", "emotion"}
    # the held-out split: scored on its own, under its name, with the same floors and facts
    assert metrics["heldout"]["examples"] == 6 and {"rougeL", "lead_rougeL", "constant_rougeL"} <= set(metrics["heldout"])
    assert set(metrics["heldout"]["fact_recall"]) == {"cause", "cause_half", "emotion", "all"}
    assert [p["split"] for p in preds] == ["test"] * 6 + ["heldout"] * 6
    assert metrics["examples"] == 6
    # max_new_tokens: auto = the longest training summary, saved with the model by the train stage
    from datasets import load_from_disk

    longest = max(map(len, load_from_disk(str(d / "tokenized"))["train"]["labels"]))
    saved = json.loads((tmp_path / "model" / "generation_config.json").read_text())
    assert saved["max_new_tokens"] == longest
    auto, _, _ = evaluate.run(section("evaluate", max_new_tokens="auto"), tmp_path / "model", d / "tokenized",
                              d / "splits")
    assert auto["max_new_tokens"] == longest and metrics["max_new_tokens"] == 12  # the tiny config's number
    refs = [json.loads(line)["summary"] for line in open(d / "splits" / "test.jsonl", encoding="utf-8")]
    assert [p["reference"] for p in preds[:6]] == refs  # input order kept after length sorting
    # the punctuation table travels into model/ and evaluate applies it to what the model writes
    assert (tmp_path / "model" / "punctuation.json").is_file()
    real = evaluate.generate
    monkeypatch.setattr(evaluate, "generate", lambda *a, **k: [t + "感到焦虑,想知道" for t in real(*a, **k)])
    _, written, _ = evaluate.run(section("evaluate"), tmp_path / "model", d / "tokenized", d / "splits")
    assert all(p["prediction"].endswith("感到焦虑，想知道") for p in written)


def test_evaluate_without_fact_columns(tokenized, tmp_path, monkeypatch):
    """Real sets (CSL, VCSum) have no cause or emotion column: `fact_columns: []` scores ROUGE and
    its floors only (it raised KeyError 'facts' after the whole training, on the README's CSL command)."""
    d, _ = tokenized
    monkeypatch.chdir(tmp_path)
    train.run(section("model"), section("train"), d / "tokenizer", d / "tokenized", tmp_path / "model", None)
    (tmp_path / "bare").mkdir()
    for split in ("train", "test", "heldout"):  # the splits as subsample writes them with no fact columns
        rows = [json.loads(line) for line in open(d / "splits" / f"{split}.jsonl", encoding="utf-8")]
        (tmp_path / "bare" / f"{split}.jsonl").write_text("".join(
            json.dumps({k: v for k, v in r.items() if k != "facts"}, ensure_ascii=False) + "\n" for r in rows),
            encoding="utf-8")
    metrics, preds, details = evaluate.run(section("evaluate", fact_columns=[]), tmp_path / "model",
                                           d / "tokenized", tmp_path / "bare")
    assert metrics["examples"] == 6 and len(preds) == 12 and "lead_rougeL" in metrics and "constant_rougeL" in metrics
    assert "fact_recall" not in metrics and details == {"test": {}, "heldout": {}} and "facts" not in preds[0]


def test_batched_generation_matches_per_example(tokenized, tmp_path, monkeypatch):
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    d, _ = tokenized
    monkeypatch.chdir(tmp_path)
    train.run(section("model"), section("train"), d / "tokenizer", d / "tokenized", tmp_path / "model",
              tmp_path / "live")
    from transformers import AutoModelForSeq2SeqLM

    model = AutoModelForSeq2SeqLM.from_pretrained(str(tmp_path / "model"))
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "model"))
    ids = load_from_disk(str(d / "tokenized"))["test"]["input_ids"]
    greedy = params.parse_section("evaluate", {"num_beams": 1, "max_new_tokens": 8, "batch_size": 4})
    one = params.parse_section("evaluate", {"num_beams": 1, "max_new_tokens": 8, "batch_size": 1})
    assert evaluate.generate(model, tok, ids, greedy) == evaluate.generate(model, tok, ids, one)


def test_fp16_is_refused_for_t5_unless_forced():
    with pytest.raises(ValueError, match="fp16 gives NaN"):
        hf.pick_precision("fp16")
    assert hf.pick_precision("fp16", allow_fp16=True) == "fp16"
    assert hf.pick_precision("fp32") == "fp32"


def test_missing_checkpoint_fails_fast_with_instructions(tmp_path):
    import time

    t0 = time.perf_counter()
    with pytest.raises(hf.CheckpointError, match="HF_HOME.*hub.online: true"):
        hf.load_tokenizer("google/emosum-no-such-model")
    with pytest.raises(hf.CheckpointError, match="no such directory"):
        hf.load_pretrained(str(tmp_path / "nowhere" / "ckpt"))
    assert time.perf_counter() - t0 < 20


def test_cleanup_removes_only_allowlisted_scratch(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages:\n  train:\n    cmd: x\n    outs: [model]\n")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "w.bin").write_bytes(b"x" * 100)
    (tmp_path / ".scratch" / "train").mkdir(parents=True)
    (tmp_path / ".scratch" / "train" / "ck.bin").write_bytes(b"y" * 1000)
    stats = cleanup.run(params.parse_section("cleanup", {"paths": [".scratch"]}), tmp_path, tmp_path / "model")
    assert stats["bytes_freed"] == 1000 and stats["model_bytes"] == 100
    assert not (tmp_path / ".scratch").exists() and (tmp_path / "model" / "w.bin").exists()
    for bad, why in (["model"], "overlaps"), (["../elsewhere"], "outside"), ([".scratch", "model/w.bin"], "overlaps"):
        (tmp_path / ".scratch").mkdir(exist_ok=True)
        with pytest.raises(ValueError, match=why):
            cleanup.run(params.parse_section("cleanup", {"paths": bad}), tmp_path, tmp_path / "model")
        assert (tmp_path / "model" / "w.bin").exists() and (tmp_path / ".scratch").exists()


def test_train_predicts_its_own_time(tokenized, tmp_path, monkeypatch):
    d, _ = tokenized
    monkeypatch.chdir(tmp_path)
    stats = train.run(section("model"), section("train", max_steps=20, save_steps=100, logging_steps=5),
                      d / "tokenizer", d / "tokenized", tmp_path / "model", tmp_path / "live")
    assert stats["predicted_train_s"] > 0 and stats["actual_train_s"] > 0
    info = stats["speed"]
    assert 0 <= info["padding_waste"] <= info["padding_waste_random_batches"] + 0.05
    assert 0 < info["output_layer_flops_share"] < 1 and info["batches_per_epoch"] == 10


def test_score_flags_a_model_that_writes_the_same_summary_for_everything(caplog):
    refs = ["作者因考试失利感到难过。", "小雨因升职感到开心。", "作者因被裁员感到焦虑。", "阿杰因搬家感到疲惫。"]
    sources = [r.replace("感到", "，觉得") for r in refs]
    same, _ = evaluate.score(sources, ["作者因升职感到开心。"] * 4, refs)
    assert same["distinct_predictions_share"] == 0.25 and same["distinct_references_share"] == 1.0
    assert "only 1 distinct predictions for 4 examples" in caplog.text
    caplog.clear()
    own, _ = evaluate.score(sources, refs, refs)
    assert own["distinct_predictions_share"] == 1.0 and "distinct predictions" not in caplog.text


def test_byte_fallback_copies_characters_outside_the_training_split(tokenized):
    """transformers' T5Tokenizer drops SentencePiece's byte fallback: `offer饕餮😀` became one
    <unk>. The saved tokenizer turns a character the training split never had into its bytes, and
    decodes them back, after a save and a reload."""
    from transformers import AutoTokenizer

    d, stats = tokenized
    tok = AutoTokenizer.from_pretrained(str(d / "tokenizer"))
    train_chars = set("".join(json.loads(line)["text"] for line in open(d / "splits" / "train.jsonl", encoding="utf-8")))
    text = "室友偷用我的饕餮还不承认，offer😀没了"
    assert "饕" not in train_chars and "😀" not in train_chars
    ids = tok(text)["input_ids"]
    assert tok.unk_token_id not in ids
    pieces = tok.convert_ids_to_tokens(ids)
    assert "<0xE9>" in pieces  # 饕 is E9 A5 95 in UTF-8
    assert tok.decode(ids, skip_special_tokens=True) == text.replace("，", ",")  # SentencePiece's NFKC
    for split in ("train", "test", "heldout"):
        assert stats["splits"][split]["unk_tokens"] == 0
    assert stats["splits"]["heldout"]["byte_share"] > stats["splits"]["train"]["byte_share"]


def test_without_byte_fallback_unknown_characters_are_counted(tokenized, tmp_path):
    d, _ = tokenized
    stats = tokenize.run(section("model"), section("tokenize", byte_fallback=False, character_coverage=0.995),
                         d / "splits", tmp_path / "tok", tmp_path / "tokenized")
    assert stats["splits"]["heldout"]["unk_tokens"] > 0 and stats["splits"]["train"]["byte_tokens"] == 0


def test_a_copy_head_model_trains_resumes_exactly_and_is_evaluated(tokenized, tmp_path, monkeypatch):
    """model.copy_head through the real train and evaluate stages: the Trainer saves and resumes the
    pointer-generator (its copy layers included) and the evaluate stage loads it as one."""
    import torch
    from safetensors.torch import load_file

    from emosum.pointer import MT5PointerGenerator

    d, _ = tokenized
    monkeypatch.chdir(tmp_path)
    model_p = section("model", copy_head=True, copy_heads=2, copy_alignment=1.0)
    stats = train.run(model_p, section("train"), d / "tokenizer", d / "tokenized", tmp_path / "model", tmp_path / "live")
    assert stats["steps"] == 4
    loaded = hf.load_pretrained(str(tmp_path / "model"))
    assert isinstance(loaded, MT5PointerGenerator) and loaded.copy_head_mix.out_features == 2
    assert loaded.config.copy_alignment == 1.0   # trained with the alignment loss (resumed with it too)
    # killed after step 2's checkpoint: the resumed run ends with the uninterrupted run's weights
    run_dir = next((tmp_path / ".scratch" / "train").iterdir())
    shutil.rmtree(run_dir / "checkpoint-4")
    again = train.run(model_p, section("train"), d / "tokenizer", d / "tokenized", tmp_path / "model2",
                      tmp_path / "live2")
    assert again["resumed_from_step"] == 2
    first, second = load_file(tmp_path / "model" / "model.safetensors"), load_file(tmp_path / "model2" / "model.safetensors")
    assert any(k.startswith("copy_") for k in first) and first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    metrics, preds, _ = evaluate.run(section("evaluate", max_label_values=20), tmp_path / "model", d / "tokenized",
                                     d / "splits")
    assert metrics["examples"] == 6 and len(preds) == 12 and 0 <= metrics["rougeL"] <= 100
