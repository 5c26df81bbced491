"""Guided summarization: the clauses a scorer picks, written before the input.

A model trained from scratch for minutes learns the summary's frame and copies spans of its input,
but it does not learn *which* clause of a post is the one the summary states: on the demo it
copied the wrong clause in about half the test summaries, while a linear model over the clauses'
character n-grams and their neighbours' picks the right one in 95-97% (docs/default-model.md, "Guided inputs").
So, as in guided summarization (GSum, Dou et al. 2021: an extractive model's highlights given to
the abstractive one as a second input; CTRLsum, He et al. 2020: keywords written before the input),
a clause scorer fitted on the training split picks the clauses the summary most likely copies and
the model reads them first:

    早上我的造林揭示了4天，｜12月23日，晴。早上我的造林揭示了4天，到现在都缓不过来。...

Labels come from the summaries alone, so any data set gets them: the clauses a greedy oracle picks
with the reference in hand (repeatedly the clause adding the most reference bigrams not yet
covered, while it adds at least two). Features: character 1-2-gram TF-IDF of the clause, of the
clause before it and of the clause after it (a cause is marked as much by `因为` before it or
`到现在都缓不过来` after it as by its own words), and its position; a logistic regression
(scikit-learn). A text keeps its most probable clause and, up to `max_clauses`, any other whose
probability reaches `min_probability`, in text order. A text of one clause gets no guide.

The fitted scorer is saved as JSON (vocabulary, IDF weights, coefficients, the separator) beside
the tokenizer and travels into model/, so `summarize` writes the same guide for the same text. It
never runs code when loaded.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

FILE = "guide.json"
FORMAT = 1
SEPARATOR = "｜"  # between the guide and the text: absent from the demo, so the model learns it as the boundary
# A clause ends after ，。！？；：、 (full or half width), a closing quote or bracket after them, or a
# line break; the punctuation stays with its clause, so the guide reads as the text does.
_CLAUSE_END = re.compile(r"(?:[，。！？；：、,!?;:…]+[”’\"'」』）)\]】》]*|\n+)")
NUMERIC = ("position", "first", "last")


def clauses(text: str) -> list[str]:
    """The text cut into clauses (punctuation kept with the clause before it); they join back to it."""
    out, start = [], 0
    for m in _CLAUSE_END.finditer(text):
        if m.end() > start:
            out.append(text[start:m.end()])
            start = m.end()
    if start < len(text):
        out.append(text[start:])
    return out


def oracle(parts: list[str], reference: str, min_gain: int = 2) -> list[int]:
    """Greedy oracle: repeatedly the clause adding the most reference bigrams not yet covered,
    while that is at least min_gain; the picks in the order picked."""
    from emosum.selection import bigrams

    want = set(bigrams(reference))
    grams = [set(bigrams(p)) & want for p in parts]
    covered: set[str] = set()
    picked: list[int] = []
    while True:
        best, gain = None, min_gain - 1
        for i, g in enumerate(grams):
            if i not in picked and len(g - covered) > gain:
                best, gain = i, len(g - covered)
        if best is None:
            return picked
        picked.append(best)
        covered |= grams[best]


class GuideError(ValueError):
    pass


class ClauseScorer:
    """P(a clause is one the summary copies): a logistic regression over character 1-2-gram TF-IDF
    of the clause, the clause before and the clause after (one vocabulary, three coefficient
    blocks) and its position (NUMERIC)."""

    def __init__(self, vectorizer, coef, intercept: float, max_clauses: int = 2, min_probability: float = 0.5,
                 separator: str = SEPARATOR, fitted: dict | None = None, context: int = 0):
        self.vectorizer, self.coef, self.intercept = vectorizer, coef, intercept
        self.max_clauses, self.min_probability, self.separator = max_clauses, min_probability, separator
        # the clauses either side of each pick join the guide too: what the summary says beside the
        # cause (the feeling, `心里直发毛`) shares no characters with it, so the oracle never picks it
        self.context = context
        self.fitted = fitted or {}

    @staticmethod
    def _vectorizer(**kw):
        import numpy as np
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True, dtype=np.float32, **kw)

    @staticmethod
    def _features(vectorizer, docs: list[list[str]]):
        import numpy as np
        import scipy.sparse as sp

        flat = [c for d in docs for c in d]
        before = [d[i - 1] if i else "" for d in docs for i in range(len(d))]
        after = [d[i + 1] if i + 1 < len(d) else "" for d in docs for i in range(len(d))]
        numeric = [[i / max(1, len(d) - 1), i == 0, i == len(d) - 1] for d in docs for i in range(len(d))]
        return sp.hstack([vectorizer.transform(flat), vectorizer.transform(before), vectorizer.transform(after),
                          sp.csr_matrix(np.asarray(numeric, dtype="float32").reshape(-1, len(NUMERIC)))]).tocsr()

    @classmethod
    def fit(cls, texts: list[str], references: list[str], max_clauses: int = 2, min_probability: float = 0.5,
            seed: int = 0, context: int = 0) -> "ClauseScorer":
        import numpy as np
        from sklearn.linear_model import LogisticRegression

        docs = [clauses(t) for t in texts]
        labels = []
        for d, ref in zip(docs, references):
            picked = set(oracle(d, ref))
            labels += [int(i in picked) for i in range(len(d))]
        y = np.asarray(labels)
        if len(y) == 0 or y.min() == y.max():
            raise GuideError("tokenize.guide: the summaries share no clause with their texts (or share every one): "
                             "nothing for the guide to learn; set tokenize.guide: none")
        vectorizer = cls._vectorizer(min_df=2, max_features=50_000)
        vectorizer.fit([c for d in docs for c in d])
        # balanced: a post has one or two such clauses among many; liblinear: deterministic
        model = LogisticRegression(C=1.0, class_weight="balanced", solver="liblinear", random_state=seed,
                                   max_iter=1000).fit(cls._features(vectorizer, docs), y)
        return cls(vectorizer, model.coef_.ravel().astype("float64"), float(model.intercept_[0]), max_clauses,
                   min_probability, SEPARATOR,
                   {"texts": len(docs), "clauses": int(len(y)), "oracle_clauses": int(y.sum())}, context)

    def probabilities(self, docs: list[list[str]]) -> list:
        import numpy as np

        if not any(docs):
            return [np.zeros(len(d)) for d in docs]
        s = self._features(self.vectorizer, docs) @ self.coef + self.intercept
        p = 1 / (1 + np.exp(-s))
        bounds = np.cumsum([0] + [len(d) for d in docs])
        return [p[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    def picks(self, texts: list[str]) -> list[list[int]]:
        """Each text's guide clauses (indices into clauses(text)): the most probable, then others
        reaching min_probability, max_clauses in all, in text order; then the `context` clauses
        either side of them, in text order; none for a one-clause text."""
        import numpy as np

        docs = [clauses(t) for t in texts]
        out = []
        for d, p in zip(docs, self.probabilities(docs)):
            if len(d) < 2:
                out.append([])
                continue
            order = np.argsort(-p, kind="stable")[:self.max_clauses]
            chosen = sorted(int(j) for k, j in enumerate(order) if k == 0 or p[j] >= self.min_probability)
            c = self.context
            beside = {i for j in chosen for i in range(max(0, j - c), min(len(d), j + c + 1))} - set(chosen)
            # the picks first, where the copy head's position keys learnt the cause begins; then their context
            out.append(chosen + sorted(beside))
        return out

    def guides(self, texts: list[str], picks: list[list[int]] | None = None) -> list[str]:
        """Each text's guide: its guide clauses joined ('' for none); the separator is added where
        the guide meets the text (selection.tokenize_docs). `picks`: self.picks(texts), if made."""
        picks = self.picks(texts) if picks is None else picks
        return ["".join(clauses(t)[j] for j in picked).strip() for t, picked in zip(texts, picks)]

    def to_json(self) -> dict:
        v = self.vectorizer
        return {"format": FORMAT, "kind": "clause-guide-logistic", "ngram_range": list(v.ngram_range),
                "numeric_features": list(NUMERIC), "max_clauses": self.max_clauses,
                "min_probability": self.min_probability, "separator": self.separator,
                "vocabulary": {k: int(i) for k, i in v.vocabulary_.items()},
                "idf": [float(x) for x in v.idf_], "coef": [float(x) for x in self.coef],
                "intercept": self.intercept, "fitted": self.fitted,
                **({"context": self.context} if self.context else {})}  # absent: 0, as saved before

    @classmethod
    def from_json(cls, doc: dict, where: str = FILE) -> "ClauseScorer":
        import numpy as np

        if doc.get("format") != FORMAT or doc.get("kind") != "clause-guide-logistic":
            raise GuideError(f"{where}: not an emosum clause guide of format {FORMAT}")
        vocab = doc["vocabulary"]
        if len(doc["idf"]) != len(vocab) or len(doc["coef"]) != 3 * len(vocab) + len(NUMERIC):
            raise GuideError(f"{where}: the vocabulary, IDF and coefficient lengths disagree")
        vectorizer = cls._vectorizer(vocabulary=vocab)
        vectorizer.idf_ = np.asarray(doc["idf"], dtype="float32")
        return cls(vectorizer, np.asarray(doc["coef"]), float(doc["intercept"]), int(doc["max_clauses"]),
                   float(doc["min_probability"]), str(doc["separator"]), doc.get("fitted"), int(doc.get("context", 0)))


def save(scorer: ClauseScorer, folder: Path) -> Path:
    from emosum import dataio

    path = Path(folder) / FILE
    dataio.write_json(path, scorer.to_json(), ensure_ascii=True)
    return path


def load(folder: Path) -> ClauseScorer | None:
    """The guide saved with a tokenizer or model, or None (that model reads its input unguided)."""
    path = Path(folder) / FILE
    if not path.is_file():
        return None
    try:
        return ClauseScorer.from_json(json.loads(path.read_text(encoding="utf-8")), str(path))
    except (ValueError, KeyError, TypeError) as e:
        raise GuideError(f"{path}: not a readable clause guide ({e}); rerun `dvc repro` to rebuild it") from None


def measure(scorer: ClauseScorer, texts: list[str], references: list[str],
            picks: list[list[int]] | None = None) -> dict:
    """How the guide agrees with the oracle on one split: the share of texts whose guide holds the
    oracle's first clause (the one holding most of the summary), the guide's coverage of the
    reference bigrams, clauses per guide, and texts without a guide."""
    from emosum.selection import coverage

    hits, covs, n_clauses, none = 0, [], 0, 0
    for t, ref, picked in zip(texts, references, scorer.picks(texts) if picks is None else picks):
        d = clauses(t)
        first = oracle(d, ref)[:1]
        hits += bool(first) and first[0] in picked
        c = coverage("".join(d[j] for j in picked), ref)
        if c is not None:
            covs.append(c)
        n_clauses += len(picked)
        none += not picked
    n = max(1, len(texts))
    return {"rows": len(texts), "holds_oracle_clause": round(hits / n, 4),
            "coverage": round(sum(covs) / len(covs), 4) if covs else None,
            "clauses_per_guide": round(n_clauses / max(1, len(texts) - none), 3), "unguided": none}
