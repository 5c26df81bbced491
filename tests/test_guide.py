"""Guided inputs (emosum/guide.py): clauses, the oracle's labels, a scorer that finds the copied
clause by its context in texts of words it never saw, plain-JSON save/load, the guide written
before the input within the budget, and one path for the tokenize stage and `summarize`."""
import json
import pickle
import random
import unicodedata

import pytest

from conftest import tiny_section as section, train_one_step, write_demo_rows
from emosum import guide, params, selection, summarize
from stages import subsample, tokenize

WORDS = list("山水风雨花草鸟虫书笔纸墨灯窗门桥车船云星月日江河湖海林石金木火土")
FILLER = ["今天天气不错，", "楼下的装修声从早响到晚。", "中午吃了碗面，", "晚上追了一部老剧。", "闹钟响了三次。"]


def pair(rng: random.Random, words: list[str]) -> tuple[str, str]:
    """A post whose cause clause is marked only by its context (`因为` before it, `气死了` after
    it) among distractor clauses of the same words; the summary copies the cause clause."""
    def clause():
        return "".join(rng.choice(words) for _ in range(rng.randint(4, 7)))

    cause = clause()
    parts = [rng.choice(FILLER) for _ in range(rng.randint(1, 3))] + [clause() + "，" for _ in range(rng.randint(1, 3))]
    parts.insert(rng.randint(0, len(parts)), "因为" + cause + "，气死了。")
    return "".join(parts), f"作者因{cause}感到愤怒。"


def test_clauses_tile_the_text_and_keep_their_punctuation():
    text = "他说：“好的。”然后呢？！哈哈……\n因为考研没考上，整晚睡不着"
    got = guide.clauses(text)
    assert got == ["他说：", "“好的。”", "然后呢？！", "哈哈……", "\n", "因为考研没考上，", "整晚睡不着"]
    assert "".join(got) == text


def test_the_oracle_picks_the_copied_clauses_in_order_of_their_share():
    parts = ["今天天气不错，", "因为考研又没考上，", "整晚睡不着。", "想听听意见。"]
    # the summary's bigrams: 5 in clause 1, 4 in clause 3, none in clauses 0 and 2
    assert guide.oracle(parts, "作者因考研又没考上感到焦虑，想听听意见。") == [1, 3]
    assert guide.oracle(parts, "作者感到焦虑。") == []


def test_the_scorer_finds_the_cause_by_its_context_in_words_it_never_saw(tmp_path):
    rng = random.Random(0)
    seen, unseen = WORDS[:20], WORDS[20:]
    train_pairs = [pair(rng, seen) for _ in range(300)]
    scorer = guide.ClauseScorer.fit([t for t, _ in train_pairs], [s for _, s in train_pairs])
    test_pairs = [pair(rng, unseen) for _ in range(100)]
    texts = [t for t, _ in test_pairs]
    guides = scorer.guides(texts)
    causes = [s[3:-5] for _, s in test_pairs]
    hit = sum(c in g for c, g in zip(causes, guides)) / len(texts)
    assert hit >= 0.9, hit
    # position alone cannot do it: the cause clause moves
    assert len({guide.clauses(t).index(next(c for c in guide.clauses(t) if cause in c))
                for t, cause in zip(texts, causes)}) > 3
    m = guide.measure(scorer, texts, [s for _, s in test_pairs])
    assert m["holds_oracle_clause"] >= 0.9 and m["unguided"] == 0 and 1 <= m["clauses_per_guide"] <= 2
    # saved as plain JSON, loaded to the same guides; no pickle anywhere
    path = guide.save(scorer, tmp_path)
    raw = path.read_bytes()
    json.loads(raw)
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(raw)
    assert guide.load(tmp_path).guides(texts) == guides
    path.write_text('{"format": 1, "kind": "something else"}', encoding="utf-8")
    with pytest.raises(guide.GuideError, match="guide.json"):
        guide.load(tmp_path)


