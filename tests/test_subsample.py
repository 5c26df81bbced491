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
                                "cross_split_duplicate": 0, "unknown_split": 0}
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
