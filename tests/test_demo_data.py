import gzip
import json
import re

import pytest

from conftest import ROOT
from emosum import demo_data


def test_generator_is_deterministic_and_varied():
    a, b = demo_data.generate(300, seed=3, heldout=20), demo_data.generate(300, seed=3, heldout=20)
    assert a == b
    assert demo_data.generate(300, seed=4, heldout=20) != a
    assert {r["type"] for r in a} == {"diary", "help", "chat"}
    assert {r["split"] for r in a} == {"train", "heldout"} and sum(r["split"] == "heldout" for r in a) == 20
    assert len({r["emotion"] for r in a}) >= 12
    assert all(10 <= len(r["summary"]) <= 90 for r in a)


def test_committed_file_is_what_the_generator_makes():
    path = ROOT / "data" / "demo" / "emotions.jsonl.gz"
    assert path.stat().st_size < 3_000_000
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        committed = [json.loads(line) for line in fh]
    assert committed == demo_data.generate(13_000, seed=0, heldout=400)
    lengths = sorted(len(r["text"]) for r in committed)
    assert lengths[0] < 40 and lengths[-1] > 1500  # one sentence up to far past 512 tokens


def test_causes_are_open_not_a_closed_list():
    """The first demo had 36 causes, each summarised by one fixed phrase: a model could score 100%
    by classifying. Now most causes are new, and each is stated as the text states it."""
    rows = demo_data.generate(4000, seed=0)
    train, test = rows[:3000], rows[3000:]
    seen = {r["cause"] for r in train}
    assert len(seen) > 2000
    assert sum(r["cause"] not in seen for r in test) / len(test) > 0.6


def test_every_summary_is_derivable_from_its_text():
    """The summary copies the cause clause as written (one rule: without the time word before it)
    and names the label of a feeling the text shows through one of that label's wordings."""
    for r in demo_data.generate(2000, seed=0, heldout=300):
        assert r["cause"] in r["text"], r
        assert r["cause"] in r["summary"] and r["emotion"] in r["summary"]
        _, words, phrases = demo_data.EMOTIONS[r["emotion"]]
        held = r["wording"] in ("new_word", "new_phrase")
        assert (r["split"] == "heldout") or r["wording"] == "seen"
        family = demo_data._family(words + phrases, held)
        assert any(w in r["text"] for w in family), r


def test_heldout_vocabulary_is_absent_from_training():
    train_v, held_v = demo_data.Vocab(False), demo_data.Vocab(True)
    for slot in ("P", "pet", "O", "On", "F", "L", "Ln", "A", "bad", "good", "given"):
        t, h = set(getattr(train_v, slot)), set(getattr(held_v, slot))
        assert t and h and not t & h, slot
    # the feeling wordings of the held-out split are not used in training texts
    rows = demo_data.generate(3000, seed=0, heldout=300)
    train_text = "\n".join(r["text"] for r in rows if r["split"] == "train")
    for emotion, (_, words, phrases) in demo_data.EMOTIONS.items():
        held = demo_data._family(words + phrases, True)
        assert held, emotion
        # a held-out phrase (4+ characters) never occurs in a training text
        assert not [p for p in held if len(p) >= 4 and p in train_text], emotion
    # the held-out split's feelings: new constructions, words and phrases, and a quarter seen
    kinds = {k: sum(r["wording"] == k for r in rows if r["split"] == "heldout") / 300
             for k in ("seen", "new_form", "new_word", "new_phrase")}
    assert 0.15 < kinds["seen"] < 0.35 and kinds["new_form"] > 0.35 and kinds["new_word"] > 0.08 and kinds["new_phrase"] > 0.08
    # held-out causes: nearly all new (only frames without a vocabulary slot repeat)
    train_causes = {r["cause"] for r in rows if r["split"] == "train"}
    held = [r for r in rows if r["split"] == "heldout"]
    assert sum(r["cause"] in train_causes for r in held) / len(held) < 0.15
    # and the names in held-out chats use given-name characters no training name has
    given_train = set(train_v.given)
    for r in held:
        if r["type"] == "chat":
            name = r["summary"].split("因")[0]
            assert name[-1] not in given_train or re.match(r"^老", name), name