def test_guide_context_adds_the_clauses_beside_each_pick_and_is_saved(tmp_path):
    """`因为X，气死了。`: the feeling (气死了) sits in the clause after the cause, shares no character
    with the summary's cause and is never picked; guide_context 1 brings it (and the clause before)."""
    rng = random.Random(0)
    train_pairs = [pair(rng, WORDS) for _ in range(300)]
    texts, refs = [t for t, _ in train_pairs], [s for _, s in train_pairs]
    plain = guide.ClauseScorer.fit(texts, refs)
    wide = guide.ClauseScorer.fit(texts, refs, context=1)
    picks, wide_picks = plain.picks(texts[:50]), wide.picks(texts[:50])
    for t, a, b in zip(texts, picks, wide_picks):
        n = len(guide.clauses(t))
        assert b[:len(a)] == a   # the picks first (the cause where the input starts), then what is beside them
        assert b[len(a):] == sorted({i for j in a for i in range(max(0, j - 1), min(n, j + 2))} - set(a))
    assert sum("气死了" in g for g in plain.guides(texts[:50])) < 5
    assert sum("气死了" in g for g in wide.guides(texts[:50])) >= 45
    assert "context" not in plain.to_json()   # guides saved before the option read as they did
    guide.save(wide, tmp_path)
    assert guide.load(tmp_path).guides(texts[:50]) == wide.guides(texts[:50])


def test_nothing_to_learn_is_a_clear_error():
    with pytest.raises(guide.GuideError, match="tokenize.guide: none"):
        guide.ClauseScorer.fit(["今天天气不错，晚上追剧。"] * 4, ["无关的摘要"] * 4)


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    d = tmp_path_factory.mktemp("guidetok")
    texts = FILLER + ["因为考研又没考上，整晚睡不着。", "作者因考研失利感到焦虑。", "｜"]
    return tokenize.train_sentencepiece(texts * 20, 400, d, max_piece_length=1, character_coverage=1.0)


def test_the_guide_goes_before_the_text_and_the_budget_holds(tok):
    sep = guide.SEPARATOR
    text = "今天天气不错，因为考研又没考上，整晚睡不着。"
    doc = selection.tokenize_docs(tok, [text], guides=["因为考研又没考上，"], separator=sep)[0]
    nfkc = lambda s: unicodedata.normalize("NFKC", s)  # noqa: E731  (SentencePiece's normalisation: ，-> ,)
    assert tok.decode(doc.prefix_ids + doc.ids) == nfkc("因为考研又没考上，" + sep + text)
    assert tok.decode(doc.ids) == nfkc(text) and doc.guide_cut == 0
    # a guide longer than half the context is cut to it; the separator stays, the text is selected
    long_text = "".join(FILLER * 3) + "因为考研又没考上，整晚睡不着。"
    long_guide = "".join(FILLER * 2)
    max_len = 24
    doc = selection.tokenize_docs(tok, [long_text], max_len=max_len, guides=[long_guide], separator=sep)[0]
    assert doc.guide_cut > 0 and len(doc.prefix_ids) == max_len // 2
    assert tok.decode(doc.prefix_ids[-1:]) == "|"
    # a hinted guide (clauses, separator, label: emosum/guide.py LabelHint) keeps its label through the cut
    hinted = selection.tokenize_docs(tok, [long_text], max_len=max_len, guides=[long_guide + sep + "焦虑"],
                                     separator=sep, hinted=True)[0]
    assert len(hinted.prefix_ids) == max_len // 2 and tok.decode(hinted.prefix_ids[-4:]) == "|焦虑|"
    assert tok.decode(hinted.prefix_ids).startswith(nfkc(long_guide[:4]))   # the clauses, cut at their end
    unhinted = selection.tokenize_docs(tok, [long_text], max_len=max_len, guides=[long_guide + sep + "焦虑"],
                                       separator=sep)[0]
    assert "焦虑" not in tok.decode(unhinted.prefix_ids)   # without the flag the label is the guide's tail, and goes
    [ids] = selection.encode(tok, [long_text], max_len, guide=None)
    assert len(ids) == max_len
    # per-input budgets: a guided long input and an unguided one both fill max_len exactly
    docs = selection.tokenize_docs(tok, [long_text, long_text], max_len=max_len, guides=["因为考研又没考上，", ""],
                                   separator=sep)
    sc = selection.Scorer.fit(docs * 2, [{len(docs[0].sentences) - 1}] * 4, selection.budget_of(docs[1], max_len))
    out = selection.select(docs, max_len, sc)
    assert [len(selection.ids_of(d, r, tok.eos_token_id)) for d, r in zip(docs, out)] == [max_len, max_len]


