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

A label hint (`tokenize.guide_label`, `LabelHint`): where the training rows carry a label the
summary names (the demo's `emotion` fact), a second linear model over the guide's character 1-3-gram
TF-IDF predicts it, and the predicted label is written after the guide's clauses
(`<clauses>｜害怕｜<text>`: after, so the cause still starts the input, where the copy head's position
keys learnt it begins; first, it cost 3-6 points of exact causes).
Measured (docs/default-model.md "A label hint"): on the demo's guides such a model names the author's
feeling in 96% of the test split and 70% held out, where the seq2seq model trained from scratch for
minutes named it in 88% / 62%: reading which of several feeling words is the author's (`不是生气，
是失望`, `他倒是挺感恩的，我却吓坏了`) is a question of which n-grams stand beside it, which a linear
model fits from 5,000 pairs and a small transformer does not learn in 942 steps. The training split's
hints are the fitted model's own (in sample, `tokenize.guide_label_folds: 0`, the default) or out of
fold (each row's hint from a model fitted without it); in sample measured level or better on every
figure of two seeds: out of fold, the model learnt to overrule a wrong hint from its memory of the
training posts, which does not carry to new ones.

The fitted scorer (and hint) are saved as JSON (vocabularies, IDF weights, coefficients, the
separator) beside the tokenizer and travel into model/, so `summarize` writes the same guide for the
same text. They never run code when loaded.
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
                 separator: str = SEPARATOR, fitted: dict | None = None, context: int = 0,
                 hint: "LabelHint | None" = None):
        self.vectorizer, self.coef, self.intercept = vectorizer, coef, intercept
        self.hint = hint  # a LabelHint writes its label after the clauses; None: clauses only
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

    def guides(self, texts: list[str], picks: list[list[int]] | None = None,
               hints: list[str] | None = None) -> list[str]:
        """Each text's guide: its guide clauses joined ('' for none); the separator is added where
        the guide meets the text (selection.tokenize_docs). `picks`: self.picks(texts), if made.
        With a label hint the clauses are followed by the separator and the predicted label (a text
        of one clause gets the label alone; selection.tokenize_docs never cuts it); `hints` replaces
        the predictions (the training split's, as LabelHint.fit gave them)."""
        picks = self.picks(texts) if picks is None else picks
        plain = ["".join(clauses(t)[j] for j in picked).strip() for t, picked in zip(texts, picks)]
        if self.hint is None:
            return plain
        if hints is None:
            hints = self.hint.predict(hint_docs(texts, plain))
        return [g + self.separator + h if g else h for h, g in zip(hints, plain)]

    def hint_of(self, guide_text: str) -> str:
        """The label a hinted guide (self.guides) ends with."""
        return guide_text.rsplit(self.separator, 1)[-1]

    def to_json(self) -> dict:
        v = self.vectorizer
        return {"format": FORMAT, "kind": "clause-guide-logistic", "ngram_range": list(v.ngram_range),
                "numeric_features": list(NUMERIC), "max_clauses": self.max_clauses,
                "min_probability": self.min_probability, "separator": self.separator,
                "vocabulary": {k: int(i) for k, i in v.vocabulary_.items()},
                "idf": [float(x) for x in v.idf_], "coef": [float(x) for x in self.coef],
                "intercept": self.intercept, "fitted": self.fitted,
                **({"context": self.context} if self.context else {}),  # absent: 0, as saved before
                **({"label_hint": self.hint.to_json()} if self.hint is not None else {})}

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
        hint = LabelHint.from_json(doc["label_hint"], where) if "label_hint" in doc else None
        return cls(vectorizer, np.asarray(doc["coef"]), float(doc["intercept"]), int(doc["max_clauses"]),
                   float(doc["min_probability"]), str(doc["separator"]), doc.get("fitted"), int(doc.get("context", 0)),
                   hint)


def hint_docs(texts: list[str], plain_guides: list[str]) -> list[str]:
    """What the label hint reads: the guide's clauses (the cause and the clauses beside it, where the
    author's feeling stands), or the whole text where there is no guide (one clause)."""
    return [g or t for t, g in zip(texts, plain_guides)]


class LabelHint:
    """The label the summary names, predicted from the guide: a multinomial logistic regression over
    character 1-3-gram TF-IDF (scikit-learn). Trigrams, not the clause scorer's bigrams: `不是生`,
    `我却吓` mark whose feeling a word is (on the demo's validation split, 1-3-grams 95.3% against
    1-2-grams' best 93.3%)."""

    MAX_CLASSES = 50  # more distinct values than this: free text (a cause), not a label to predict
    FOLDS = 5

    def __init__(self, vectorizer, coef, intercept, classes: list[str], label: str, fitted: dict | None = None):
        self.vectorizer, self.coef, self.intercept = vectorizer, coef, intercept
        self.classes, self.label, self.fitted = list(classes), label, fitted or {}

    @staticmethod
    def _vectorizer(**kw):
        import numpy as np
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, dtype=np.float32, **kw)

    @classmethod
    def _fit_one(cls, docs: list[str], labels: list[str], label: str) -> "LabelHint":
        from sklearn.linear_model import LogisticRegression

        vectorizer = cls._vectorizer(min_df=2, max_features=50_000)
        x = vectorizer.fit_transform(docs)
        # lbfgs: deterministic. C on the demo's validation split: 3 94.0%, 10 95.3%, 30 95.3%, 100 95.0%
        model = LogisticRegression(C=10.0, max_iter=5000).fit(x, labels)
        # four decimals: the saved hint (guide.json) is a fifth the size and predicts what this one does
        return cls(vectorizer, model.coef_.astype("float64").round(4), model.intercept_.astype("float64").round(4),
                   [str(c) for c in model.classes_], label)

    @classmethod
    def fit(cls, docs: list[str], labels: list[str], label: str, folds: int = FOLDS,
            seed: int = 0) -> tuple["LabelHint", list[str]]:
        """The hint fitted on every row, and the hints the training rows are given: with folds >= 2
        each row's out-of-fold prediction (from a hint fitted on the other folds: as fallible as on
        new text), with 0 the fitted hint's own (in-sample: right on nearly every training row)."""
        import numpy as np
        from sklearn.model_selection import KFold

        distinct = sorted(set(labels))
        if any(SEPARATOR in x for x in distinct):
            raise GuideError(f"tokenize.guide_label: a value of {label!r} holds the guide's separator {SEPARATOR!r}; "
                             "set tokenize.guide_label: null")
        if len(distinct) < 2:
            raise GuideError(f"tokenize.guide_label: every training row names the same {label!r} "
                             f"({distinct[0] if distinct else 'none'}): nothing to predict; set tokenize.guide_label: null")
        if len(distinct) > cls.MAX_CLASSES:
            raise GuideError(f"tokenize.guide_label: {label!r} has {len(distinct)} distinct values in the training "
                             f"split, more than {cls.MAX_CLASSES}: free text, not a label; name a label column "
                             "or set tokenize.guide_label: null")
        hint = cls._fit_one(docs, labels, label)
        if folds == 0:
            given = hint.predict(docs)
            hint.fitted = {"rows": len(docs), "classes": len(hint.classes), "folds": 0,
                           "in_sample_accuracy": round(float(np.mean([a == b for a, b in zip(given, labels)])), 4)}
            return hint, given
        if folds < 2:
            raise GuideError(f"tokenize.guide_label_folds: {folds}; 0 (in-sample hints) or at least 2")
        oof: list[str] = [""] * len(docs)
        splits = KFold(min(folds, len(docs)), shuffle=True, random_state=seed)
        for train_idx, held_idx in splits.split(np.zeros(len(docs))):
            part_labels = [labels[i] for i in train_idx]
            if len(set(part_labels)) < 2:  # a tiny split: the other folds know one label, so that is the hint
                preds = [part_labels[0]] * len(held_idx)
            else:
                preds = cls._fit_one([docs[i] for i in train_idx], part_labels, label).predict(
                    [docs[i] for i in held_idx])
            for i, p in zip(held_idx, preds):
                oof[i] = p
        hint.fitted = {"rows": len(docs), "classes": len(hint.classes), "folds": folds,
                       "out_of_fold_accuracy": round(float(np.mean([a == b for a, b in zip(oof, labels)])), 4)}
        return hint, oof

    def predict(self, docs: list[str]) -> list[str]:
        import numpy as np

        if not docs:
            return []
        s = np.asarray(self.vectorizer.transform(docs) @ self.coef.T) + self.intercept
        if s.shape[1] == 1:  # two classes: scikit-learn keeps one row of coefficients, for the second
            return [self.classes[int(v > 0)] for v in s[:, 0]]
        return [self.classes[int(j)] for j in s.argmax(axis=1)]

    def to_json(self) -> dict:
        v = self.vectorizer
        return {"kind": "label-hint-logistic", "label": self.label, "ngram_range": list(v.ngram_range),
                "classes": self.classes, "vocabulary": {k: int(i) for k, i in v.vocabulary_.items()},
                "idf": [float(x) for x in v.idf_], "coef": [[float(x) for x in row] for row in self.coef],
                "intercept": [float(x) for x in self.intercept], "fitted": self.fitted}

    @classmethod
    def from_json(cls, doc: dict, where: str = FILE) -> "LabelHint":
        import numpy as np

        if doc.get("kind") != "label-hint-logistic":
            raise GuideError(f"{where}: label_hint is not an emosum label hint")
        vocab, classes = doc["vocabulary"], doc["classes"]
        coef = np.asarray(doc["coef"], dtype="float64")
        rows = 1 if len(classes) == 2 else len(classes)
        if len(doc["idf"]) != len(vocab) or coef.shape != (rows, len(vocab)) or len(doc["intercept"]) != rows:
            raise GuideError(f"{where}: the label hint's vocabulary, IDF, coefficient and class counts disagree")
        vectorizer = cls._vectorizer(vocabulary=vocab)
        vectorizer.idf_ = np.asarray(doc["idf"], dtype="float32")
        return cls(vectorizer, coef, np.asarray(doc["intercept"], dtype="float64"), classes, str(doc["label"]),
                   doc.get("fitted"))


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