def test_distractors_are_there():
    rows = demo_data.generate(3000, seed=0)
    texts = [r["text"] for r in rows]
    share = lambda pat: sum(bool(re.search(pat, t)) for t in texts) / len(texts)  # noqa: E731
    assert share(r"不是.{1,4}，是|说不上|倒也不") > 0.05        # negated feelings
    assert share(r"^.{0,20}?(好|很|特别|太).{0,8}[，。]因为") > 0.01 or share(r"，因为") > 0.05  # feeling first
    assert share(r"倒是挺|说他很|最近很|这几天很|今天很") > 0.1  # other people's feelings
    late = [r for r in rows if len(r["text"]) > 400 and r["text"].index(r["cause"]) > 300]
    assert len(late) > 30                                       # long posts where the cause comes late


def test_a_skewed_pool_crowds_one_slice_and_leaves_the_heldout_split_alone():
    from collections import Counter

    plain, skewed = demo_data.generate(2000, 0, 100), demo_data.generate(2000, 0, 100, skew=0.6)
    train = [r for r in skewed if r["split"] == "train"]
    emotions = Counter(r["emotion"] for r in train)
    # 60% from the slice, plus its ordinary 1/15 share of the rest
    assert 0.6 < emotions[demo_data.SKEW_EMOTION] / len(train) < 0.7
    assert Counter(r["emotion"] for r in plain if r["split"] == "train")[demo_data.SKEW_EMOTION] / 2000 < 0.1
    narrow = [r for r in train if r["emotion"] == demo_data.SKEW_EMOTION and r["type"] == "diary"]
    # crowded, not copies: three frames repeat causes (about 80% distinct), the texts around them vary
    assert len({r["cause"] for r in narrow}) > 0.5 * len(narrow) and len({r["text"] for r in narrow}) == len(narrow)
    assert [r for r in skewed if r["split"] == "heldout"] == [r for r in plain if r["split"] == "heldout"]


def test_a_duplicated_pool_retells_earlier_pairs_that_the_near_duplicate_check_finds():
    """--duplicates: a share of the training pairs retell an earlier one (same cause, feeling and
    summary, one other sentence dropped or swapped): near-duplicates, not copies, most of which
    the subsample stage's check (character 5-gram Jaccard >= 0.6) finds."""
    from emosum import near_dups

    plain, dup = demo_data.generate(1500, 0, 50), demo_data.generate(1500, 0, 50, duplicates=0.3)
    train = [r for r in dup if r["split"] == "train"]
    by_id = {r["id"]: r for r in train}
    retold = [r for r in train if "duplicate_of" in r]
    assert 0.25 < len(retold) / len(train) < 0.35
    for r in retold:
        src = by_id[r["duplicate_of"]]
        assert "duplicate_of" not in src and src["id"] < r["id"]
        assert (r["summary"], r["cause"], r["emotion"]) == (src["summary"], src["cause"], src["emotion"])
        assert r["cause"] in r["text"] and r["text"] != src["text"]
    sims = [near_dups.jaccard(near_dups.shingles(r["text"]), near_dups.shingles(by_id[r["duplicate_of"]]["text"]))
            for r in retold]
    assert sum(s >= 0.6 for s in sims) / len(sims) > 0.6  # most are near-duplicates at the stage's threshold
    found = near_dups.find([r["text"] for r in train], ["train"] * len(train), 0.6, ["train"])
    dropped = {train[i]["id"] for i, _, _ in found}
    assert len(dropped & {r["id"] for r in retold}) >= 0.9 * sum(s >= 0.6 for s in sims)
    # the held-out split and the default pool are untouched by the option
    assert [r for r in dup if r["split"] == "heldout"] == [r for r in plain if r["split"] == "heldout"]
    assert demo_data.generate(1500, 0, 50, duplicates=0.0) == plain


