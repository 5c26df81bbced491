import json

import pytest

from emosum import dataio, params
from stages import subsample


def cfgs(path, **sub):
    data = params.parse_section("data", {"path": str(path)})
    base = {"max_samples": None, "validation_fraction": 0.2, "test_fraction": 0.2, "max_eval_samples": None}
    return data, params.parse_section("subsample", {**base, **sub})


def write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def read(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def test_drops_are_counted_by_reason_and_splits_are_disjoint(tmp_path):
    rows = [{"text": f"第{i}天，我很难过。", "summary": f"作者难过{i}"} for i in range(30)]
    rows += [{"text": "  ", "summary": "空"}, {"text": "有文", "summary": ""}, rows[0], rows[1],
             {"text": "短", "summary": "作者短"},
             # the same input with another summary must stay in one split
             {"text": rows[2]["text"], "summary": "另一个摘要"}]
    data, cfg = cfgs(write(tmp_path / "in.jsonl", rows), min_source_chars=2)
    stats = subsample.run(data, cfg, tmp_path / "out")
    assert stats["rows_read"] == 36
    assert stats["dropped"] == {"empty": 2, "source_too_short": 1, "summary_too_short": 0, "exact_duplicate": 2,
                                "cross_split_duplicate": 0, "near_duplicate": 0, "cross_split_near_duplicate": 0,
                                "unknown_split": 0}
    splits = {s: read(tmp_path / "out" / f"{s}.jsonl") for s in subsample.SPLITS}
    assert sum(map(len, splits.values())) == stats["rows_kept"] == 31
    texts = {s: {r["text"] for r in rs} for s, rs in splits.items()}
    assert not (texts["train"] & texts["test"]) and not (texts["train"] & texts["validation"])
    assert not (texts["test"] & texts["validation"])


def test_test_split_does_not_depend_on_max_samples(tmp_path):
    from conftest import write_demo_rows

    src = write_demo_rows(tmp_path / "demo.jsonl", n=200)
    d1, c1 = cfgs(src, max_samples=None)
    d2, c2 = cfgs(src, max_samples=25)
    s1 = subsample.run(d1, c1, tmp_path / "full")
    s2 = subsample.run(d2, c2, tmp_path / "fast")
    assert s2["splits"]["train"] == 25 < s1["splits"]["train"]
    assert read(tmp_path / "full" / "test.jsonl") == read(tmp_path / "fast" / "test.jsonl")
    # deterministic for the seed
    subsample.run(d2, c2, tmp_path / "again")
    assert read(tmp_path / "again" / "train.jsonl") == read(tmp_path / "fast" / "train.jsonl")


def test_missing_column_names_file_line_and_key(tmp_path):
    src = write(tmp_path / "in.jsonl", [{"text": "我很好", "summary": "好"}, {"source": "x", "summary": "y"}])
    data, cfg = cfgs(src)
    with pytest.raises(dataio.DataError, match=r"in.jsonl:2: no column 'text'.*data.text_column"):
        subsample.run(data, cfg, tmp_path / "out")


def test_malformed_json_names_line_and_keeps_previous_outputs(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.jsonl").write_text("previous\n")
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "我", "summary": "好"}\n{"text": "坏\n', encoding="utf-8")
    data, cfg = cfgs(src)
    with pytest.raises(dataio.DataError, match=r"in.jsonl:2: malformed JSON"):
        subsample.run(data, cfg, out)
    assert (out / "train.jsonl").read_text() == "previous\n"


def test_main_exits_nonzero_with_message(tmp_path, monkeypatch, caplog):
    from conftest import tiny_params
    import yaml

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(data={"path": "nope.jsonl"})))
    assert subsample.main() == 1
    assert "nope.jsonl: file not found" in caplog.text
    assert not (tmp_path / "metrics" / "subsample.json").exists()


