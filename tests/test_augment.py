"""Copy noise (train.copy_noise, emosum/augment.py): copied characters swapped alike in the input
and the summary, nothing else touched, the same draw for the same seed, epoch and pair, and a
training run that uses it resumes mid-epoch into the uninterrupted run's weights. Label swap
(train.label_swap): the feelings a text shows permuted, its summary's label with them, the cue
words and the cause untouched, so every swapped pair stays true. Feeling tags (train.feeling_tags):
the author's feeling word told from a negated one at the input, a loss in training only, the head
dropped before the model is saved."""
import hashlib
import shutil

import pytest
from datasets import load_from_disk
from safetensors import safe_open
from transformers import AutoTokenizer

from conftest import tiny_section as section, tiny_tokenized
from emosum import augment, dataio, demo_data


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tiny_tokenized(tmp_path_factory.mktemp("noise"), n=80)
    tok = AutoTokenizer.from_pretrained(str(d / "tokenizer"))
    train = load_from_disk(str(d / "tokenized"))["train"]
    return d, tok, [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in train]


def test_copied_ids_are_the_summary_runs_found_in_the_input_and_nowhere_else():
    #           因  A  B  C  感 到  D  B      (the summary: frame, a copied run ABC, the label DB)
    labels = [1, 10, 11, 12, 2, 3, 13, 11]
    source = [7, 10, 11, 12, 8, 13, 9]     # the input holds A B C, and D alone
    # A and C are copied only; B is copied but also in the label; D is a single token, not a run
    assert augment.copied_ids(source, labels) == {10, 12}
    assert augment.copied_ids(source, [1, 10, 11, 5]) == set()  # a run of two is chance, not a copy


def test_the_swap_is_one_mapping_over_input_and_summary_and_spares_the_rest(data):
    _, tok, rows = data
    noise = augment.CopyNoise(tok, [r["input_ids"] for r in rows], share=1.0, seed=0)
    changed = 0
    for r in rows:
        out = noise.swap(r, epoch=0)
        src, lab = r["input_ids"], r["labels"]
        assert len(out["input_ids"]) == len(src) and len(out["labels"]) == len(lab)
        pairs = set(zip(src + lab, out["input_ids"] + out["labels"]))
        forward = {a: b for a, b in pairs if a != b}
        assert len(forward) == len({a for a, b in pairs if a != b})  # one new id per swapped id
        assert len(set(forward.values())) == len(forward)  # and no two onto one
        assert not set(forward.values()) & set(src + lab)  # onto characters the pair does not hold
        assert set(forward) == augment.copied_ids(src, lab) & noise.swappable - noise.protected  # share 1.0: all
        for a, b in forward.items():
            assert len(tok.convert_ids_to_tokens(b)) == 1 and a not in noise.protected
        # the frame and the label: every summary token outside the copied runs is untouched
        keep = [t for t in lab if t not in forward]
        assert keep == [b for a, b in zip(lab, out["labels"]) if a not in forward]
        changed += bool(forward)
    assert changed >= len(rows) // 2  # the demo's summaries copy their causes


def test_the_draw_depends_on_seed_epoch_and_pair_only(data):
    _, tok, rows = data
    ids = [r["input_ids"] for r in rows]
    a, b = augment.CopyNoise(tok, ids, 0.5, seed=0), augment.CopyNoise(tok, ids, 0.5, seed=0)
    assert all(a.swap(r, 1) == b.swap(r, 1) for r in rows)  # no hidden random state
    assert any(a.swap(r, 1) != a.swap(r, 2) for r in rows)  # fresh each epoch
    assert any(a.swap(r, 1) != augment.CopyNoise(tok, ids, 0.5, seed=1).swap(r, 1) for r in rows)
    half = sum(len([x for x, y in zip(r["labels"], a.swap(r, 1)["labels"]) if x != y]) for r in rows)
    whole = sum(len([x for x, y in zip(r["labels"], augment.CopyNoise(tok, ids, 1.0, 0).swap(r, 1)["labels"])
                     if x != y]) for r in rows)
    assert 0 < half < whole
    assert all(augment.CopyNoise(tok, ids, 0.0, 0).swap(r, 1) == r for r in rows)


