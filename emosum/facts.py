"""What a summary must say, and the floors a model that learned nothing reaches.

ROUGE on templated references rewards the template: the demo's first models wrote 9 distinct
summaries for 300 inputs and still scored ROUGE-L 41 against the lead floor's 11. Two measures
here cannot be passed that way:

- **fact recall**: for each column named in `evaluate.fact_columns` (the demo's `cause` and
  `emotion`), the share of predictions that state the row's value. For a label-like column (at
  most `evaluate.max_label_values` distinct values) a prediction that also names another value
  is wrong, so a summary listing every emotion scores nothing. A free-text column (the cause) is
  scored exactly (the value occurs in the prediction) and, as `<column>_half`, leniently: at least
  half of its characters occur in the prediction (a cause shortened or partly reworded).
- **the constant-summary floor**: the one summary that, written for every input, scores best:
  the training summary with the highest mean ROUGE-L against a seeded sample of the other
  training summaries (chosen on training data, scored on the test set like the model).

Hand-written rather than a library's: no package measures "the summary states this label"; the
ROUGE scoring itself is rouge_score's, with the Chinese character tokenizer of emosum/zh_rouge.
"""
from __future__ import annotations

import random
from collections import Counter, defaultdict

from emosum.zh_rouge import zh_rouge


def normalize(text: str) -> str:
    # the ROUGE tokenizer's normalisation: SentencePiece maps full-width punctuation to ASCII
    # (NFKC), so the model's outputs and the data's values are compared after it
    return zh_rouge.normalize(str(text)).strip()


def _named(prediction: str, values: set[str]) -> set[str]:
    """The label values a prediction names; a value inside a longer named one counts once."""
    found = {v for v in values if v and v in prediction}
    return {v for v in found if not any(v != w and v in w for w in found)}


def recall(predictions: list[str], facts: list[dict], columns: list[str], known: dict[str, set[str]],
           max_label_values: int) -> tuple[dict, dict]:
    """Per column: the share of predictions stating the row's value (rows without a value are not
    counted), and under "all" the share with every column right. Returns (numbers for the metrics,
    details: per-value recall and the most frequent confusions of label-like columns)."""
    preds = [normalize(p) for p in predictions]
    scores, details, per_row, half = {}, {}, defaultdict(list), defaultdict(list)
    for col in columns:
        values = {normalize(v) for v in known.get(col, set()) if normalize(v)}
        label = len(values) <= max_label_values
        right, per_value, confusions = [], defaultdict(list), Counter()
        for i, (p, f) in enumerate(zip(preds, facts)):
            truth = normalize(f.get(col) or "")
            if not truth:
                continue
            if label:
                named = _named(p, values | {truth})
                ok = named == {truth}
                if not ok:
                    confusions[(truth, " + ".join(sorted(named - {truth})) or "(none)")] += 1
            else:
                ok = truth in p
                half[col].append(char_recall(p, truth) >= 0.5)
            right.append(ok)
            per_value[truth].append(ok)
            per_row[i].append(ok)
        scores[col] = round(sum(right) / len(right), 4) if right else None
        if half[col]:  # free text (the demo's cause): also the lenient score, half its characters
            scores[f"{col}_half"] = round(sum(half[col]) / len(half[col]), 4)
        details[col] = {
            "label": label, "distinct_values": len(values), "rows": len(right),
            "recall_per_value": {v: {"recall": round(sum(ok) / len(ok), 3), "rows": len(ok)}
                                 for v, ok in sorted(per_value.items())} if label else None,
            "top_confusions": [{"value": t, "named": n, "count": c}
                               for (t, n), c in confusions.most_common(10)] if label else None,
        }
    complete = [all(oks) for oks in per_row.values() if len(oks) == len(columns)]
    if columns and complete:
        scores["all"] = round(sum(complete) / len(complete), 4)
    return scores, details


def char_recall(prediction: str, value: str) -> float:
    """The share of the value's characters (letters and digits, counted with repeats) that the
    prediction holds: the lenient score for free text, where a summary may shorten or reword the
    cause. Punctuation and the summary's own template do not count."""
    want = Counter(c for c in normalize(value) if c.isalnum())
    if not want:
        return 0.0
    have = Counter(c for c in normalize(prediction) if c.isalnum())
    return sum(min(n, have[c]) for c, n in want.items()) / sum(want.values())


def best_constant(summaries: list[str], seed: int = 0, candidates: int = 100, references: int = 200) -> str:
    """The training summary with the highest mean character ROUGE-L F1 against a seeded sample of
    training summaries: the best a model that ignores its input could write. Candidates are the
    most frequent summaries plus a seeded sample of the rest (scoring every pair is quadratic)."""
    from rouge_score import rouge_scorer

    if not summaries:
        return ""
    rng = random.Random(seed)
    counts = Counter(summaries)
    frequent = [s for s, _ in counts.most_common(candidates // 2)]
    rest = sorted(set(counts) - set(frequent))
    pool = frequent + rng.sample(rest, min(len(rest), candidates - len(frequent)))
    refs = rng.sample(summaries, min(len(summaries), references))
    # rouge_score's own LCS F1 on pre-tokenised text (RougeScorer.score re-tokenises both sides on
    # every call: 12 s for 200 x 200 pairs, 5x the cost; rouge-score is pinned, so the helper is stable)
    tok = zh_rouge.CharTokenizer().tokenize
    ref_toks = [tok(r) for r in refs]
    mean = {}
    for c in pool:
        c_toks = tok(c)
        mean[c] = sum(rouge_scorer._score_lcs(r, c_toks).fmeasure for r in ref_toks) / len(ref_toks)
    return max(pool, key=lambda c: (mean[c], c))