def test_extra_test_splits_and_carved_test(tmp_path):
    """The demo's layout: rows marked train (validation and test carved out of them, by input)
    and rows marked heldout, written as their own split; the heldout rows never reach training,
    and an input in both keeps its held-out copy only."""
    rows = [{"text": f"第{i}天，我很难过。", "summary": f"作者难过{i}", "split": "train"} for i in range(40)]
    rows += [{"text": f"另一天{i}，我很开心。", "summary": f"作者开心{i}", "split": "heldout"} for i in range(8)]
    rows += [{"text": rows[0]["text"], "summary": "同一输入", "split": "heldout"}]
    src = write(tmp_path / "in.jsonl", rows)
    data = params.parse_section("data", {"path": str(src), "split_column": "split", "validation_split": None,
                                         "test_split": None, "extra_test_splits": ["heldout"]})
    cfg = params.parse_section("subsample", {"max_samples": None, "validation_fraction": 0.1, "test_fraction": 0.1,
                                             "max_eval_samples": 5})
    stats = subsample.run(data, cfg, tmp_path / "out")
    out = {s: read(tmp_path / "out" / f"{s}.jsonl") for s in ("train", "validation", "test", "heldout")}
    assert stats["splits"] == {"train": 31, "validation": 4, "test": 4, "heldout": 5}  # heldout capped at 5
    assert stats["dropped"]["cross_split_duplicate"] == 1
    assert all(r["summary"].startswith("作者难过") for s in ("train", "validation", "test") for r in out[s])
    assert all(r["split"] == "heldout" for r in out["heldout"])
    assert stats["seen_in_training"]["heldout"]["summary"] == 0


def test_an_extra_split_needs_a_split_column_and_a_new_name():
    with pytest.raises(params.ParamsError, match="extra_test_splits needs data.split_column"):
        params.parse_section("data", {"path": "x.jsonl", "extra_test_splits": ["heldout"]})
    with pytest.raises(params.ParamsError, match="a name of train, validation or test"):
        params.parse_section("data", {"path": "x.jsonl", "split_column": "s", "extra_test_splits": ["test"]})


STORY = "今天早上在地铁上，一位老人把座位让给了抱着孩子的妈妈，车厢里的人都为他鼓掌，我看着也觉得很温暖。"


def test_near_duplicates_are_dropped_within_and_across_splits(tmp_path):
    """The same story told twice (a word changed, a signature added) is one story: a second copy in
    train is dropped, and a training copy of a test story is the one that goes (a leak)."""
    from emosum import near_dups

    other = [{"text": f"第{i}次考试结束后，我{'难过开心生气'[i % 3]}了{i}个小时。", "summary": f"作者{i}", "split": "train"}
             for i in range(20)]
    told_again = STORY.replace("妈妈", "母亲") + "——来自小红"
    leak = STORY.replace("老人", "老大爷")
    assert 0.6 <= near_dups.jaccard(near_dups.shingles(STORY), near_dups.shingles(told_again)) < 1
    rows = other + [{"text": STORY, "summary": "作者温暖", "split": "test"},
                    {"text": leak, "summary": "作者觉得温暖", "split": "train"},
                    {"text": "我的猫昨天走丢了，找了一整夜都没找到，现在心里空落落的。", "summary": "作者难过", "split": "train"},
                    {"text": "我的猫昨天走丢了，找了一整夜都没找到，现在心里空落落的！", "summary": "作者失落", "split": "train"},
                    {"text": "验证一下。" * 3, "summary": "验证", "split": "validation"}]
    data = params.parse_section("data", {"path": str(write(tmp_path / "in.jsonl", rows)), "split_column": "split",
                                         "test_split": "test", "validation_split": "validation"})
    cfg = params.parse_section("subsample", {"max_samples": None, "max_eval_samples": None})
    stats = subsample.run(data, cfg, tmp_path / "out")
    assert stats["dropped"]["cross_split_near_duplicate"] == 1 and stats["dropped"]["near_duplicate"] == 1
    train = {r["text"] for r in read(tmp_path / "out" / "train.jsonl")}
    assert leak not in train and STORY in {r["text"] for r in read(tmp_path / "out" / "test.jsonl")}
    assert sum("猫昨天走丢了" in t for t in train) == 1 and len(train) == 21  # the 20 distinct others kept
    assert stats["near_duplicates"]["found"] == 2
    # null: exact duplicates only, as before
    cfg = params.parse_section("subsample", {"max_samples": None, "max_eval_samples": None,
                                             "near_duplicate_jaccard": None})
    assert subsample.run(data, cfg, tmp_path / "out2")["dropped"]["near_duplicate"] == 0


