"""Spectral clustering of speaker embeddings that counts the speakers itself (NME-SC).

Park et al., "Auto-Tuning Spectral Clustering for Speaker Diarization Using Normalized Maximum Eigengap"
(IEEE SPL 2020), the clustering NeMo's diarizer runs: the cosine affinity of the embeddings is pruned to each
embedding's p nearest neighbours, and p is the one whose graph Laplacian shows the clearest gap between
eigenvalues (the gap divided by the largest eigenvalue, weighed against p/n); the place of that gap is the
number of speakers, and k-means on the first eigenvectors gives each embedding its speaker. Then clusters
whose mean embeddings are closer than `merge` (cosine similarity) are one speaker.

A fixed distance threshold (agglomerative clustering) counts speakers worse the more embeddings it is given:
the clusters' centroids drift together as they grow, so a ten-minute window of eight voices comes out as
three (docs/benchmarks/quality.md). The eigengap looks at the shape of the whole affinity graph instead.
Pure numpy/scipy, so it runs and is tested without pyannote.
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.vq import kmeans2
from scipy.linalg import eigh

NEIGHBOURS = 0.1  # p is searched from 1 to this share of the embeddings (NeMo's max_rp_threshold; make eval-sweep)
SEARCH_STEPS = 30  # at most this many values of p are tried (NeMo's sparse_search_volume)
MAX_SPEAKERS = 8  # the eigengap is looked for among this many when the caller sets no bound (the service's cap)
RESTARTS = 10  # k-means restarts; the one with the least distortion is kept


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def laplacian_of(pruned: np.ndarray) -> np.ndarray:
    a = 0.5 * (pruned + pruned.T)
    np.fill_diagonal(a, 0.0)
    return np.diag(a.sum(axis=1)) - a


def spectrum(affinity: np.ndarray, low: int, high: int, neighbours: float) -> tuple[int, np.ndarray]:
    """(number of clusters, graph Laplacian) of the pruning whose normalised largest eigengap is clearest; the
    count is where that gap is among the first `high`, at least `low`. The search needs only eigenvalues (a
    third of the cost of the eigenvectors, which the caller computes once, for the pruning chosen)."""
    n = len(affinity)
    order = np.argsort(-affinity, axis=1)
    top = max(2, int(neighbours * n))

    def laplacian(p: int) -> np.ndarray:
        pruned = np.zeros_like(affinity)
        np.put_along_axis(pruned, order[:, :p], 1.0, axis=1)
        return laplacian_of(pruned)

    best = None
    for p in np.unique(np.linspace(1, top, min(SEARCH_STEPS, top)).astype(int)):
        values = eigh(laplacian(p), eigvals_only=True)
        gaps = np.diff(values[: high + 1])
        ratio = (p / n) / (gaps.max() / (values.max() + 1e-10) + 1e-10)
        if best is None or ratio < best[0]:
            best = (ratio, int(np.argmax(gaps)) + 1, p)
    return min(max(best[1], low), high), laplacian(best[2])


def kmeans(points: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(RESTARTS):
        centroids, labels = kmeans2(points, k, minit="++", seed=rng)
        distortion = float(((points - centroids[labels]) ** 2).sum())
        if best is None or distortion < best[0]:
            best = (distortion, labels)
    return best[1]


def merge_close(labels: np.ndarray, x: np.ndarray, merge: float, low: int) -> np.ndarray:
    """Clusters whose mean embeddings' cosine similarity is at least `merge` joined, closest first, down to `low`."""
    labels = labels.copy()
    while len(ids := np.unique(labels)) > low:
        centroids = unit(np.stack([x[labels == i].mean(axis=0) for i in ids]))
        similarity = centroids @ centroids.T
        np.fill_diagonal(similarity, -np.inf)
        i, j = np.unravel_index(np.argmax(similarity), similarity.shape)
        if similarity[i, j] < merge:
            break
        labels[labels == ids[j]] = ids[i]
    return labels


def spectral_clusters(embeddings: np.ndarray, min_clusters: int = 1, max_clusters: int | None = None,
                      num_clusters: int | None = None, merge: float | None = None,
                      neighbours: float = NEIGHBOURS) -> np.ndarray:  # fmt: skip
    """A cluster index (0..k-1) for each embedding (n x dimension)."""
    x = unit(np.asarray(embeddings, dtype=np.float64))
    n = len(x)
    high = max(1, min(max_clusters or MAX_SPEAKERS, n - 1))
    low = max(1, min(min_clusters, high))
    if n < 3 or (num_clusters or 0) == 1 or high == 1:
        return np.zeros(n, dtype=int)
    affinity = x @ x.T
    affinity = (affinity - affinity.min()) / max(affinity.max() - affinity.min(), 1e-12)
    k, laplacian = spectrum(affinity, low, high, neighbours)
    k = min(num_clusters, n) if num_clusters else k
    labels = kmeans(eigh(laplacian, subset_by_index=[0, k - 1])[1], k) if k > 1 else np.zeros(n, dtype=int)
    if merge is not None and not num_clusters:
        labels = merge_close(labels, x, merge, low)
    return np.unique(labels, return_inverse=True)[1]
