"""Chinese ROUGE through `evaluate`, with the local module in emosum/zh_rouge (no network)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from statistics import median

MODULE_DIR = Path(__file__).parent / "zh_rouge"


@lru_cache(maxsize=1)
def _metric():
    import evaluate

    return evaluate.load(str(MODULE_DIR))


def rouge(predictions: list[str], references: list[str], tokenizer: str = "char", per_example=False) -> dict:
    """ROUGE-1/2/L F1 in [0, 1]; tokenizer 'char' (characters) or 'jieba' (words)."""
    return _metric().compute(predictions=predictions, references=references, tokenizer=tokenizer,
                             per_example=per_example)


def lead_k(sources: list[str], references: list[str]) -> tuple[int, list[str]]:
    """The floor any summarizer must beat: the first k characters, k = median reference length."""
    k = int(median(len(r) for r in references)) if references else 0
    return k, [s[:k] for s in sources]
