"""Chinese ROUGE as a local `evaluate` metric module (works offline).

    evaluate.load("<path to this folder>").compute(predictions=[...], references=[...],
                                                  tokenizer="char")   # or "jieba"

Why a module of our own: `evaluate.load("rouge")` fetches its script from the hub, and
rouge_score's default tokenizer keeps only [a-z0-9], so Chinese text scores 0. The scoring itself
is still rouge_score's; only the tokenizer is ours. Both sides are NFKC-normalised (SentencePiece
maps full-width punctuation to ASCII by default, so references must be mapped the same way),
lower-cased, and stripped of whitespace and punctuation, which would otherwise inflate overlap.
Scores are plain means of per-example F1 (rouge_score's bootstrap aggregator is random).
"""
import unicodedata

import datasets
import evaluate
from rouge_score import rouge_scorer


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


def _keep(tok: str) -> bool:
    return bool(tok.strip()) and not all(unicodedata.category(c)[0] in "PSZ" for c in tok)


class CharTokenizer:
    def tokenize(self, text):
        return [c for c in normalize(text) if _keep(c)]


class JiebaTokenizer:
    def __init__(self):
        import jieba

        jieba.setLogLevel(60)
        self._jieba = jieba

    def tokenize(self, text):
        return [w for w in self._jieba.lcut(normalize(text)) if _keep(w)]


class ZhRouge(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="Lin, ROUGE (2004)",
            inputs_description="predictions, references: lists of strings; tokenizer: char | jieba",
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}))

    def _compute(self, predictions, references, tokenizer="char", rouge_types=("rouge1", "rouge2", "rougeL"),
                 per_example=False):
        tok = {"char": CharTokenizer, "jieba": JiebaTokenizer}[tokenizer]()
        scorer = rouge_scorer.RougeScorer(list(rouge_types), tokenizer=tok)
        scores = [scorer.score(ref, pred) for pred, ref in zip(predictions, references)]
        n = max(1, len(scores))
        out = {t: sum(s[t].fmeasure for s in scores) / n for t in rouge_types}
        if per_example:
            out["per_example"] = [{t: s[t].fmeasure for t in rouge_types} for s in scores]
        return out
