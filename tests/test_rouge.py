import pytest

from emosum import rouge


def test_identical_chinese_scores_one_at_both_levels():
    text = "作者因考研失利感到焦虑，担心未来。"
    for tok in ("char", "jieba"):
        assert rouge.rouge([text], [text], tok) == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}


def test_disjoint_scores_zero_and_partial_overlap_is_between():
    assert rouge.rouge(["今天天气好"], ["我很难过"])["rouge1"] == 0.0
    r = rouge.rouge(["作者感到焦虑"], ["作者因失业感到焦虑"])
    assert 0 < r["rouge2"] < r["rouge1"] < 1


def test_full_width_and_ascii_punctuation_score_the_same():
    # SentencePiece maps "，" to ","; the metric normalises both sides the same way.
    assert rouge.rouge(["作者很开心,因为升职"], ["作者很开心，因为升职"])["rougeL"] == 1.0


def test_character_level_counts_characters():
    # 2 of 4 reference characters, 2 of 2 predicted: P=1, R=0.5, F1=2/3
    assert rouge.rouge(["开心"], ["非常开心"])["rouge1"] == pytest.approx(2 / 3)


def test_lead_k_uses_median_reference_length():
    k, lead = rouge.lead_k(["一二三四五六", "甲乙丙丁戊己"], ["ab", "abcd"])
    assert k == 3 and lead == ["一二三", "甲乙丙"]