def _pool(n=300, rare=2):
    from emosum import demo_data

    rows = [{"text": r["text"], "summary": r["summary"], "label": r["emotion"]} for r in demo_data.generate(n, 3, 0)]
    for r in rows[:rare]:
        r["label"] = "罕见"
    for r in rows[rare:]:
        if r["label"] == "罕见":
            r["label"] = "其他"
    return rows


def test_coverage_figures_on_a_hand_made_pool():
    import numpy as np

    from emosum import coverage

    x = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32)
    cl = np.array([0, 0, 1, 1])
    one = coverage.coverage(x, [0], ["a", "a", "b", "b"], [1, 2, 3, 4], 0, cl)
    assert one["mean_similarity_to_nearest_kept"] == 0.5 and one["p10_similarity_to_nearest_kept"] == 0.0
    assert one["clusters_represented"] == 0.5 and one["labels_represented"] == 0.5
    both = coverage.coverage(x, [0, 2], ["a", "a", "b", "b"], [1, 2, 3, 4], 0, cl)
    assert both["mean_similarity_to_nearest_kept"] == 1.0 and both["clusters_represented"] == 1.0


def test_the_representative_cut_keeps_a_rare_label_and_covers_better_than_random():
    rows = _pool()
    cfg = params.parse_section("subsample", {"max_samples": 30, "strategy": "representative"})
    kept, cover = subsample.cut_train(rows, cfg, has_label=True)
    assert len(kept) == 30 and sum(r["label"] == "罕见" for r in kept) >= 1
    assert cover["kept"]["labels_represented"] == 1.0
    assert cover["kept"]["mean_similarity_to_nearest_kept"] > cover["random_cut"]["mean_similarity_to_nearest_kept"]
    # deterministic for a seed
    again, _ = subsample.cut_train(rows, cfg, has_label=True)
    assert [r["text"] for r in again] == [r["text"] for r in kept]
    # a random cut of 30 from 298 + 2 misses the rare label for most seeds: the quota is what keeps it
    rnd = params.parse_section("subsample", {"max_samples": 30, "strategy": "random"})
    missed = sum(not any(r["label"] == "罕见" for r in subsample.cut_train(rows, rnd.model_copy(update={"seed": s}),
                                                                           True)[0]) for s in range(5))
    assert missed >= 3


