"""Issue 3: every input format reads the same; bad input gives one clear error naming file and line."""
import csv
import io
import json
import random

import pytest

from emosum import dataio, params
from stages import subsample

ROWS = [{"text": "今天被老板骂了，很委屈。", "summary": "作者因被批评感到委屈。", "emotion": "委屈"},
        {"text": "NA", "summary": "null", "emotion": "焦虑"},  # text, not missing
        {"text": "多行\n输入，带\"引号\"和,逗号", "summary": "作者很开心。", "emotion": "开心"}]


def as_csv(rows, delimiter=","):
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), delimiter=delimiter, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_all(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = {
        "a.jsonl": "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS),
        "a.json": json.dumps(ROWS, ensure_ascii=False, indent=1),
        "a.csv": as_csv(ROWS),
        "a.tsv": as_csv(ROWS, "\t"),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "a.parquet")
    write_xlsx(tmp_path / "a.xlsx", {"posts": ROWS})
    return [tmp_path / n for n in [*files, "a.parquet", "a.xlsx"]]


def write_xlsx(path, sheets: dict):
    """A workbook as openpyxl writes it (the engine pandas reads .xlsx with)."""
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        ws.append(list(rows[0]))
        for r in rows:
            ws.append(list(r.values()))
    wb.save(path)
    return path


def rows_of(path, fmt=None):
    return [obj for _, obj in dataio.read_rows(path, fmt)]


def test_every_format_reads_the_same_rows(tmp_path):
    for path in write_all(tmp_path):
        assert rows_of(path) == ROWS, path.name


def test_bom_and_crlf_read_like_a_clean_file(tmp_path):
    for path in write_all(tmp_path)[:4]:
        dirty = tmp_path / f"dirty{path.suffix}"
        text = path.read_text(encoding="utf-8")
        # CRLF line ends (quoted newlines inside a CSV field stay as they are written)
        dirty.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
        got = rows_of(dirty)
        assert [{k: v.replace("\r\n", "\n") for k, v in r.items()} for r in got] == ROWS, path.name
        assert list(got[0])[0] == "text"  # the BOM did not glue itself to the first column name


def test_na_and_null_stay_text_in_csv(tmp_path):
    p = write_all(tmp_path)[2]
    assert rows_of(p)[1] == {"text": "NA", "summary": "null", "emotion": "焦虑"}


def test_format_from_param_overrides_extension(tmp_path):
    p = tmp_path / "pairs.txt"
    p.write_text(as_csv(ROWS, "\t"), encoding="utf-8")
    with pytest.raises(dataio.DataError, match="set data.format"):
        rows_of(p)
    assert rows_of(p, "tsv") == ROWS


def run_stage(tmp_path, path, **data_over):
    data = params.parse_section("data", {"path": str(path), **data_over})
    cfg = params.parse_section("subsample", {"max_samples": None, "max_eval_samples": None,
                                             "validation_fraction": 0.2, "test_fraction": 0.2})
    return subsample.run(data, cfg, tmp_path / "out")


@pytest.mark.parametrize("name, content, message", [
    ("bad.jsonl", '{"text": "a", "summary": "b"}\n{"text": "a", "summary": }\n',
     r"bad.jsonl:2: malformed JSON at column \d+"),
    ("bad.jsonl", b'{"text": "a", "summary": "b"}\n{"text": "\xff\xfe", "summary": "b"}\n',
     r"bad.jsonl:2: invalid UTF-8 at byte offset 40"),
    ("bad.jsonl", '{"text": "a", "summary": "b"}\n{"text": 42, "summary": "b"}\n',
     r"bad.jsonl:2: column 'text' must be text, got int"),
    ("bad.jsonl", '{"source": "a", "summary": "b"}\n', r"bad.jsonl:1: no column 'text' .*data.text_column"),
    ("bad.csv", 'text,summary\n"a","b"\n"c","d","e"\n', r"bad.csv:3: 3 fields, the header has 2"),
    ("bad.csv", b'text,summary\na,b\n\xe4\xbd\xa0\xe5,x\n', r"bad.csv:3: invalid UTF-8"),
    ("empty.jsonl", "\n\n", r"empty.jsonl: the file is empty"),
    ("bad.json", '[{"text": "a", "summary": "b"}, 3]', r"bad.json: element 1 .* not an object"),
])
def test_bad_input_names_file_line_and_what_to_do(tmp_path, name, content, message):
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.jsonl").write_text("previous run\n")
    with pytest.raises(dataio.DataError, match=message):
        run_stage(tmp_path, p)
    assert (out / "train.jsonl").read_text() == "previous run\n"  # nothing half-overwritten
    assert sorted(x.name for x in out.iterdir()) == ["train.jsonl"]


def test_missing_file(tmp_path):
    with pytest.raises(dataio.DataError, match=r"nope.csv: file not found.*data.path"):
        run_stage(tmp_path, tmp_path / "nope.csv")


def test_stage_main_exits_nonzero_naming_the_line(tmp_path, monkeypatch, caplog):
    import yaml
    from conftest import tiny_params

    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.jsonl").write_text('{"text": "a", "summary": "b"}\n{oops}\n')
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(data={"path": "d.jsonl", "split_column": None, "extra_test_splits": []}, evaluate={"fact_columns": []})))
    assert subsample.main() == 1
    assert "d.jsonl:2: malformed JSON" in caplog.text