def test_a_guided_model_and_summarize_see_the_ids_evaluate_does(tmp_path, monkeypatch):
    """tokenize.guide: clauses fits the guide on the training split, writes it before every input
    and saves it with the tokenizer; the train stage copies it into model/, and `summarize` gives a
    test text the same ids as data/tokenized/test."""
    from datasets import load_from_disk

    src = write_demo_rows(tmp_path / "demo.jsonl", n=160)
    subsample.run(params.parse_section("data", {"path": str(src)}), section("subsample", max_samples=140),
                  tmp_path / "splits", fact_columns=["cause", "emotion"])
    stats = tokenize.run(section("model"), section("tokenize", guide="clauses", guide_label="emotion"),
                         tmp_path / "splits", tmp_path / "tokenizer", tmp_path / "tokenized")
    g = stats["guide"]
    assert g["used"] == "clauses" and (tmp_path / "tokenizer" / guide.FILE).is_file()
    assert g["label_hint"]["used"] and set(g["label_hint"]["accuracy"]) >= {"train", "validation", "test"}
    assert g["splits"]["train"]["holds_oracle_clause"] > 0.5 and g["splits"]["test"]["rows"] > 0
    train_one_step(tmp_path)
    assert (tmp_path / "model" / guide.FILE).is_file()
    assert "guide.json" in (tmp_path / "model" / "README.md").read_text(encoding="utf-8")
    test_rows = [json.loads(line) for line in open(tmp_path / "splits" / "test.jsonl", encoding="utf-8")]
    expected = load_from_disk(str(tmp_path / "tokenized"))["test"]["input_ids"]
    seen = {}
    import emosum.generation

    monkeypatch.setattr(emosum.generation, "generate",
                        lambda model, tok, ids, *a, **k: ["感到焦虑,想知道"] * len(seen.setdefault("ids", ids)))
    written = summarize.summarize([r["text"] for r in test_rows], str(tmp_path / "model"))
    assert seen["ids"] == expected
    # and summarize, like evaluate, gives back the full-width marks the tokenizer folded (punctuation.json)
    assert written == ["感到焦虑，想知道"] * len(test_rows)
    tok = tokenize.hf.load_tokenizer(str(tmp_path / "model"))
    sep_id = tok.convert_tokens_to_ids("|")
    assert sum(sep_id in ids for ids in expected) >= len(expected) - 1  # guided (a one-clause text is not)
    # without the guide file the same model reads its inputs unguided
    (tmp_path / "model" / guide.FILE).unlink()
    seen.clear()
    summarize.summarize([r["text"] for r in test_rows], str(tmp_path / "model"))
    assert seen["ids"] != expected and not any(sep_id in ids for ids in seen["ids"])


def test_evaluate_scores_the_guide_alone_as_a_third_floor(tmp_path):
    """A guided model's evaluation reports what writing the guide's clauses as the summary scores
    (ROUGE-L and fact recall), beside the lead and the constant summary; an unguided one does not."""
    from conftest import tiny_tokenized
    from stages import evaluate

    d = tiny_tokenized(tmp_path / "plain", n=120, fact_columns=["cause", "emotion"], guide="none")
    train_one_step(d)
    ev = section("evaluate", fact_columns=["cause", "emotion"], num_beams=1)
    plain, _, _ = evaluate.run(ev, d / "model", d / "tokenized", d / "splits")
    assert "guide_rougeL" not in plain and "guide_fact_recall" not in plain
    tokenize.run(section("model"), section("tokenize", guide="clauses"), d / "splits", d / "tokenizer", d / "tokenized")
    train_one_step(d)
    guided, _, _ = evaluate.run(ev, d / "model", d / "tokenized", d / "splits")
    rows = [json.loads(line) for line in open(d / "splits" / "test.jsonl", encoding="utf-8")]
    g = guide.load(d / "model").guides([r["text"] for r in rows])
    from emosum import rouge

    assert guided["guide_rougeL"] == round(100 * rouge.rouge(g, [r["summary"] for r in rows], "char")["rougeL"], 2)
    assert guided["guide_rougeL"] > guided["lead_rougeL"]  # the guide holds the copied clause; the lead seldom
    cause = sum(r["facts"]["cause"] in x for r, x in zip(rows, g)) / len(rows)
    assert guided["guide_fact_recall"]["cause"] == pytest.approx(cause, abs=0.01)
    # params.yaml's tokenize.guide_label (emotion) gave the guide a label hint: a fourth floor
    said = [x.rsplit(guide.SEPARATOR, 1)[-1] for x in g]
    assert set(said) <= set(guide.load(d / "model").hint.classes)
    assert guided["label_hint_accuracy"] == round(sum(h == r["facts"]["emotion"] for h, r in zip(said, rows)) / len(rows), 4)
    assert "label_hint_accuracy" not in plain


