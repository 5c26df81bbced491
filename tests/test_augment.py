"""Copy noise (train.copy_noise, emosum/augment.py): copied characters swapped alike in the input
and the summary, nothing else touched, the same draw for the same seed, epoch and pair, and a
training run that uses it resumes mid-epoch into the uninterrupted run's weights."""
import hashlib
import shutil

import pytest
from datasets import load_from_disk
from transformers import AutoTokenizer

from conftest import tiny_section as section, tiny_tokenized
from emosum import augment


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

    d, _, _ = data
    monkeypatch.chdir(tmp_path)
    weights = lambda p: hashlib.sha256((p / "model.safetensors").read_bytes()).hexdigest()  # noqa: E731
    cfg = section("train", epochs=2, max_steps=-1, save_steps=5, copy_noise=0.5)
    whole = train.run(section("model"), cfg, d / "tokenizer", d / "tokenized", tmp_path / "model", None)
    assert whole["steps"] == 20
    first = weights(tmp_path / "model")
    run_dir = next((tmp_path / ".scratch" / "train").iterdir())
    shutil.rmtree(run_dir / "checkpoint-20")
    again = train.run(section("model"), cfg, d / "tokenizer", d / "tokenized", tmp_path / "model", None)
    assert again["resumed_from_step"] == 15
    assert weights(tmp_path / "model") == first
    # and the noise did something: without it, other weights
    plain = train.run(section("model"), section("train", epochs=2, max_steps=-1, save_steps=5, copy_noise=0.0),
                      d / "tokenizer",
                      d / "tokenized", tmp_path / "plain", None)
    assert plain["steps"] == 20 and weights(tmp_path / "plain") != first