def test_the_collator_swaps_only_while_active(data):
    _, tok, rows = data
    noise = augment.CopyNoise(tok, [r["input_ids"] for r in rows], 1.0, seed=0)
    seen = []
    collate = noise.collator(lambda feats: seen.append(feats) or feats)
    assert collate(rows[:8]) == rows[:8]  # inactive (validation, probes): the data as it is
    noise.active = True
    assert collate(rows[:8]) != rows[:8]


def test_training_with_copy_noise_resumes_mid_epoch_into_the_same_weights(data, tmp_path, monkeypatch):
    """10 steps an epoch, 2 epochs, checkpoints every 5 steps (the last two kept): resumed from 15,
    mid-way through the second epoch, it must swap what the uninterrupted run swapped there, so the
    weights come out the same bits."""
    from stages import train

    d, tok, rows = data
    # the swap has pairs to act on in this data (its tiny tokenizer still holds wordings of the lexicon)
    assert any(augment.LabelSwap(tok, dataio.read_lexicon(section("train").label_lexicon), 0.5, 0, 64).swap(r, 1) != r
               for r in rows)
    monkeypatch.chdir(tmp_path)
    weights = lambda p: hashlib.sha256((p / "model.safetensors").read_bytes()).hexdigest()  # noqa: E731
    cfg = section("train", epochs=2, max_steps=-1, save_steps=5, copy_noise=0.5, label_swap=0.5, feeling_tags=1.0)
    whole = train.run(section("model"), cfg, d / "tokenizer", d / "tokenized", tmp_path / "model", None)
    assert whole["steps"] == 20
    first = weights(tmp_path / "model")
    # the feeling head trained in the checkpoints (resumed below) but is not in the saved model
    assert not any(k.startswith("feeling_head") for k in safe_open(tmp_path / "model" / "model.safetensors", "pt").keys())
    run_dir = next((tmp_path / ".scratch" / "train").iterdir())
    shutil.rmtree(run_dir / "checkpoint-20")
    again = train.run(section("model"), cfg, d / "tokenizer", d / "tokenized", tmp_path / "model", None)
    assert again["resumed_from_step"] == 15
    assert weights(tmp_path / "model") == first
    # and the noise did something: without it, other weights
    plain = train.run(section("model"), section("train", epochs=2, max_steps=-1, save_steps=5, copy_noise=0.0,
                                                label_swap=0.0, feeling_tags=0.0),
                      d / "tokenizer",
                      d / "tokenized", tmp_path / "plain", None)
    assert plain["steps"] == 20 and weights(tmp_path / "plain") != first


class CharTokenizer:
    """What LabelSwap reads of a tokenizer: one piece per character, three special ids first."""

    def __init__(self, text: str):
        self.pieces = ["<pad>", "</s>", "<unk>"] + sorted(set(text))
        self.all_special_ids = [0, 1, 2]

    def __len__(self):
        return len(self.pieces)

    def convert_ids_to_tokens(self, ids):
        return [self.pieces[i] for i in ids]

    def ids(self, text: str) -> list[int]:
        return [self.pieces.index(c) for c in text] + [1]

    def text(self, ids) -> str:
        return "".join(self.pieces[i] for i in ids if i != 1)


LEXICON = {"愤怒": ["生气", "火大", "气得浑身发抖"], "失望": ["灰心", "心一下子凉了"], "开心": ["高兴", "乐开了花"],
           "害怕": ["怕"]}
NEGATION = ("不是生气，是灰心，因为房东又涨了房租", "作者因房东又涨了房租感到失望。")


def swapper(share=1.0, seed=0, max_length=64, extra=""):
    chars = "".join(w for ws in LEXICON.values() for w in ws) + "".join(LEXICON) + "".join(NEGATION) + extra
    tok = CharTokenizer(chars)
    return tok, augment.LabelSwap(tok, LEXICON, share, seed, max_length)


