"""What a short context keeps of a long input: lead truncation or learned sentence selection.

The fast mode cuts inputs to `tokenize.max_source_length` tokens. Keeping the first N tokens holds
the core content only for texts that say it first; meetings, dialogues and long posts do not
(VCSum segments: the first 128 characters hold 6% of the reference's character bigrams, the best
sentences that fit 29%). So before the abstractive model, an extract-then-abstract step: a
sentence scorer fitted on the training split's own pairs (labels: the sentences a greedy oracle
picks with the reference in hand, at the run's budget; features: character n-gram TF-IDF from
scikit-learn, the sentence's position, length and similarity to its document; a logistic
regression) keeps the highest-scoring sentences that fit, in their original order, and fills the
rest of the budget from the leading text not yet kept. Only inputs longer than the budget change.

Selection works on the token ids of one tokenization of the whole text (offsets map each token to
its sentence), so the budget holds exactly and the evaluate stage, the training data and
`summarize` get the same ids for the same text (`encode`). The fitted scorer is saved as JSON
(vocabulary, IDF weights, coefficients), never a pickle: a model folder must not run code when
loaded.

Coverage, the yardstick: the share of the reference summary's character bigrams (letters and
digits, case-folded; punctuation and spaces dropped) that occur in the text the model gets. It
bounds what the model can copy or paraphrase from its input.
"""
from __future__ import annotations

import bisect
import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("emosum.selection")

FILE = "selector.json"
FORMAT = 1
# A sentence ends at 。！？；… (full or half width, repeated: `？！`, `……`), keeping the closing
# quotes and brackets after it (`他说："好。”` stays whole), or at a line break: dialogue turns and
# transcripts put one turn on a line. An ASCII `.` ends a sentence only after a Chinese character
# and before no digit (abstracts typed with ASCII punctuation: `收敛性.仿真结果`); elsewhere it is a
# decimal point, an abbreviation or a URL. No break at `，`.
_END = re.compile(r"(?:[。！？；!?;…]|(?<=[\u4e00-\u9fff])\.(?!\d))+[”’\"'」』）)\]】》]*[ \t\u3000]*\n*|\n+")
NUMERIC = ("position", "first", "last", "length", "budget_share", "centrality")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) character spans that tile the text, one per sentence."""
    spans, start = [], 0
    for m in _END.finditer(text):
        if m.end() > start:
            spans.append((start, m.end()))
            start = m.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans or [(0, len(text))]


def bigrams(text: str) -> list[str]:
    chars = [c for c in text.lower() if c.isalnum()]
    return [a + b for a, b in zip(chars, chars[1:])]


def coverage(kept: str, reference: str) -> float | None:
    """Share of the reference's character bigrams found in `kept`; None for a reference under 2 chars."""
    ref = bigrams(reference)
    if not ref:
        return None
    have = set(bigrams(kept))
    return sum(b in have for b in ref) / len(ref)


@dataclass
class Doc:
    """One input, tokenized once: the prefix ids, the text's ids, and each sentence's token range."""
    text: str
    prefix_ids: list[int]
    ids: list[int]             # the text's tokens (no prefix, no eos)
    starts: list[int]          # each token's first character in `text`
    sentences: list[tuple[int, int]]   # char spans
    ranges: list[tuple[int, int]]      # token index ranges [a, b) per sentence
    clause_split: int = 0              # sentences longer than the budget, cut into their clauses
    guide_cut: int = 0                 # guide tokens cut to leave half the context to the text

    def chars(self, a: int, b: int) -> str:
        """The text of tokens [a, b)."""
        end = self.starts[b] if b < len(self.starts) else len(self.text)
        return self.text[self.starts[a]:end] if a < b else ""


# Clauses: where one sentence is longer than the whole budget (a paragraph chained with commas, as
# much real Chinese is), the selection works on its clauses instead of cutting the sentence: a clause
# ends at ，、：, (full or half width), keeping the mark.
_CLAUSE = re.compile(r"[，、：,:]+")