def test_too_many_drops_fail_and_name_the_dominant_reason(tmp_path):
    rows = [{"text": "", "summary": "x"}] * 6 + [{"text": f"第{i}条", "summary": "y"} for i in range(4)]
    p = tmp_path / "d.jsonl"
    p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(dataio.DataError, match=r"dropped 6 of 10 rows .*max_drop_fraction 0.5; most were 'empty'"):
        run_stage(tmp_path, p)


def test_split_column_keeps_file_splits_and_drops_cross_split_inputs(tmp_path):
    rows = [{"text": f"训练{i}", "summary": "s", "split": "dev"} for i in range(20)]
    rows += [{"text": f"测试{i}", "summary": "s", "split": "test"} for i in range(5)]
    rows += [{"text": "测试0", "summary": "另一个", "split": "dev"},  # test input again, in train
             {"text": "别的", "summary": "s", "split": "unlabeled"}]
    p = tmp_path / "d.jsonl"
    p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    stats = run_stage(tmp_path, p, split_column="split", train_split="dev", validation_split=None)
    assert stats["dropped"]["cross_split_duplicate"] == 1 and stats["dropped"]["unknown_split"] == 1
    test = [json.loads(line)["text"] for line in open(tmp_path / "out" / "test.jsonl", encoding="utf-8")]
    assert sorted(test) == sorted(f"测试{i}" for i in range(5))
    assert stats["splits"]["validation"] == 4 and stats["splits"]["train"] == 16  # carved 20% out of train
    with pytest.raises(dataio.DataError, match="no rows for the train split .*data.train_split"):
        run_stage(tmp_path, p, split_column="split")
    # the demo's default extra split on a file without it: the message says how to turn it off
    with pytest.raises(dataio.DataError, match=r"no rows for the heldout split .*'data.extra_test_splits=\[\]'"):
        run_stage(tmp_path, p, split_column="split", train_split="dev", validation_split=None,
                  extra_test_splits=["heldout"])


def test_stratified_keeps_label_proportions(tmp_path):
    import random

    rng = random.Random(0)
    rows = [{"text": f"文本{i}", "summary": "s", "emotion": rng.choices(["焦虑", "难过", "开心"], [6, 3, 1])[0]}
            for i in range(2000)]
    p = tmp_path / "d.jsonl"
    p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    data = params.parse_section("data", {"path": str(p), "label_column": "emotion"})
    cfg = params.parse_section("subsample", {"max_samples": 100, "strategy": "stratified"})
    stats = subsample.run(data, cfg, tmp_path / "out")
    before, after = stats["train_distribution_before"], stats["train_distribution_after"]
    assert set(before) == set(after) == {"焦虑", "难过", "开心"}
    assert all(abs(before[k] - after[k]) <= 0.01 for k in before)  # largest remainder: within 1 row