FEELINGS = {"失望": ["灰心", "失望透了"], "害怕": ["吓坏了", "心里发毛"], "生气": ["气死了", "火大"], "感激": ["感恩", "感激不尽"]}


def feeling_post(rng: random.Random, words: list[str]) -> tuple[str, str]:
    """A post with two feeling words beside the cause: the author's and one that is not (negated,
    or someone else's), in either order; only the words around them say which is the author's."""
    cause = "".join(rng.choice(words) for _ in range(rng.randint(4, 6)))
    mine, other = rng.sample(sorted(FEELINGS), 2)
    a, b = rng.choice(FEELINGS[mine]), rng.choice(FEELINGS[other])
    shape = rng.choice([f"不是{b}，是{a}。", f"他倒是挺{b}的，我却{a}。", f"说不上{b}，更多的是{a}。"])
    parts = [rng.choice(FILLER) for _ in range(rng.randint(1, 3))]
    parts.insert(rng.randint(0, len(parts)), f"因为{cause}，{shape}")
    return "".join(parts), f"作者因{cause}感到{mine}。", mine


def test_the_label_hint_reads_whose_feeling_it_is_and_is_saved_as_json(tmp_path):
    """Both feeling words stand in every guide, so counting characters cannot tell the label; the
    hint's trigrams (`不是灰`, `我却吓`) can, on posts of causes it never saw. The training split's
    hints are out of fold, and the hint travels in guide.json (plain JSON) to the same predictions."""
    rng = random.Random(0)
    train = [feeling_post(rng, WORDS[:20]) for _ in range(400)]
    test = [feeling_post(rng, WORDS[20:]) for _ in range(100)]
    texts, refs, labels = zip(*train)
    scorer = guide.ClauseScorer.fit(list(texts), list(refs), context=2)   # the cause and the two clauses after it
    plain = scorer.guides(list(texts))
    hint, oof = guide.LabelHint.fit(guide.hint_docs(list(texts), plain), list(labels), "emotion")
    assert len(oof) == len(train) and hint.fitted["rows"] == 400 and hint.fitted["classes"] == 4
    assert hint.fitted["out_of_fold_accuracy"] == pytest.approx(sum(p == y for p, y in zip(oof, labels)) / 400)
    assert hint.fitted["out_of_fold_accuracy"] >= 0.85
    scorer.hint = hint
    test_texts = [t for t, _, _ in test]
    guides = scorer.guides(test_texts)
    said = [scorer.hint_of(g) for g in guides]
    assert sum(s == y for s, (_, _, y) in zip(said, test)) / len(test) >= 0.9
    # the clauses the guide held before, the separator, then the label
    plain_test = [g.rsplit(guide.SEPARATOR, 1)[0] for g in guides]
    scorer_plain = guide.ClauseScorer.from_json({k: v for k, v in scorer.to_json().items() if k != "label_hint"})
    assert plain_test == scorer_plain.guides(test_texts)
    # given hints (the training split's out-of-fold ones) replace the predictions
    assert scorer.guides(test_texts[:3], hints=["甲", "乙", "丙"])[0].endswith(guide.SEPARATOR + "甲")
    # a unigram model is fooled: both feeling words are in every guide
    unigram = guide.LabelHint._vectorizer(min_df=1)
    unigram.ngram_range = (1, 1)
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=10.0, max_iter=2000).fit(unigram.fit_transform(guide.hint_docs(list(texts), plain)), labels)
    uni = lr.predict(unigram.transform(guide.hint_docs(test_texts, plain_test)))
    assert sum(p == y for p, (_, _, y) in zip(uni, test)) / len(test) < 0.8
    path = guide.save(scorer, tmp_path)
    raw = path.read_bytes()
    assert json.loads(raw)["label_hint"]["label"] == "emotion"
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(raw)
    assert guide.load(tmp_path).guides(test_texts) == guides
    doc = json.loads(raw)
    doc["label_hint"]["classes"] = doc["label_hint"]["classes"][:3]
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(guide.GuideError, match="guide.json.*class counts disagree"):
        guide.load(tmp_path)