def clause_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """(start, end) spans of the clauses of text[start:end], tiling it."""
    spans, a = [], start
    for m in _CLAUSE.finditer(text, start, end):
        if m.end() > a:
            spans.append((a, m.end()))
            a = m.end()
    if a < end:
        spans.append((a, end))
    return spans or [(start, end)]


def _ranges(starts: list[int], spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Each span's token range: a token belongs to the span holding its first character."""
    bounds = [s for s, _ in spans]
    owner = [bisect.bisect_right(bounds, s) - 1 for s in starts]
    ranges, t = [], 0
    for j in range(len(spans)):
        a = t
        while t < len(owner) and owner[t] <= j:
            t += 1
        ranges.append((a, t))
    return ranges


def tokenize_docs(tok, texts: list[str], prefix: str = "", batch: int = 1000, max_len: int | None = None,
                  guides: list[str] | None = None, separator: str = "", hinted: bool = False) -> list[Doc]:
    """Each text tokenized once, cut into sentences; with max_len, a sentence longer than the
    budget is cut into its clauses (Doc.clause_split counts those sentences).

    guides: per text, clauses to write before it (emosum/guide.py), then `separator`; they join the
    prefix, which every selection keeps whole. With max_len a guide is cut to leave half the
    context to the text (Doc.guide_cut counts the tokens cut). hinted: each guide ends with the
    separator and a label hint (emosum/guide.py LabelHint), which the cut keeps, as it keeps the
    separator."""
    docs = []
    for i in range(0, len(texts), batch):
        chunk = texts[i:i + batch]
        heads = ([prefix + g + separator if g else prefix for g in guides[i:i + batch]] if guides
                 else [prefix] * len(chunk))
        enc = tok([h + t for h, t in zip(heads, chunk)], add_special_tokens=False, return_offsets_mapping=True,
                  verbose=False)
        for text, head, ids, offs in zip(chunk, heads, enc["input_ids"], enc["offset_mapping"]):
            n_prefix = sum(1 for s, _ in offs if s < len(head)) if head else 0
            starts = [max(0, s - len(head)) for s, _ in offs[n_prefix:]]
            prefix_ids, cut = list(ids[:n_prefix]), 0
            if max_len is not None and head != prefix and n_prefix > max_len // 2:
                # the guide's last tokens go, the source prefix and the separator stay
                body_end = len(head) - len(separator)
                if hinted and separator:  # and the hint: from the guide's last separator on
                    body_end = max(len(prefix), head.rfind(separator, len(prefix), body_end))
                n_lead = sum(1 for s, _ in offs[:n_prefix] if s < len(prefix))
                n_body = sum(1 for s, _ in offs[:n_prefix] if len(prefix) <= s < body_end)
                cut = n_prefix - max_len // 2
                keep = max(0, n_body - cut)
                prefix_ids = prefix_ids[:n_lead + keep] + prefix_ids[n_lead + n_body:]
                cut = n_body - keep
            spans = sentence_spans(text)
            ranges = _ranges(starts, spans)
            split = 0
            if max_len is not None:
                budget = max(1, max_len - 1 - len(prefix_ids))
                if any(b - a > budget for a, b in ranges):
                    new = []
                    for (s0, s1), (a, b) in zip(spans, ranges):
                        parts = clause_spans(text, s0, s1) if b - a > budget else [(s0, s1)]
                        split += len(parts) > 1
                        new += parts
                    spans = new
                    ranges = _ranges(starts, spans)
            docs.append(Doc(text, prefix_ids, list(ids[n_prefix:]), starts, spans, ranges, split, cut))
    return docs


def budget_of(doc: Doc, max_len: int) -> int:
    """Tokens of the text that fit: max_len less the prefix and the eos."""
    return max(1, max_len - 1 - len(doc.prefix_ids))


def fits(doc: Doc, max_len: int) -> bool:
    return len(doc.prefix_ids) + len(doc.ids) + 1 <= max_len


def assemble(doc: Doc, order: list[int], budget: int) -> list[tuple[int, int]]:
    """Token ranges kept: sentences in `order` while they fit (one longer than the whole budget is
    cut to it), then the leading text not yet kept until the budget is full; in text order."""
    kept: dict[int, tuple[int, int]] = {}
    left = budget
    for i in order:
        a, b = doc.ranges[i]
        n = min(b - a, budget)
        if 0 < n <= left:
            kept[i] = (a, a + n)
            left -= n
    for i, (a, b) in enumerate(doc.ranges):
        if left <= 0:
            break
        if i in kept or b <= a:
            continue
        n = min(b - a, left)
        kept[i] = (a, a + n)
        left -= n
    return [kept[i] for i in sorted(kept)]


def lead_ranges(doc: Doc, budget: int) -> list[tuple[int, int]]:
    return [(0, min(budget, len(doc.ids)))]


def oracle_order(doc: Doc, reference: str, budget: int) -> list[int]:
    """Greedy oracle: repeatedly the sentence (cut to the budget if longer) that adds the most
    uncovered reference bigrams and still fits; stops when none adds any."""
    ref = bigrams(reference)
    weight: dict[str, int] = {}
    for g in ref:
        weight[g] = weight.get(g, 0) + 1
    sent = []
    for a, b in doc.ranges:
        n = min(b - a, budget)
        sent.append((n, set(bigrams(doc.chars(a, a + n))) & set(weight)))
    covered: set[str] = set()
    chosen: list[int] = []
    left = budget
    while True:
        best, gain = None, 0
        for i, (n, grams) in enumerate(sent):
            if i in chosen or n == 0 or n > left:
                continue
            g = sum(weight[x] for x in grams - covered)
            if g > gain:
                best, gain = i, g
        if best is None:
            return chosen
        chosen.append(best)
        covered |= sent[best][1]
        left -= sent[best][0]


def ids_of(doc: Doc, ranges: list[tuple[int, int]], eos: int) -> list[int]:
    return doc.prefix_ids + [t for a, b in ranges for t in doc.ids[a:b]] + [eos]


def kept_text(doc: Doc, ranges: list[tuple[int, int]]) -> str:
    return "".join(doc.chars(a, b) for a, b in ranges)


class Scorer:
    """Sentence scores: a logistic regression over character 1-2-gram TF-IDF and six numbers
    (position, first, last, length, share of the budget, cosine similarity to the document)."""

    def __init__(self, vectorizer, coef, intercept: float, budget: int, fitted: dict | None = None):
        self.vectorizer, self.coef, self.intercept, self.budget = vectorizer, coef, intercept, budget
        self.fitted = fitted or {}

    @staticmethod
    def _vectorizer(**kw):
        import numpy as np
        from sklearn.feature_extraction.text import TfidfVectorizer

        # characters, not jieba words: no segmentation errors, and the n-grams that mark a cause
        # or a feeling (`感到`, `因为`) are short
        return TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True, dtype=np.float32, **kw)

    @staticmethod
    def _features(vectorizer, docs: list[Doc], budget: int):
        """One row per sentence of every doc: TF-IDF, then the numbers in NUMERIC."""
        import numpy as np
        import scipy.sparse as sp

        x = vectorizer.transform([d.text[s:e] for d in docs for s, e in d.sentences])
        numeric, row = [], 0
        for d in docs:
            n = len(d.sentences)
            m = x[row:row + n]
            row += n
            centre = np.asarray(m.sum(axis=0)).ravel()
            cos = m @ (centre / max(1e-9, float(np.linalg.norm(centre))))
            for i, (a, b) in enumerate(d.ranges):
                numeric.append([i / max(1, n - 1), i == 0, i == n - 1, math.log1p(b - a) / math.log1p(budget),
                                min(1.0, (b - a) / budget), cos[i]])
        return sp.hstack([x, sp.csr_matrix(np.asarray(numeric, dtype="float32"))]).tocsr()

    @classmethod
    def fit(cls, docs: list[Doc], chosen: list[set[int]], budget: int, seed: int = 0) -> "Scorer":
        """Fit on `docs` with `chosen[i]` the sentences the oracle picked in docs[i] (label 1)."""
        import numpy as np
        from sklearn.linear_model import LogisticRegression

        labels = [int(i in c) for d, c in zip(docs, chosen) for i in range(len(d.sentences))]
        vectorizer = cls._vectorizer(min_df=2, max_features=50_000)
        vectorizer.fit([d.text[s:e] for d in docs for s, e in d.sentences])
        x = cls._features(vectorizer, docs, budget)
        y = np.asarray(labels)
        if y.min() == y.max():
            raise ValueError("sentence selection: the oracle labels are all alike; nothing to learn")
        # balanced: the oracle picks few sentences of many; liblinear: deterministic
        model = LogisticRegression(C=1.0, class_weight="balanced", solver="liblinear", random_state=seed,
                                   max_iter=1000).fit(x, y)
        return cls(vectorizer, model.coef_.ravel().astype("float64"), float(model.intercept_[0]), budget,
                   {"documents": len(docs), "sentences": int(len(y)), "positive": int(y.sum())})

    def probabilities(self, docs: list[Doc]) -> list:
        """Each doc's sentences' probability of being an oracle pick."""
        import numpy as np

        if not docs:
            return []
        s = self._features(self.vectorizer, docs, self.budget) @ self.coef + self.intercept
        p = 1 / (1 + np.exp(-s))
        bounds = np.cumsum([0] + [len(d.sentences) for d in docs])
        return [p[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    def orders(self, docs: list[Doc], budget: int) -> list[list[int]]:
        """The sentences each doc keeps, in the order they were picked: greedily the one with the
        highest probability x share of its bigrams not yet kept / sqrt(its length) that still fits.
        Why not the probability alone: the budget is counted in tokens and a sentence that repeats
        kept content adds nothing (VCSum test split, 128 tokens: coverage 0.220 by probability
        alone, 0.244 this way; 512 tokens: 0.459 and 0.477)."""
        out = []
        for d, p in zip(docs, self.probabilities(docs)):
            sents = [(min(b - a, budget), set(bigrams(d.chars(a, a + min(b - a, budget))))) for a, b in d.ranges]
            covered: set[str] = set()
            chosen: list[int] = []
            left = budget
            while True:
                best, value = None, -1.0
                for i, (n, grams) in enumerate(sents):
                    if n == 0 or n > left or i in chosen:
                        continue
                    v = p[i] * (len(grams - covered) / len(grams) if grams else 0.0) / math.sqrt(n)
                    if v > value:
                        best, value = i, v
                if best is None:
                    break
                chosen.append(best)
                covered |= sents[best][1]
                left -= sents[best][0]
            out.append(chosen)
        return out

    def to_json(self) -> dict:
        v = self.vectorizer
        return {"format": FORMAT, "kind": "char-tfidf-logistic", "budget": self.budget,
                "ngram_range": list(v.ngram_range), "numeric_features": list(NUMERIC),
                "vocabulary": {k: int(i) for k, i in v.vocabulary_.items()},
                "idf": [float(x) for x in v.idf_], "coef": [float(x) for x in self.coef],
                "intercept": self.intercept, "fitted": self.fitted}

    @classmethod
    def from_json(cls, doc: dict, where: str = FILE) -> "Scorer":
        import numpy as np

        if doc.get("format") != FORMAT or doc.get("kind") != "char-tfidf-logistic":
            raise ValueError(f"{where}: not an emosum sentence scorer of format {FORMAT}")
        vocab = doc["vocabulary"]
        if len(doc["idf"]) != len(vocab) or len(doc["coef"]) != len(vocab) + len(NUMERIC):
            raise ValueError(f"{where}: the vocabulary, IDF and coefficient lengths disagree")
        vectorizer = cls._vectorizer(vocabulary=vocab)
        vectorizer.idf_ = np.asarray(doc["idf"], dtype="float32")
        return cls(vectorizer, np.asarray(doc["coef"]), float(doc["intercept"]), int(doc["budget"]),
                   doc.get("fitted"))


def save(scorer: Scorer, folder: Path) -> Path:
    from emosum import dataio

    path = Path(folder) / FILE
    dataio.write_json(path, scorer.to_json(), ensure_ascii=True)
    return path


class SelectorError(ValueError):
    pass


def load(folder: Path) -> Scorer | None:
    """The scorer saved with a tokenizer or model, or None (that model truncates)."""
    path = Path(folder) / FILE
    if not path.is_file():
        return None
    try:
        return Scorer.from_json(json.loads(path.read_text(encoding="utf-8")), str(path))
    except (ValueError, KeyError, TypeError) as e:
        raise SelectorError(f"{path}: not a readable sentence scorer ({e}); rerun `dvc repro` to rebuild it, "
                            "or delete it to truncate long inputs instead") from None


def select(docs: list[Doc], max_len: int, scorer: Scorer | None) -> list[list[tuple[int, int]]]:
    """The token ranges each doc keeps: all of it when it fits, else the lead (no scorer) or the
    learned selection."""
    out: list = [None] * len(docs)
    long = []
    for i, d in enumerate(docs):
        if fits(d, max_len):
            out[i] = [(0, len(d.ids))]
        elif scorer is None:
            out[i] = lead_ranges(d, budget_of(d, max_len))
        else:
            long.append(i)
    by_budget: dict[int, list[int]] = {}  # a guide in the prefix makes budgets differ between inputs
    for i in long:
        by_budget.setdefault(budget_of(docs[i], max_len), []).append(i)
    for budget, idx in by_budget.items():
        for i, order in zip(idx, scorer.orders([docs[i] for i in idx], budget)):
            out[i] = assemble(docs[i], order, budget)
    return out


def encode(tok, texts: list[str], max_len: int, prefix: str = "", scorer: Scorer | None = None,
           guide=None) -> list[list[int]]:
    """Input ids for `texts` as the model was trained: prefix (+ the guide's clauses and separator)
    + text + eos when it fits, else the lead (no scorer) or the learned selection, max_len tokens at
    most. The one path for the tokenize stage and `summarize`."""
    guides, sep = (guide.guides(texts), guide.separator) if guide is not None else (None, "")
    docs = tokenize_docs(tok, texts, prefix, max_len=max_len, guides=guides, separator=sep,
                         hinted=guide is not None and guide.hint is not None)
    return [ids_of(d, r, tok.eos_token_id) for d, r in zip(docs, select(docs, max_len, scorer))]


def _mean(xs) -> float | None:
    xs = [x for x in xs if x is not None]
    return round(sum(xs) / len(xs), 4) if xs else None


def plan(mode: str, tok, rows: dict[str, list[dict]], max_len: int, prefix: str = "", min_gain: float = 0.01,
         seed: int = 0, guides: dict[str, list[str]] | None = None,
         separator: str = "", hinted: bool = False) -> tuple[Scorer | None, dict, dict]:
    """The tokenize stage's selection: fit the scorer on the training split (when `mode` asks for
    it and some input is longer than the budget), decide (`auto`: learned only where it raises the
    validation coverage over lead by `min_gain`), and measure coverage per split for what is kept,
    the lead, the learned selection, the greedy oracle and the whole input.

    guides: per split, the clauses written before each input (emosum/guide.py), then `separator`.

    Returns (the scorer to save or None, {split: token ranges per row}, stats for the metrics)."""
    import time

    t0 = time.perf_counter()
    docs = {s: tokenize_docs(tok, [r["text"] for r in rs], prefix, max_len=max_len, separator=separator, hinted=hinted,
                             guides=guides[s] if guides else None)
            for s, rs in rows.items()}
    refs = {s: [r["summary"] for r in rs] for s, rs in rows.items()}
    long = {s: [i for i, d in enumerate(ds) if not fits(d, max_len)] for s, ds in docs.items()}
    oracle = {s: {i: oracle_order(docs[s][i], refs[s][i], budget_of(docs[s][i], max_len)) for i in long[s]}
              for s in docs}
    scorer, why = None, ""
    if mode == "lead":
        why = "tokenize.select: lead"
    elif not long["train"]:
        why = f"every training input fits in {max_len} tokens: nothing to select"
    else:
        train = [docs["train"][i] for i in long["train"]]
        labels = [set(oracle["train"][i]) for i in long["train"]]
        if sum(map(len, labels)) == 0 or all(len(l) == len(d.sentences) for l, d in zip(labels, train)):
            why = ("the oracle labels of the training split are all alike (the long inputs are one sentence each, "
                   "or none holds the summary's bigrams): nothing to learn, so lead")
            log.warning("input selection: %s", why)
        else:
            scorer = Scorer.fit(train, labels, budget_of(train[0], max_len), seed)
    fit_s = time.perf_counter() - t0

    ranges = {"lead": {s: select(ds, max_len, None) for s, ds in docs.items()}}
    if scorer:
        ranges["learned"] = {s: select(ds, max_len, scorer) for s, ds in docs.items()}
    ranges["oracle"] = {s: [assemble(d, oracle[s][i], budget_of(d, max_len)) if i in oracle[s] else [(0, len(d.ids))]
                            for i, d in enumerate(ds)] for s, ds in docs.items()}
    ranges["whole"] = {s: [[(0, len(d.ids))] for d in ds] for s, ds in docs.items()}
    cov = {k: {s: [coverage(kept_text(d, r), ref) for d, r, ref in zip(docs[s], rs[s], refs[s])] for s in docs}
           for k, rs in ranges.items()}

    used = "lead"
    if scorer and mode == "learned":
        used, why = "learned", "tokenize.select: learned"
    elif scorer:  # auto
        val = "validation" if rows.get("validation") else "train"
        gain = (_mean(cov["learned"][val]) or 0) - (_mean(cov["lead"][val]) or 0)
        if gain >= min_gain:
            used = "learned"
        lead_c, learned_c = _mean(cov["lead"][val]), _mean(cov["learned"][val])
        why = (f"auto: the learned selection {'raises' if used == 'learned' else 'does not raise'} the {val} "
               f"coverage by select_min_gain {min_gain:g} or more ({lead_c} with lead, {learned_c} learned: "
               f"{gain:+.4f})")
        if used == "lead":
            scorer = None
    stats = {"mode": mode, "used": used, "why": why, "seconds": round(time.perf_counter() - t0, 2),
             "fit_seconds": round(fit_s, 2), "scorer": scorer.fitted if scorer else None, "splits": {}}
    for s in docs:
        n_long = long[s]
        stats["splits"][s] = {
            "longer_than_budget": len(n_long),
            # sentences longer than the whole budget, selected clause by clause (not cut), and the
            # inputs holding one
            "sentences_cut_into_clauses": sum(d.clause_split for d in docs[s]),
            "inputs_with_clauses": sum(d.clause_split > 0 for d in docs[s]),
            # what every input keeps before its text: the source prefix and, guided, the guide
            "prefix_tokens_mean": round(sum(len(d.prefix_ids) for d in docs[s]) / max(1, len(docs[s])), 2),
            "guides_cut": sum(d.guide_cut > 0 for d in docs[s]),
            "coverage": {"kept": _mean(cov[used][s]), **{k: _mean(c[s]) for k, c in cov.items()}},
            "coverage_long_inputs": {"kept": _mean(cov[used][s][i] for i in n_long),
                                     **{k: _mean(c[s][i] for i in n_long) for k, c in cov.items()}},
        }
    return scorer, {s: [ids_of(d, r, tok.eos_token_id) for d, r in zip(docs[s], ranges[used][s])] for s in docs}, stats