def label_of(wording: str) -> str:
    return next(lab for lab, ws in LEXICON.items() if wording == lab or wording in ws)


def test_label_swap_keeps_the_pair_true_and_the_cue_and_cause_as_they_were():
    tok, sw = swapper()
    feature = {"input_ids": tok.ids(NEGATION[0]), "labels": tok.ids(NEGATION[1])}
    seen = set()
    for epoch in range(30):
        out = sw.swap(feature, epoch)
        src, summary = tok.text(out["input_ids"]), tok.text(out["labels"])
        assert src.startswith("不是") and src.endswith("，因为房东又涨了房租")  # the cue and the cause
        negated, author = src[2:-len("，因为房东又涨了房租")].split("，是")
        new_label = summary[len("作者因房东又涨了房租感到"):-1]
        assert summary == f"作者因房东又涨了房租感到{new_label}。" and new_label in LEXICON
        assert label_of(author) == new_label  # the summary names the author's (swapped) feeling...
        assert label_of(negated) != new_label  # ...and never the negated one's
        assert len(negated) <= 2 and len(author) <= 2  # a word stays a word
        seen.add(new_label)
    assert len(seen) >= 3  # fresh each epoch: the post's feeling is not one fact to remember


def test_label_swap_is_a_function_of_seed_epoch_and_pair_and_leaves_what_it_cannot_swap():
    tok, sw = swapper(share=0.5, extra="和")
    rows = [{"input_ids": tok.ids(f"{w}，因为房东又涨了房租"), "labels": tok.ids(f"作者因房东又涨了房租感到{lab}。")}
            for lab, ws in LEXICON.items() for w in ws for _ in range(1)] * 5
    twin = swapper(share=0.5, extra="和")[1]
    assert all(sw.swap(r, 3) == twin.swap(r, 3) for r in rows)  # no hidden random state
    assert any(sw.swap(r, 3) != sw.swap(r, 4) for r in rows)
    swapped = sum(sw.swap(r, e) != r for r in rows for e in range(8))
    assert 0.3 * 8 * len(rows) < swapped < 0.7 * 8 * len(rows)  # about half of the pairs
    assert all(swapper(share=0.0, extra="和")[1].swap(r, 1) == r for r in rows)
    # nothing to swap consistently: the input holds no wording of the summary's label, or the summary
    # names two labels
    no_wording = {"input_ids": tok.ids("不是生气，因为房东又涨了房租"), "labels": tok.ids("作者因房东又涨了房租感到失望。")}
    two = {"input_ids": tok.ids(NEGATION[0]), "labels": tok.ids("作者因房东又涨了房租感到失望和愤怒。")}
    assert all(sw.swap(f, e) == f for f in (no_wording, two) for e in range(10))


def test_label_swap_cuts_a_lengthened_input_to_the_budget_keeping_its_end():
    tok, sw = swapper(max_length=5)
    feature = {"input_ids": tok.ids("怕，房租"), "labels": tok.ids("作者因房租感到害怕。"),
               "attention_mask": [1] * 5}
    cut = 0
    for e in range(30):
        out = sw.swap(feature, e)
        assert len(out["input_ids"]) <= 5 and out["input_ids"][-1] == 1  # </s> kept
        assert out["attention_mask"] == [1] * len(out["input_ids"])
        cut += not tok.text(out["input_ids"]).endswith("房租")
    assert cut  # a two-character wording for 怕 ran past the budget: the end was cut, </s> kept


def test_the_demo_lexicon_holds_training_wordings_only(tmp_path):
    held = {w.lstrip(demo_data.HELD) for _, words, phrases in demo_data.EMOTIONS.values()
            for w in words + phrases if w.startswith(demo_data.HELD)}
    lexicon = demo_data.lexicon()
    assert set(lexicon) == set(demo_data.EMOTIONS)
    assert not held & {w for ws in lexicon.values() for w in ws}
    assert all(lab in ws for lab, ws in lexicon.items())  # each label's own word is a wording of it
    demo_data.write_lexicon(str(tmp_path / "feelings.json"))
    assert dataio.read_lexicon(tmp_path / "feelings.json") == lexicon