def test_a_label_hint_needs_a_label():
    docs = [f"因为第{i}件事，气死了。" for i in range(60)]
    with pytest.raises(guide.GuideError, match="same 'emotion'.*guide_label: null"):
        guide.LabelHint.fit(docs, ["生气"] * 60, "emotion")
    with pytest.raises(guide.GuideError, match="60 distinct values.*free text"):
        guide.LabelHint.fit(docs, [f"第{i}件事" for i in range(60)], "cause")
    # two labels: one row of coefficients, both predicted
    hint, _ = guide.LabelHint.fit(docs, ["生气" if i % 2 else "开心" for i in range(60)], "emotion")
    assert hint.coef.shape[0] == 1 and set(hint.predict(docs)) == {"生气", "开心"}
    assert guide.LabelHint.from_json(json.loads(json.dumps(hint.to_json()))).predict(docs) == hint.predict(docs)
    # folds 0: the training rows get the fitted hint's own predictions (in sample); 1 fold is no split
    two = ["生气" if i % 2 else "开心" for i in range(60)]
    hint0, given = guide.LabelHint.fit(docs, two, "emotion", folds=0)
    assert given == hint0.predict(docs) and hint0.fitted["folds"] == 0
    assert hint0.fitted["in_sample_accuracy"] == round(sum(g == y for g, y in zip(given, two)) / 60, 4)
    with pytest.raises(guide.GuideError, match="guide_label_folds: 1"):
        guide.LabelHint.fit(docs, two, "emotion", folds=1)


def test_tokenize_writes_the_hint_after_the_clauses_and_says_how_often_it_is_right(tmp_path):
    """The tokenize stage with tokenize.guide_label: emotion fits the hint on the training guides,
    writes each input as `<clauses>｜<label>｜<text>`, the training rows with their out-of-fold
    hints (guide_label_folds 5) or the fitted classifier's own (0), and records the hint's accuracy per split; without the fact in the splits, no hint, and why."""
    from conftest import tiny_tokenized

    d = tiny_tokenized(tmp_path / "hint", n=200, fact_columns=["cause", "emotion"], guide="clauses",
                       guide_label="emotion", guide_label_folds=5, max_source_length=128)
    stats = json.loads((tmp_path / "hint" / "tokenizer" / guide.FILE).read_text(encoding="utf-8"))
    assert stats["label_hint"]["label"] == "emotion"
    rows = [json.loads(line) for line in open(d / "splits" / "train.jsonl", encoding="utf-8")]
    from datasets import load_from_disk

    tok = tokenize.hf.load_tokenizer(str(d / "tokenizer"))
    ids = load_from_disk(str(d / "tokenized"))["train"]["input_ids"]
    written = [tok.decode(x, skip_special_tokens=True).split("|")[-2].strip() for x in ids]  # clauses|label|text
    g = guide.load(d / "tokenizer")
    assert set(written) <= set(g.hint.classes)
    texts = [r["text"] for r in rows]
    g_plain = guide.ClauseScorer.from_json({k: v for k, v in g.to_json().items() if k != "label_hint"})
    _, oof = guide.LabelHint.fit(guide.hint_docs(texts, g_plain.guides(texts)), [r["facts"]["emotion"] for r in rows],
                                 "emotion")
    assert written == oof   # the training inputs carry the out-of-fold hints, not the fitted model's
    assert written != g.hint.predict(guide.hint_docs(texts, g_plain.guides(texts)))
    # guide_label_folds 0 (the default): the fitted classifier's own hints, in sample
    d0 = tiny_tokenized(tmp_path / "hint0", n=200, fact_columns=["cause", "emotion"], guide="clauses",
                        guide_label="emotion", guide_label_folds=0, max_source_length=128)
    ids0 = load_from_disk(str(d0 / "tokenized"))["train"]["input_ids"]
    g0 = guide.load(d0 / "tokenizer")
    tok0 = tokenize.hf.load_tokenizer(str(d0 / "tokenizer"))
    assert [tok0.decode(x, skip_special_tokens=True).split("|")[-2].strip() for x in ids0] == \
        g0.hint.predict(guide.hint_docs(texts, g_plain.guides(texts)))
    st = tokenize.fit_label_hint(g_plain, "emotion", {"train": rows}, {"train": g_plain.guides(texts)})
    assert st["accuracy"]["train"] == st["out_of_fold_accuracy"] and g_plain.hint is not None
    none = tokenize.fit_label_hint(g_plain, "emotion", {"train": [{**r, "facts": {}} for r in rows]},
                                   {"train": g_plain.guides(texts)})
    assert none["used"] is False and "no 'emotion' fact" in none["why"]
    with pytest.raises(guide.GuideError, match="1 of .* training rows have no 'emotion'"):
        tokenize.fit_label_hint(g_plain, "emotion", {"train": [{**rows[0], "facts": {}}] + rows[1:]},
                                {"train": g_plain.guides(texts)})