def test_the_random_pick_keeps_one_pair_of_each_cluster_drawn_by_the_seed():
    import numpy as np

    from emosum import coverage

    rng = np.random.default_rng(0)
    centres = np.eye(4, dtype=np.float32)  # four tight clusters of 10
    x = np.concatenate([c + 0.01 * rng.standard_normal((10, 4)).astype(np.float32) for c in centres])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    nearest = coverage.representative(x, 4, None, seed=3)
    picks = {s: coverage.representative(x, 4, None, seed=s, pick="random") for s in range(6)}
    for kept in [nearest, *picks.values()]:
        assert sorted(i // 10 for i in kept) == [0, 1, 2, 3]  # every cluster, once
    assert picks[3] == coverage.representative(x, 4, None, seed=3, pick="random")  # deterministic for a seed
    assert len({tuple(k) for k in picks.values()}) > 1  # ...and the member varies with it
    # nearest keeps typical members (close to their cluster's mean), a random pick any member
    typical = lambda kept: np.mean([x[i] @ x[i // 10 * 10:i // 10 * 10 + 10].mean(axis=0) for i in kept])  # noqa: E731
    assert typical(nearest) > np.mean([typical(k) for k in picks.values()])


def test_the_kcenter_pick_keeps_the_unusual_pair_that_clusters_leave_out():
    """Four clusters of 10 and one pair unlike any other: k-center with 5 keeps that pair and one of
    every cluster (the farthest-first traversal leaves no pair far from a kept one); deterministic
    for a seed; with labels, every label value keeps its quota."""
    import numpy as np

    from emosum import coverage

    rng = np.random.default_rng(0)
    dims = np.eye(5, dtype=np.float32)
    x = np.concatenate([c + 0.05 * rng.standard_normal((10, 5)).astype(np.float32) for c in dims[:4]]
                       + [dims[4:5]])  # row 40: alone along the fifth axis
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for seed in range(4):
        kept = coverage.representative(x, 5, None, seed=seed, pick="kcenter")
        assert 40 in kept and sorted(i // 10 for i in kept if i != 40) == [0, 1, 2, 3]
        assert kept == coverage.representative(x, 5, None, seed=seed, pick="kcenter")
    # the worst-covered pair: k-center's is far better covered than a random cut's
    worst = lambda kept: (x @ x[kept].T).max(axis=1).min()  # noqa: E731
    assert worst(coverage.representative(x, 5, None, seed=1, pick="kcenter")) > 0.9
    assert np.mean([worst(sorted(rng.choice(41, 5, replace=False))) for _ in range(20)]) < 0.5
    labels = ["a"] * 30 + ["b"] * 10 + ["c"]
    kept = coverage.representative(x, 5, labels, seed=0, pick="kcenter")
    assert len(kept) == 5 and {labels[i] for i in kept} == {"a", "b", "c"}


def test_the_stage_cuts_with_kcenter_and_records_its_coverage():
    rows = _pool()
    cfg = params.parse_section("subsample", {"max_samples": 30, "strategy": "representative",
                                             "representative_pick": "kcenter"})
    kept, cover = subsample.cut_train(rows, cfg, has_label=True)
    assert len(kept) == 30 and any(r["label"] == "罕见" for r in kept)
    # what it maximises: the worst-covered pool pair (not the 10th percentile: here it is not above a random cut's)
    assert cover["kept"]["min_similarity_to_nearest_kept"] > cover["random_cut"]["min_similarity_to_nearest_kept"]
    with pytest.raises(params.ParamsError, match="representative_pick"):
        params.parse_section("subsample", {"representative_pick": "farthest"})


def test_the_summary_representation_sees_a_pool_crowded_with_one_summary():
    """150 of 200 pairs say one of 15 near-identical summaries under long inputs that differ (a pool crowded with
    one kind of pair); 50 say each their own. Compared by the summary alone, a representative cut to
    50 keeps few of the crowded pairs; compared as one bag of input and summary, where the inputs'
    words outweigh the summaries', it keeps about their share of the pool, as a random cut does."""
    import random

    rng = random.Random(0)
    chars = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
    crowded = [f"作者因被{p}{v}了感到焦虑。" for p in ("老板", "同事", "领导", "室友", "妈妈") for v in ("批评", "骂", "笑话")]
    rows = []
    for i in range(200):
        # the others' words come from 40 characters, so each is seen twice or more (TF-IDF's min_df)
        summary = crowded[i % 15] if i < 150 else "作者因" + "".join(rng.sample(chars[:40], 8)) + "感到开心。"
        rows.append({"text": "".join(rng.sample(chars, 80)) + summary[3:-5], "summary": summary, "label": None})
    share = {}
    for rep in ("pair", "summary"):
        cfg = params.parse_section("subsample", {"max_samples": 50, "strategy": "representative",
                                                 "representation": rep})
        kept, cover = subsample.cut_train(rows, cfg, has_label=False)
        assert len(kept) == 50 and cover["representation"] == rep
        share[rep] = sum(r["summary"] in crowded for r in kept) / 50
    assert share["summary"] <= 0.3 < 0.6 <= share["pair"], share
    with pytest.raises(params.ParamsError, match="representation"):
        params.parse_section("subsample", {"representation": "text"})