@pytest.mark.parametrize("content, says", [
    (None, "no such file"),
    ('{"愤怒": ["生气",\n  "火大"', "line 2: not JSON"),
    ('["生气"]', "expected a non-empty JSON object"),
    ('{"愤怒": "生气"}', "key '愤怒': expected a list"),
])
def test_a_bad_lexicon_names_the_file_and_what_to_do(tmp_path, content, says):
    path = tmp_path / "feelings.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(dataio.DataError, match=says) as e:
        dataio.read_lexicon(path)
    assert str(path) in str(e.value)


def test_feeling_tags_mark_the_authors_wording_and_not_the_negated_one():
    tok, _ = swapper(extra="和")
    tagger = augment.FeelingTags(tok, LEXICON)
    text, summary = NEGATION  # 不是生气，是灰心 -> 失望
    tags = tagger.tags(tok.ids(text), tok.ids(summary))
    assert len(tags) == len(tok.ids(text))
    assert "".join(c for c, t in zip(text, tags) if t == 1) == "灰心"
    assert "".join(c for c, t in zip(text, tags) if t == 0) == "生气"
    assert tags.count(-100) == len(tags) - 4  # the cue, the cause and </s> carry no target
    # a summary that names no label, or two, says nothing of which word is the author's
    assert set(tagger.tags(tok.ids(text), tok.ids("作者因房东又涨了房租感到"))) == {-100}
    assert set(tagger.tags(tok.ids(text), tok.ids("作者因房东又涨了房租感到失望和愤怒"))) == {-100}


def test_feeling_tags_ride_the_batch_and_train_the_head_in_training_only(data, tmp_path, monkeypatch):
    import torch
    from transformers import DataCollatorForSeq2Seq

    from emosum import hf, params
    from emosum.trainer_ext import token_mean_loss

    d, tok, rows = data
    tagger = augment.FeelingTags(tok, dataio.read_lexicon(section("train").label_lexicon))
    tagged = [r for r in rows if 1 in tagger.tags(r["input_ids"], r["labels"])]
    assert len(tagged) >= 4  # the tiny data holds wordings of its summaries' labels
    batch = tagger.collator(DataCollatorForSeq2Seq(tok, label_pad_token_id=-100))(tagged[:4])
    assert batch["feeling_tags"].shape == batch["input_ids"].shape
    assert (batch["feeling_tags"][batch["attention_mask"] == 0] == -100).all()  # padding carries no target
    torch.manual_seed(0)
    model_p = section("model")
    model = hf.scratch_model(model_p.scratch, tok, True, **model_p.copy_options())
    model.add_feeling_head(1.0)
    labels = batch["labels"]
    model.train()
    out = model(**{k: v for k, v in batch.items() if k != "labels"}, labels=labels)
    assert out.feeling_tags_loss is not None and out.feeling_tags_loss.item() > 0
    without = {k: v for k, v in out.items() if k != "feeling_tags_loss"}
    assert token_mean_loss(out, labels).item() > token_mean_loss(without, labels).item()  # the trainer's loss takes it
    out.feeling_tags_loss.backward()
    assert model.feeling_head.weight.grad.abs().sum() > 0
    model.eval()  # validation: the loss is the summary's likelihood alone
    assert model(**{k: v for k, v in batch.items() if k != "labels"}, labels=labels).feeling_tags_loss is None
    model.drop_feeling_head()
    assert not any(k.startswith("feeling_head") for k in model.state_dict())
    # a plain mT5 has no head to train: a clear error naming the key, before any training
    from stages import train
    monkeypatch.chdir(tmp_path)
    with pytest.raises(params.ParamsError, match="train.feeling_tags.*copy_head"):
        train.run(section("model", copy_head=False), section("train", feeling_tags=1.0), d / "tokenizer",
                  d / "tokenized", tmp_path / "model", None)
    assert not (tmp_path / "model").exists()