def test_stratified_by_length_without_labels(tmp_path):
    # distinct texts (random characters; one letter repeated would make them near-duplicates, which
    # subsample drops before it stratifies) whose lengths spread evenly from 6 to 205 characters
    rng = random.Random(0)
    rows = [{"text": str(i) + "".join(chr(0x4E00 + rng.randrange(20000)) for _ in range(5 + i % 200)),
             "summary": "s"} for i in range(1000)]
    p = tmp_path / "d.jsonl"
    p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    data = params.parse_section("data", {"path": str(p)})
    cfg = params.parse_section("subsample", {"max_samples": 80, "strategy": "stratified"})
    stats = subsample.run(data, cfg, tmp_path / "out")
    assert stats["stratified_by"] == "length"
    assert all(abs(v - 0.25) <= 0.02 for v in stats["train_distribution_after"].values())


def test_xlsx_reads_the_named_sheet_keeps_text_and_names_sheet_row_column(tmp_path):
    other = [{"text": "别的表", "summary": "无关", "emotion": "平静"}]
    path = write_xlsx(tmp_path / "posts.xlsx", {"说明": other, "posts": ROWS})
    assert rows_of(path) == other  # the first sheet by default
    assert [obj for _, obj in dataio.read_rows(path, sheet="posts")] == ROWS  # "NA" and "null" stay text
    with pytest.raises(dataio.DataError, match="no sheet 'post' \\(sheets: 说明, posts\\); set data.sheet"):
        list(dataio.read_rows(path, sheet="post"))
    # a number where the text belongs: the sheet, the row (Excel's numbering) and the column
    bad = write_xlsx(tmp_path / "bad.xlsx", {"s": [ROWS[0], {**ROWS[1], "text": 42}]})
    data = params.parse_section("data", {"path": str(bad)})
    with pytest.raises(dataio.DataError, match=r"bad.xlsx: sheet 's' row 3: column 'text' must be text"):
        subsample.run(data, params.parse_section("subsample", {}), tmp_path / "splits")
    err = write_xlsx(tmp_path / "err.xlsx", {"s": [ROWS[0], {**ROWS[1], "summary": "#DIV/0!"}]})
    with pytest.raises(dataio.DataError, match=r"sheet 's' row 3, column 'summary': the cell holds a formula error"):
        list(dataio.read_rows(err))
    (tmp_path / "broken.xlsx").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(dataio.DataError, match="broken.xlsx: not a readable .xlsx workbook"):
        list(dataio.read_rows(tmp_path / "broken.xlsx"))


def test_xlsx_empty_rows_are_skipped_and_dropped_rows_counted(tmp_path):
    rows = ROWS + [{"text": "", "summary": "有摘要没正文", "emotion": "x"}] + [ROWS[0]]
    path = write_xlsx(tmp_path / "d.xlsx", {"s": rows})
    from openpyxl import load_workbook

    wb = load_workbook(path)
    wb["s"].insert_rows(3)  # a blank row inside the data
    wb.save(path)
    stats = subsample.run(params.parse_section("data", {"path": str(path)}),
                          params.parse_section("subsample", {"max_drop_fraction": 0.9}), tmp_path / "splits")
    assert stats["rows_read"] == 5 and stats["dropped"]["empty"] == 1 and stats["dropped"]["exact_duplicate"] == 1


def test_metrics_files_stay_text_to_dvc(tmp_path):
    """DVC refuses a metrics file whose first 512 bytes are over 30% non-ASCII as binary: a VCSum
    run's Chinese constant summary in eval.json did that after training. write_metrics escapes it."""
    import json

    from dvc_data.hashfile.istextfile import DEFAULT_CHUNK_SIZE, istextblock

    from emosum import dataio

    obj = {"constant_summary": "赵老师从教与学角度来谈如何保证这个教育不跑偏。" * 10, "rougeL": 5.5}
    dataio.write_json(tmp_path / "plain.json", obj)
    assert not istextblock((tmp_path / "plain.json").read_bytes()[:DEFAULT_CHUNK_SIZE])  # what DVC refused
    dataio.write_metrics(tmp_path / "eval.json", obj)
    assert istextblock((tmp_path / "eval.json").read_bytes()[:DEFAULT_CHUNK_SIZE])
    assert json.loads((tmp_path / "eval.json").read_text(encoding="utf-8")) == obj
