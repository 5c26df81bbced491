"""Fact recall and the constant-summary floor: measures a template-writing model cannot pass."""
import json

import pytest

from conftest import tiny_section as section, write_demo_rows
from emosum import dataio, demo_data, facts, params
from stages import evaluate, subsample

ROWS = demo_data.generate(400, seed=5)
KNOWN = {c: {r[c] for r in ROWS} for c in ("cause", "emotion")}


def recall(preds, rows=ROWS, cols=("cause", "emotion"), max_label_values=100):
    return facts.recall(preds, rows, list(cols), KNOWN, max_label_values)


def test_the_references_state_every_fact_and_a_constant_states_few():
    right, _ = recall([r["summary"] for r in ROWS])
    assert right == {"cause": 1.0, "cause_half": 1.0, "emotion": 1.0, "all": 1.0}
    const, details = recall(["作者因考研失利感到焦虑。"] * len(ROWS))
    assert const["emotion"] < 0.15 and const["cause"] < 0.1 and const["all"] < 0.02
    # the confusions say what the constant named instead of the truth
    assert details["emotion"]["top_confusions"][0]["named"] == "焦虑"
    assert details["emotion"]["recall_per_value"]["焦虑"]["recall"] == 1.0


def test_naming_every_label_value_scores_nothing():
    every = "".join(sorted(KNOWN["emotion"]))
    scores, details = recall([r["summary"] + every for r in ROWS])
    assert scores["emotion"] == 0.0 and scores["cause"] == 1.0 and scores["all"] == 0.0
    assert details["emotion"]["label"]
    # with too few allowed label values it is a free-text fact: containing the value is enough
    loose, details = recall([r["summary"] + every for r in ROWS], max_label_values=5)
    assert loose["emotion"] == 1.0 and not details["emotion"]["label"]


def test_a_value_inside_a_longer_named_value_counts_once():
    rows = [{"city": "北京"}, {"city": "南京"}]
    known = {"city": {"北京", "南京", "北京市"}}
    scores, _ = facts.recall(["他住在北京市。", "他住在南京。"], rows, ["city"], known, 100)
    assert scores["city"] == 0.5  # "北京市" is another value, not 北京 plus 北京市


def test_rows_without_a_value_are_not_counted():
    scores, details = facts.recall(["甲", "乙"], [{"c": "甲"}, {"c": ""}], ["c"], {"c": {"甲", "乙"}}, 100)
    assert scores["c"] == 1.0 and details["c"]["rows"] == 1


def test_best_constant_is_the_central_training_summary():
    summaries = [r["summary"] for r in ROWS]
    best = facts.best_constant(summaries, seed=0)
    assert best in summaries
    assert best == facts.best_constant(summaries, seed=0)  # seeded
    from emosum import rouge

    score = lambda c: rouge.rouge([c] * 100, summaries[:100], "char")["rougeL"]  # noqa: E731
    assert score(best) > score("小雨因要去看盼望已久的演唱会感到期待，希望有人能理解自己。")
    assert score(best) > score(summaries[0]) - 1e-9 or best == summaries[0]


def test_score_warns_when_a_floor_is_not_beaten(caplog):
    refs = [r["summary"] for r in ROWS[:20]]
    sources = [r["text"] for r in ROWS[:20]]
    const = facts.best_constant(refs)
    metrics, _ = evaluate.score(sources, [const] * 20, refs, const)
    assert metrics["rougeL_minus_constant"] == 0 and "does not beat both floors" in caplog.text
    caplog.clear()
    metrics, _ = evaluate.score(sources, refs, refs, const)
    assert metrics["rougeL_minus_constant"] > 0 and "does not beat" not in caplog.text


def test_subsample_carries_fact_columns_and_names_a_missing_one(tmp_path):
    src = write_demo_rows(tmp_path / "demo.jsonl", n=40)
    data = params.parse_section("data", {"path": str(src)})
    subsample.run(data, section("subsample"), tmp_path / "splits", fact_columns=["cause", "emotion"])
    rows = [json.loads(line) for line in open(tmp_path / "splits" / "test.jsonl", encoding="utf-8")]
    assert rows and all(set(r["facts"]) == {"cause", "emotion"} and r["facts"]["cause"] in r["summary"]
                        for r in rows)
    before = (tmp_path / "splits" / "test.jsonl").read_bytes()
    with pytest.raises(dataio.DataError, match=r"demo.jsonl:1: no column 'feeling'.*evaluate.fact_columns"):
        subsample.run(data, section("subsample"), tmp_path / "splits", fact_columns=["feeling"])
    assert (tmp_path / "splits" / "test.jsonl").read_bytes() == before  # nothing half-written
