"""Which pairs a cut keeps, and what it loses: `subsample.strategy: representative` and the
coverage figures every run records.

Representation: character 1-2-gram TF-IDF (scikit-learn; characters, as Chinese has no spaces)
of input and summary as one bag (`subsample.representation: pair`) or of the summary alone
(`summary`), reduced to 64 dimensions by truncated SVD and L2-normalised, so a dot product is a
cosine similarity. Cheap: 12,000 pairs in a few seconds on 2 cores. In one bag the input's words
outweigh the summary's (a post is 3-20 times longer), so `pair` sees mostly the filler around
what the pair teaches: on a pool crowded with one feeling and three kinds of cause, a cut that
covered it by `pair` kept more of the crowded feeling than a random cut (69% against 63%), by
`summary` far less (28%; docs/subsampling.md, "Compared by the summary alone").

`representative` keeps, for a cut to k pairs (`representative_pick: nearest`), the member nearest
to each centroid of a k-means clustering of the pool (scikit-learn's MiniBatchKMeans): a standard
k-medoids style approximation of the facility-location objective (each pool pair near some kept
pair) that scales to 100,000 pairs, where a greedy facility location needs the pool's whole
similarity graph. With a label
column, each label value gets its proportional quota, at least one pair, and is clustered alone.
`representative_pick: kcenter` keeps the greedy k-center instead (_kcenter): the pairs that leave
no pool pair far from a kept one, the unusual ones included.

Coverage of a cut: the mean (and the 10th percentile, and the least) cosine similarity of every
pool pair to its nearest kept pair; the share of the pool's 50 k-means clusters, of its label
values and of its input-length deciles that the kept pairs represent.
"""
from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger("emosum.subsample")
DIM = 64
CLUSTERS = 50      # clusters of the pool whose representation a cut's coverage reports
LENGTH_BUCKETS = 10


REPRESENTATIONS = ("pair", "summary")


