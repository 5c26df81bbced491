"""Reading pair files with errors that name the file and line, and atomic writes."""
from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Union

PathLike = Union[str, Path]


class DataError(ValueError):
    pass


FORMATS = ("jsonl", "json", "csv", "tsv", "parquet", "xlsx")


def detect_format(path: Path, fmt: str | None = None) -> str:
    if fmt:
        return fmt
    suffixes = [s.lstrip(".").lower() for s in path.suffixes if s.lower() != ".gz"]
    ext = suffixes[-1] if suffixes else ""
    ext = {"ndjson": "jsonl", "pq": "parquet"}.get(ext, ext)
    if ext not in FORMATS:
        raise DataError(f"{path}: cannot tell the format from the extension '.{ext}'; "
                        f"set data.format to one of {', '.join(FORMATS)}")
    return ext


def _read_text(path: Path) -> str:
    """The whole file as text: UTF-8 with or without BOM, CRLF or LF, gzip by extension."""
    if not path.exists():
        raise DataError(f"{path}: file not found; check data.path in params.yaml")
    raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    if not raw.strip():
        raise DataError(f"{path}: the file is empty; point data.path at a file with rows")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: invalid UTF-8 at byte offset {e.start}; re-save the file as "
                        "UTF-8 (e.g. iconv -f GB18030 -t UTF-8)") from None
    return text.replace("\r\n", "\n")


def _jsonl(path: Path, text: str):
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}: malformed JSON at column {e.colno}: {e.msg}; "
                            "each line must be one JSON object") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        yield f"{path}:{lineno}", obj


def _json(path: Path, text: str):
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: malformed JSON at column {e.colno}: {e.msg}") from None
    if isinstance(doc, dict) and len(doc) == 1 and isinstance(next(iter(doc.values())), list):
        doc = next(iter(doc.values()))  # {"data": [...]}, a common wrapper
    if not isinstance(doc, list):
        raise DataError(f"{path}: expected a JSON array of objects, got {type(doc).__name__}")
    for i, obj in enumerate(doc):
        if not isinstance(obj, dict):
            raise DataError(f"{path}: element {i} of the array is {type(obj).__name__}, not an object")
        yield f"{path}: element {i}", obj


def _delimited(path: Path, text: str, delimiter: str):
    # The csv module, not pandas: every value stays a string ("NA" and "null" are text, not
    # missing) and each row knows its line number for error messages.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise DataError(f"{path}:{reader.line_num}: {len(row)} fields, the header has "
                                f"{len(header)}; check quoting and the delimiter")
            yield f"{path}:{reader.line_num}", dict(zip(header, row))
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: {e}; check quoting") from None


def _parquet(path: Path):
    import pyarrow.parquet as pq

    if not path.exists():
        raise DataError(f"{path}: file not found; check data.path in params.yaml")
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise DataError(f"{path}: not a readable Parquet file ({e})") from None
    if table.num_rows == 0:
        raise DataError(f"{path}: the file is empty; point data.path at a file with rows")
    for i, obj in enumerate(table.to_pylist()):
        yield f"{path}: row {i}", obj


