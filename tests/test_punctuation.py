"""Full-width punctuation restored where the tokenizer's NFKC folded it (emosum/punctuation.py)."""
import json
import unicodedata

import pytest

from emosum import punctuation

NFKC = lambda s: unicodedata.normalize("NFKC", s)  # noqa: E731  what mT5's and our SentencePiece normalisers do


def test_the_table_holds_the_marks_the_tokenizer_folds_and_the_summaries_write_full_width():
    summaries = ["楼主因加班感到疲惫，想知道该怎么办。", "作者因考试通过感到开心！", "小王因A,B感到难过。", "作者因x感到y。"]
    # ，: 1 full-width against 1 ASCII -> not more often: left alone; ！: full-width only -> restored
    assert punctuation.fit(summaries, NFKC) == {"!": "！"}
    assert punctuation.fit(summaries + ["作者因x，y感到z。"], NFKC) == {",": "，", "!": "！"}
    # a tokenizer that keeps the full-width marks: the model writes what it read, nothing to restore
    assert punctuation.fit(summaries + ["作者因x，y感到z。"], lambda s: s) == {}
    # CSL-like summaries written with ASCII marks: nothing restored either
    assert punctuation.fit(["基于A的B研究:方法,结果", "关于C的D(综述)"], NFKC) == {}


def test_restore_changes_marks_next_to_cjk_characters_only():
    table = {",": "，", "(": "（", ")": "）", "?": "？"}
    assert punctuation.restore("楼主因在网吧迷了路,手机也没电了感到焦虑,想知道该怎么办?", table) == \
        "楼主因在网吧迷了路，手机也没电了感到焦虑，想知道该怎么办？"
    assert punctuation.restore("花了3,000元 (about $400), ok?", table) == "花了3,000元 (about $400), ok?"
    assert punctuation.restore("X,想知道 (注)", table) == "X，想知道 （注）"
    assert punctuation.restore("感到焦虑,想知道", {}) == "感到焦虑,想知道"


def test_a_saved_table_loads_back_and_a_broken_one_names_its_file(tmp_path):
    punctuation.save({",": "，"}, tmp_path)
    assert punctuation.load(tmp_path) == {",": "，"}
    assert punctuation.load(tmp_path / "elsewhere") == {}  # no table: nothing restored
    (tmp_path / punctuation.FILE).write_text(json.dumps({"format": 1, "restore": {"a": "，"}}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"punctuation\.json: not a readable punctuation table.*dvc repro"):
        punctuation.load(tmp_path)
