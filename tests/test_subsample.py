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
