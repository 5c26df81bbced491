"""Near-duplicate inputs: MinHash LSH (datasketch) over character 5-gram shingles, each candidate
checked by its exact Jaccard similarity.

The exact-duplicate check sees only identical pairs; the same story told twice, or one post with
another signature, passes it. Near-duplicates inside the training split are redundancy a cut
keeps; a training input that near-duplicates a test input is a leak (the model has seen the
answer). Character shingles, not words: Chinese has no spaces and a word segmenter would put
its own errors in between.
"""
from __future__ import annotations

import logging

log = logging.getLogger("emosum.subsample")
SHINGLE = 5       # characters per shingle (the measurement: character 5-grams)
NUM_PERM = 128    # MinHash permutations: the LSH's estimate of Jaccard has a std of about 0.04 at 0.8
SEED = 1          # MinHash's hash seed: the same pairs found on every run


def shingles(text: str, k: int = SHINGLE) -> set[str]:
    t = "".join(text.split())  # whitespace and line breaks are not content
    return {t[i:i + k] for i in range(max(1, len(t) - k + 1))}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / max(1, len(a | b))


def find(texts: list[str], groups: list[str], threshold: float, order: list[str]) -> list[tuple[int, int, float]]:
    """(dropped index, the index it near-duplicates, Jaccard) for each text at or above `threshold`
    to one kept before it (an identical text is not a near-duplicate: the same input with another
    summary stays, in one split). Texts are visited group by group in `order` (eval splits first, so a
    training text near one of theirs is the one dropped), in their order within a group."""
    from datasketch import MinHash, MinHashLSH

    idx = sorted(range(len(texts)), key=lambda i: (order.index(groups[i]), i))
    sets = [shingles(t) for t in texts]
    hashes = MinHash.bulk([[s.encode("utf-8") for s in sets[i]] for i in idx], num_perm=NUM_PERM, seed=SEED)
    # the LSH is tuned to a threshold a little under ours: pairs just above it are not missed, and
    # the exact Jaccard below removes the extra candidates
    lsh = MinHashLSH(threshold=max(0.05, threshold - 0.1), num_perm=NUM_PERM)
    out = []
    for i, m in zip(idx, hashes):
        # an identical input is the same input (another summary of it: the split keeps them together)
        best = max(((j, jaccard(sets[i], sets[j])) for j in lsh.query(m) if texts[j] != texts[i]),
                   key=lambda x: x[1], default=None)
        if best and best[1] >= threshold:
            out.append((i, best[0], round(best[1], 3)))
        else:
            lsh.insert(i, m)
    return out