def test_a_recast_pool_tells_earlier_causes_again_with_another_feeling_in_a_new_text():
    """--recast: a share of the training pairs tell an earlier pair's cause with another feeling
    (the same valence where the cause came from a frame of one), in a text of their own: the cause
    alone no longer tells the feeling. The held-out split and the default pool stay as they are."""
    from emosum import near_dups

    plain, rc = demo_data.generate(1500, 0, 50), demo_data.generate(1500, 0, 50, recast=0.4)
    train = [r for r in rc if r["split"] == "train"]
    by_id = {r["id"]: r for r in train}
    recast = [r for r in train if "recast_of" in r]
    assert 0.35 < len(recast) / len(train) < 0.45
    same_valence = 0
    for r in recast:
        src = by_id[r["recast_of"]]
        assert "recast_of" not in src and src["id"] < r["id"]
        assert r["cause"] == src["cause"] and r["emotion"] != src["emotion"]
        assert r["cause"] in r["text"] and r["summary"] != src["summary"]
        assert f"感到{r['emotion']}" in r["summary"]
        same_valence += demo_data.EMOTIONS[r["emotion"]][0] == demo_data.EMOTIONS[src["emotion"]][0]
    # a frame's cause keeps its valence (half the causes), a free one takes either: about 0.75 alike
    assert 0.6 < same_valence / len(recast) < 0.9
    sims = [near_dups.jaccard(near_dups.shingles(r["text"]), near_dups.shingles(by_id[r["recast_of"]]["text"]))
            for r in recast]
    assert sum(s >= 0.6 for s in sims) / len(sims) < 0.2  # new texts, mostly not near-duplicates
    assert [r for r in rc if r["split"] == "heldout"] == [r for r in plain if r["split"] == "heldout"]
    assert demo_data.generate(1500, 0, 50, recast=0.0) == plain


def test_the_feeling_shape_bench_finds_the_generators_negations_and_other_peoples_feelings():
    """bench/feeling_shapes.py splits emotion recall by the generator's templates; it must find
    them as the generator writes them (12% negations, 8% someone else's feeling beside the
    author's) and not call a plain text one."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("feeling_shapes", ROOT / "bench" / "feeling_shapes.py")
    shapes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shapes)
    assert shapes.shape("因为外公住院了，不是生气，不安得要命。") == "negation"
    assert shapes.shape("同桌终于戒烟了，说不上焦虑，更多的是心凉到了极点。") == "negation"
    assert shapes.shape("老乡倒是挺委屈的，我却心里满心期待。") == "someone else's"
    assert shapes.shape("明明不是我的错却没人信我，真的好委屈。") == "plain"
    rows = demo_data.generate(n=2000, seed=3, heldout=0)
    share = {k: sum(shapes.shape(r["text"]) == k for r in rows) / len(rows) for k in ("negation", "someone else's")}
    assert 0.09 < share["negation"] < 0.15, share
    assert 0.05 < share["someone else's"] < 0.11, share


def test_the_labelled_proxy_is_held_out_text_with_six_labels_and_its_own_frame():
    """bench/labelled_proxy.py (the README's stand-in for a small labelled news set): held-out demo
    posts, the 15 feelings folded into 6 labels, a summary frame of its own that states the cause
    as the text does."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("labelled_proxy", ROOT / "bench" / "labelled_proxy.py")
    proxy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(proxy)
    assert set(proxy.FOLD) == set(demo_data.EMOTIONS) and len(set(proxy.FOLD.values())) == 6
    rows = proxy.make(seed=5, train=40, test=10)
    assert [r["split"] for r in rows] == ["train"] * 40 + ["test"] * 10
    held = [r for r in demo_data.generate(0, 5, 50)]
    assert [r["text"] for r in rows] == [r["text"] for r in held]  # the held-out vocabulary's posts
    for r, h in zip(rows, held):
        assert r["emotion"] == proxy.FOLD[h["emotion"]]
        assert r["summary"] == f"{r['emotion']}，因为{r['cause']}。" and r["cause"] in r["text"]
    long = proxy.make(seed=5, train=8, test=2, min_chars=100, max_chars=600)  # news-like lengths
    assert len(long) == 10 and all(100 <= len(r["text"]) <= 600 for r in long)
    with pytest.raises(ValueError, match="widen"):  # a window no post fits: an error, not an endless loop
        proxy.make(seed=5, train=2, test=1, min_chars=50_000)
