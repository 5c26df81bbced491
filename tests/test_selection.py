"""Input selection (emosum/selection.py): the budget, the order, short inputs untouched, the oracle,
`auto` falling back to lead, one path for the tokenize stage and `summarize`, a scorer saved as
plain JSON."""
import json
import pickle

import pytest

from conftest import tiny_section as section, train_one_step, write_demo_rows
from emosum import params, selection, summarize
from stages import subsample, tokenize

FILLER = ["今天天气不错。", "楼下的装修声从早响到晚。", "中午在公司楼下吃了碗面。", "手机屏幕又摔裂了一角。",
          "晚上追了一部老剧。", "闹钟响了三次才起来。", "新买的耳机音质还行。", "公交车晚点了二十分钟。"]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    d = tmp_path_factory.mktemp("seltok")
    texts = FILLER + ["因为考研又没考上，整晚睡不着。", "作者因考研失利感到焦虑。", "没有标点的一段话" * 5]
    return tokenize.train_sentencepiece(texts * 20, 400, d, max_piece_length=2, character_coverage=1.0)


def long_text(key: str, at: int, n: int = 12) -> str:
    parts = [FILLER[i % len(FILLER)] for i in range(n)]
    parts.insert(at, key)
    return "".join(parts)


def test_sentences_end_at_punctuation_turns_and_closing_quotes():
    text = "他说：“好的。”然后呢？！哈哈……\n小雨：在吗\n阿杰：别提了；收敛性.速度为3.5米"
    got = [text[a:b] for a, b in selection.sentence_spans(text)]
    assert got == ["他说：“好的。”", "然后呢？！", "哈哈……\n", "小雨：在吗\n", "阿杰：别提了；", "收敛性.", "速度为3.5米"]
    assert "".join(got) == text


def test_budget_respected_order_kept_short_inputs_untouched(tok):
    max_len = 24
    short = "作者因考研失利感到焦虑。"
    texts = [short] + [long_text("因为考研又没考上，整晚睡不着。", at) for at in (0, 5, 11)]
    docs = selection.tokenize_docs(tok, texts)
    chosen = [set(selection.oracle_order(d, "考研没考上睡不着", selection.budget_of(d, max_len))) for d in docs[1:]]
    scorer = selection.Scorer.fit(docs[1:] * 3, chosen * 3, selection.budget_of(docs[1], max_len))
    ids = selection.encode(tok, texts, max_len, scorer=scorer)
    assert ids[0] == tok(short)["input_ids"]  # fits: exactly the plain encoding
    for text, got in zip(texts[1:], ids[1:]):
        full = tok(text, add_special_tokens=False)["input_ids"]
        assert len(got) == max_len and got[-1] == tok.eos_token_id
        it = iter(full)  # a subsequence of the text's own ids: original order kept
        assert all(t in it for t in got[:-1])
        assert "考研又没考上" in tok.decode(got, skip_special_tokens=True)  # the key sentence, wherever it was


def test_oracle_labels_on_a_hand_made_example(tok):
    sents = ["今天天气不错。", "因为考研又没考上。", "整晚睡不着。", "新买的耳机音质还行。", "晚上追了一部老剧。"]
    doc = selection.tokenize_docs(tok, ["".join(sents)])[0]
    # the reference's bigrams are in sentences 1 and 2 only; 1 holds more of them, so it is picked first
    assert selection.oracle_order(doc, "考研又没考上，睡不着", 200) == [1, 2]
    # a budget that holds sentence 1 alone
    n1 = doc.ranges[1][1] - doc.ranges[1][0]
    assert selection.oracle_order(doc, "考研又没考上，睡不着", n1) == [1]


def test_no_sentence_punctuation_is_cut_like_lead(tok):
    text = "没有标点的一段话" * 30
    docs = selection.tokenize_docs(tok, [text, long_text("因为考研又没考上，整晚睡不着。", 9)])
    scorer = selection.Scorer.fit(docs[1:] * 2, [{9}, {9}], 20)
    assert selection.encode(tok, [text], 21, scorer=scorer) == [tok(text, truncation=True, max_length=21)["input_ids"]]


def test_coverage_counts_reference_bigrams():
    assert selection.coverage("考研失利", "考研失利") == 1.0
    assert selection.coverage("今天天气", "考研失利") == 0.0
    assert selection.coverage("考研，", "考研失利。") == pytest.approx(1 / 3)  # 考研 of 考研 研失 失利
    assert selection.coverage("x", "好") is None


def rows_with_key_at(at_end: bool, n: int) -> list[dict]:
    out = []
    for i in range(n):
        key = f"因为考研第{i}次又没考上，整晚睡不着。"
        text = long_text(key, 12 if at_end else 0)
        out.append({"text": text, "summary": key})
    return out