def features(texts: list[str], summaries: list[str], seed: int = 0, of: str = "pair") -> np.ndarray:
    """One row per pair: `of` "pair" (input and summary in one bag) or "summary" (the summary alone)."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    if of not in REPRESENTATIONS:
        raise ValueError(f"representation {of!r}: one of {', '.join(REPRESENTATIONS)}")
    docs = [f"{t} {s}" for t, s in zip(texts, summaries)] if of == "pair" else list(summaries)
    tf = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), min_df=2 if len(docs) > 50 else 1,
                         max_features=50_000, sublinear_tf=True, dtype=np.float32).fit_transform(docs)
    dim = min(DIM, tf.shape[1] - 1, len(docs) - 1)
    if dim < 2:
        return normalize(tf.toarray().astype(np.float32))
    x = TruncatedSVD(n_components=dim, random_state=seed, algorithm="randomized", n_iter=4).fit_transform(tf)
    return normalize(x).astype(np.float32)


def _cluster_pick(x: np.ndarray, k: int, seed: int, pick: str = "nearest") -> list[int]:
    """k rows of x: one per k-means cluster (distinct), topped up at random. `nearest`: the member
    nearest to the centroid (the cluster's most typical pair); `random`: a member drawn at random
    (seeded), which covers the same clusters but keeps the variety within them that the most
    typical members lose (bench/kept_variety.py)."""
    from sklearn.cluster import MiniBatchKMeans

    n = len(x)
    if k >= n:
        return list(range(n))
    km = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=1, batch_size=max(1024, 2 * k), max_iter=20,
                         max_no_improvement=5, reassignment_ratio=0.0).fit(x)
    picked, taken = [], set()
    # the member nearest to each centroid; chunks keep the n x k distance matrix small
    labels = km.labels_
    sims = np.einsum("ij,ij->i", x, km.cluster_centers_[labels])
    rng = np.random.default_rng(seed)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        best = int(members[np.argmax(sims[members])] if pick == "nearest" else rng.choice(members))
        if best not in taken:
            taken.add(best)
            picked.append(best)
    if len(picked) < k:  # empty clusters: top up at random, deterministically
        rest = np.setdiff1d(np.arange(n), picked)
        picked += np.random.default_rng(seed).choice(rest, k - len(picked), replace=False).tolist()
    return sorted(picked[:k])


def _kcenter(x: np.ndarray, k: int, seed: int) -> list[int]:
    """k rows of x by farthest-first traversal (Gonzalez's greedy k-center): from a seeded random
    start, each next pair is the one least similar to every pair kept so far. It maximises the
    worst-covered pair's similarity (`coverage`'s min_similarity_to_nearest_kept) rather than the mean,
    and keeps the unusual pairs the k-means members leave out. O(n k) dot products of DIM floats,
    one matrix-vector product per kept pair: written here because scikit-learn has no k-center and
    apricot's FacilityLocation / FeatureBased selections need the n x n similarity graph or sparse
    non-negative features."""
    n = len(x)
    if k >= n:
        return list(range(n))
    first = int(np.random.default_rng(seed).integers(n))
    best = x @ x[first]  # each row's similarity to its nearest kept row
    best[first] = np.inf
    picked = [first]
    for _ in range(k - 1):
        i = int(np.argmin(best))
        picked.append(i)
        np.maximum(best, x @ x[i], out=best)
        best[i] = np.inf  # never again, even where rows are identical
    return sorted(picked)


def quotas(labels: list[str], k: int) -> dict[str, int]:
    """Proportional quota per label value (largest remainder), every value at least one."""
    from collections import Counter

    counts = Counter(labels)
    if k < len(counts):
        raise ValueError(f"subsample.max_samples {k} is below the {len(counts)} label values: every value must "
                         "keep a pair; raise max_samples or use strategy: random")
    rest = len(labels) - len(counts)
    exact = {v: (k - len(counts)) * (c - 1) / rest if rest else 0.0 for v, c in counts.items()}
    n = {v: 1 + int(exact[v]) for v in counts}
    for v in sorted(counts, key=lambda v: (int(exact[v]) - exact[v], v))[:k - sum(n.values())]:
        n[v] += 1
    return {v: min(q, counts[v]) for v, q in n.items()}


def representative(x: np.ndarray, k: int, labels: list[str] | None, seed: int, pick: str = "nearest") -> list[int]:
    """Indices of the k rows that best cover x (see the module's docstring); `pick` as in
    _cluster_pick, or `kcenter` (_kcenter: no clustering)."""
    if k >= len(x):
        return list(range(len(x)))
    choose = (lambda y, q: _kcenter(y, q, seed)) if pick == "kcenter" else \
        (lambda y, q: _cluster_pick(y, q, seed, pick))
    if not labels:
        return choose(x, k)
    out = []
    arr = np.array(labels)
    for v, q in sorted(quotas(labels, k).items()):
        idx = np.flatnonzero(arr == v)
        out += idx[choose(x[idx], q)].tolist()
    return sorted(out)


def coverage(x: np.ndarray, kept: list[int], labels: list[str] | None, lengths: list[int], seed: int,
             pool_clusters: np.ndarray | None = None) -> dict:
    """How well `kept` covers the pool x (see the module's docstring)."""
    kept_x = x[kept]
    best = np.empty(len(x), dtype=np.float32)
    for i in range(0, len(x), 4096):
        best[i:i + 4096] = (x[i:i + 4096] @ kept_x.T).max(axis=1)
    cl = pool_clusters if pool_clusters is not None else clusters(x, seed)
    edges = np.quantile(lengths, np.linspace(0, 1, LENGTH_BUCKETS + 1)[1:-1])
    buckets = np.searchsorted(edges, lengths, side="right")
    out = {"kept": len(kept), "pool": len(x),
           "mean_similarity_to_nearest_kept": round(float(best.mean()), 4),
           "p10_similarity_to_nearest_kept": round(float(np.quantile(best, 0.1)), 4),
           "min_similarity_to_nearest_kept": round(float(best.min()), 4),  # what k-center maximises
           "clusters_represented": round(len(set(cl[kept].tolist())) / len(set(cl.tolist())), 4),
           "length_deciles_represented": round(len(set(buckets[kept].tolist())) / len(set(buckets.tolist())), 4)}
    if labels:
        arr = np.array(labels)
        out["labels_represented"] = round(len(set(arr[kept].tolist())) / len(set(labels)), 4)
    return out


def clusters(x: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    k = min(CLUSTERS, len(x))
    return KMeans(n_clusters=k, random_state=seed, n_init=1, max_iter=50).fit_predict(x)
