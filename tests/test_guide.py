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
                  tmp_path / "splits")
    stats = tokenize.run(section("model"), section("tokenize", guide="clauses"), tmp_path / "splits",
                         tmp_path / "tokenizer", tmp_path / "tokenized")
    g = stats["guide"]
    assert g["used"] == "clauses" and (tmp_path / "tokenizer" / guide.FILE).is_file()
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
