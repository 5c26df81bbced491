"""Full-width punctuation back where the tokenizer folded it.

mT5's SentencePiece models (and ours, trained with the same `nmt_nfkc` rule) normalise text with
NFKC, which folds the full-width punctuation of Chinese (`，！？；：（）`) into ASCII (`,!?;:()`).
So a model reads `，` as `,` and writes `,`: `楼主因…感到焦虑,想知道该怎么办。`, a visible
defect in a Chinese summary, and a copied cause `在网吧迷了路,手机也没电了` that differs from
the text's `在网吧迷了路，手机也没电了` as the user reads it (the default's test summaries: 90 of
300 wrote an ASCII comma). The scores are not affected: ROUGE and fact recall compare both sides
after NFKC (emosum/facts.py), so this is about what a user reads.

The tokenize stage finds, from the training summaries, which of these marks the tokenizer folds
and which form the summaries use; where they use the full-width one more often, generated
summaries get it back wherever the ASCII mark stands next to a CJK character (`3,000` keeps its
comma). The table is JSON (`punctuation.json`) beside the tokenizer and in model/; `evaluate` and
`summarize` apply it. Written by hand: no library reverses NFKC, which is many-to-one; the
summaries say which form they want.
"""
from __future__ import annotations

import functools
import json
import logging
import re
from pathlib import Path

FILE = "punctuation.json"
# the full-width marks NFKC folds, and what it folds them into
FOLDED = {"，": ",", "！": "!", "？": "?", "；": ";", "：": ":", "（": "(", "）": ")"}
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f"

log = logging.getLogger("emosum.punctuation")


def fit(summaries: list[str], normalize) -> dict[str, str]:
    """{ASCII mark: full-width mark} for each mark `normalize` (the tokenizer's normaliser, str -> str)
    folds and the summaries write full-width more often than not. Empty when nothing to restore."""
    table = {}
    text = "".join(summaries)
    for full, half in FOLDED.items():
        if normalize(full) != half:
            continue  # the tokenizer keeps this mark: the model writes what it read
        n_full, n_half = text.count(full), text.count(half)
        if n_full > n_half:
            table[half] = full
    return table


def restore(text: str, table: dict[str, str]) -> str:
    """The table's ASCII marks in `text` made full-width where a CJK character stands either side."""
    if not table:
        return text
    return _pattern("".join(sorted(table))).sub(lambda m: table[m.group(0)], text)


@functools.lru_cache(maxsize=8)
def _pattern(marks: str) -> re.Pattern:
    """A mark of `marks` with a CJK character before or after it (compiled once per table)."""
    m = re.escape(marks)
    return re.compile(rf"(?<=[{_CJK}])[{m}]|[{m}](?=[{_CJK}])")


def normalizer_of(tok):
    """The fast tokenizer's normaliser as a str -> str function (identity when it has none)."""
    norm = getattr(getattr(tok, "backend_tokenizer", None), "normalizer", None)
    return norm.normalize_str if norm is not None else (lambda s: s)


def save(table: dict[str, str], folder: Path) -> Path:
    path = Path(folder) / FILE
    path.write_text(json.dumps({"format": 1, "restore": table}, ensure_ascii=False, indent=1) + "\n",
                    encoding="utf-8")
    return path


def load(folder: Path) -> dict[str, str]:
    """The table saved with a tokenizer or model; {} where there is none (nothing is restored)."""
    path = Path(folder) / FILE
    if not path.is_file():
        return {}
    try:
        table = json.loads(path.read_text(encoding="utf-8"))["restore"]
        if not all(isinstance(k, str) and FOLDED.get(v) == k for k, v in table.items()):
            raise ValueError("a mark that NFKC does not fold into its key")
        return dict(table)
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a readable punctuation table ({e}); rerun `dvc repro` to rebuild it") from None
