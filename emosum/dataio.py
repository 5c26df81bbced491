"""Reading pair files with errors that name the file and line, and atomic writes."""
from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Union

PathLike = Union[str, Path]


class DataError(ValueError):
    pass


def _open_text(path: Path):
    raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    return raw


def read_jsonl(path: PathLike) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line. Handles a UTF-8 BOM and CRLF."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found; check data.path in params.yaml")
    with _open_text(path) as fh:
        for lineno, raw in enumerate(fh, start=1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{lineno}: invalid UTF-8 at byte {e.start} of the line; "
                                "re-save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: malformed JSON at column {e.colno}: {e.msg}; "
                                "each line must be one JSON object") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


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


def write_json(path: PathLike, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=False) + "\n",
                       encoding="utf-8")


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