@pytest.mark.parametrize("at_end", [False, True])
def test_auto_uses_learned_only_where_it_helps(tok, at_end):
    rows = {s: rows_with_key_at(at_end, n) for s, n in (("train", 30), ("validation", 10), ("test", 10))}
    scorer, ids, stats = selection.plan("auto", tok, rows, 24)
    cov = stats["splits"]["validation"]["coverage"]
    if at_end:  # the lead misses the key sentence: the learned selection keeps it
        assert stats["used"] == "learned" and scorer is not None
        assert cov["learned"] - cov["lead"] >= 0.01 and cov["kept"] == cov["learned"]
    else:  # the lead already holds it: no gain, so lead, and no scorer to save
        assert stats["used"] == "lead" and scorer is None and "does not raise" in stats["why"]
        assert ids["test"] == [tok(r["text"], truncation=True, max_length=24)["input_ids"] for r in rows["test"]]
    assert set(cov) == {"kept", "lead", "learned", "oracle", "whole"}
    assert cov["lead"] <= cov["oracle"] and cov["kept"] <= cov["whole"] + 1e-9


def test_saved_scorer_is_json_and_loads_without_pickle(tok, tmp_path, monkeypatch):
    rows = {s: rows_with_key_at(True, n) for s, n in (("train", 30), ("validation", 10), ("test", 10))}
    scorer, ids, _ = selection.plan("learned", tok, rows, 24)
    path = selection.save(scorer, tmp_path)
    json.loads(path.read_text(encoding="ascii"))  # plain JSON

    def refuse(*a, **k):
        raise AssertionError("pickle used")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    again = selection.load(tmp_path)
    texts = [r["text"] for r in rows["test"]]
    assert selection.encode(tok, texts, 24, scorer=again) == ids["test"]
    path.write_text('{"format": 1, "kind": "char-tfidf-logistic"}', encoding="utf-8")
    with pytest.raises(selection.SelectorError, match="selector.json"):
        selection.load(tmp_path)


def test_summarize_feeds_the_model_the_ids_evaluate_does(tmp_path, monkeypatch):
    """The tokenize stage selects (learned), the train stage saves the scorer with the model, and
    `summarize` gives a long test text the same ids as data/tokenized/test."""
    from datasets import load_from_disk

    src = write_demo_rows(tmp_path / "demo.jsonl", n=120)
    subsample.run(params.parse_section("data", {"path": str(src)}), section("subsample", max_samples=100),
                  tmp_path / "splits")
    stats = tokenize.run(section("model"), section("tokenize", max_source_length=24, select="learned"),
                         tmp_path / "splits", tmp_path / "tokenizer", tmp_path / "tokenized")
    assert stats["selection"]["used"] == "learned" and (tmp_path / "tokenizer" / selection.FILE).is_file()
    train_one_step(tmp_path)
    assert (tmp_path / "model" / selection.FILE).is_file()
    test_rows = [json.loads(line) for line in open(tmp_path / "splits" / "test.jsonl", encoding="utf-8")]
    expected = load_from_disk(str(tmp_path / "tokenized"))["test"]["input_ids"]
    long = [i for i, e in enumerate(expected) if len(e) == 24]
    assert long, "no test input longer than the budget"
    seen = {}
    import emosum.generation

    monkeypatch.setattr(emosum.generation, "generate",
                        lambda model, tok, ids, *a, **k: [""] * len(seen.setdefault("ids", ids)))
    summarize.summarize([test_rows[i]["text"] for i in long], str(tmp_path / "model"))
    assert seen["ids"] == [expected[i] for i in long]
    # and the selection is not the lead for some of them
    lead = [selection.encode(tokenize.hf.load_tokenizer(str(tmp_path / "model")), [test_rows[i]["text"]], 24)[0]
            for i in long]
    assert any(a != b for a, b in zip(lead, seen["ids"]))


def test_a_sentence_longer_than_the_budget_is_selected_by_its_clauses(tok):
    """Much real Chinese chains clauses with commas for a whole paragraph: one 'sentence' longer
    than the budget used to be cut to its first tokens, losing a late cause. It is now cut into
    its clauses, which the selection picks like sentences."""
    clauses = ["今天天气不错", "楼下的装修声从早响到晚", "中午在公司楼下吃了碗面", "手机屏幕又摔裂了一角",
               "晚上追了一部老剧", "闹钟响了三次才起来", "因为考研又没考上", "整晚睡不着"]
    text = "，".join(clauses) + "。"
    max_len = 24
    plain = selection.tokenize_docs(tok, [text])[0]
    assert len(plain.sentences) == 1 and len(plain.ids) > max_len
    doc = selection.tokenize_docs(tok, [text], max_len=max_len)[0]
    assert doc.clause_split == 1 and [doc.text[a:b] for a, b in doc.sentences] == [c + "，" for c in clauses[:-1]] + ["整晚睡不着。"]
    order = selection.oracle_order(doc, "考研没考上睡不着", selection.budget_of(doc, max_len))
    assert order[:2] == [6, 7]
    scorer = selection.Scorer.fit([doc] * 4, [{6, 7}] * 4, selection.budget_of(doc, max_len))
    ids = selection.encode(tok, [text], max_len, scorer=scorer)[0]
    kept = tok.decode(ids, skip_special_tokens=True)
    assert len(ids) == max_len and "考研又没考上" in kept and "睡不着" in kept
    # a sentence that fits is not cut, whatever its commas
    short = selection.tokenize_docs(tok, ["因为考研又没考上，整晚睡不着。"], max_len=max_len)[0]
    assert short.clause_split == 0 and len(short.sentences) == 1