def _xlsx(path: Path, sheet: str | None):
    # pandas with openpyxl, as annotation teams' and forums' exports come. na_filter=False and
    # dtype=object: "NA" and "null" stay text (as in CSV) and an empty cell is "", not NaN; a
    # number stays a number, so a number in the text column is refused by name, as in JSONL.
    import pandas as pd

    if not path.exists():
        raise DataError(f"{path}: file not found; check data.path in params.yaml")
    try:
        book = pd.ExcelFile(path, engine="openpyxl")
    except Exception as e:  # zipfile, openpyxl and pandas each raise their own types
        raise DataError(f"{path}: not a readable .xlsx workbook ({type(e).__name__}: {e}); re-save it from "
                        "Excel or LibreOffice as .xlsx") from None
    name = sheet if sheet is not None else book.sheet_names[0]
    if name not in book.sheet_names:
        raise DataError(f"{path}: no sheet '{name}' (sheets: {', '.join(book.sheet_names)}); set data.sheet")
    df = pd.read_excel(book, sheet_name=name, dtype=object, na_filter=False)
    if df.empty:
        raise DataError(f"{path}: sheet '{name}' has no rows under its header; point data.sheet at the data")
    header = [str(c) for c in df.columns]
    for i, values in enumerate(df.itertuples(index=False, name=None)):
        where = f"{path}: sheet '{name}' row {i + 2}"  # Excel's numbering: the header is row 1
        if all(v == "" for v in values):
            continue
        for col, v in zip(header, values):
            # pandas turns an error cell (#DIV/0!, #N/A, ...) into NaN; with na_filter off nothing else is NaN
            if isinstance(v, float) and v != v:
                raise DataError(f"{where}, column '{col}': the cell holds a formula error (#DIV/0!, #N/A, ...); "
                                "fix the formula or paste values only")
        yield where, dict(zip(header, values))


def read_rows(path: PathLike, fmt: str | None = None, sheet: str | None = None) -> Iterator[tuple[str, dict]]:
    """Yield (where, row) pairs; `where` names the file and line (or sheet and row) for error messages."""
    path = Path(path)
    fmt = detect_format(path, fmt)
    if fmt == "parquet":
        yield from _parquet(path)
        return
    if fmt == "xlsx":
        yield from _xlsx(path, sheet)
        return
    text = _read_text(path)
    if fmt == "jsonl":
        yield from _jsonl(path, text)
    elif fmt == "json":
        yield from _json(path, text)
    else:
        yield from _delimited(path, text, "," if fmt == "csv" else "\t")


@contextlib.contextmanager
def atomic_path(path: PathLike, is_dir: bool = False):
    """Yield a temporary sibling path; on success move it onto `path`, else remove it.

    A temp file in the same folder then os.replace: a crash never leaves a half-written output.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)) if is_dir else \
        path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        if is_dir and path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()


def write_json(path: PathLike, obj, ensure_ascii: bool = False) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, ensure_ascii=ensure_ascii, indent=2, sort_keys=False) + "\n",
                       encoding="utf-8")


def write_metrics(path: PathLike, obj) -> None:
    """A file dvc.yaml declares as metrics: JSON with non-ASCII characters escaped. DVC refuses a
    metrics file as 'binary' when over 30% of its first bytes are not ASCII text, which Chinese in
    UTF-8 (3 bytes a character) reaches quickly: a VCSum run's 430-byte constant summary near the
    top of eval.json failed `dvc repro` after training. The values read back the same."""
    write_json(path, obj, ensure_ascii=True)


def write_jsonl(path: PathLike, rows) -> int:
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def percentiles(values, ps=(50, 90, 95, 99, 100)) -> dict:
    if not values:
        return {f"p{p}": 0 for p in ps}
    s = sorted(values)
    return {f"p{p}": s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))] for p in ps}


def dir_size(path: PathLike) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def read_jsonl(path: PathLike) -> list[dict]:
    """A JSONL file this project wrote (the splits, predictions): one object a line."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def read_lexicon(path: PathLike) -> dict[str, list[str]]:
    """A label lexicon (`train.label_lexicon`): a JSON object, each label a list of its wordings.
    Errors name the file and the key, and what to do."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file (train.label_lexicon). Point it at a JSON object of label -> "
                        f"[wordings], or set train.label_swap: 0")
    try:
        obj = json.loads(_read_text(p))
    except json.JSONDecodeError as e:
        raise DataError(f"{p}: line {e.lineno}: not JSON ({e.msg}); train.label_lexicon wants an object of "
                        f"label -> [wordings]") from None
    if not isinstance(obj, dict) or not obj:
        raise DataError(f"{p}: expected a non-empty JSON object of label -> [wordings] (train.label_lexicon)")
    for label, words in obj.items():
        if not isinstance(words, list) or not all(isinstance(w, str) and w for w in words):
            raise DataError(f"{p}: key {label!r}: expected a list of non-empty strings (its wordings)")
    return obj
