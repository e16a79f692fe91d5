"""Spectral clustering of speaker embeddings (whisperx_container/app/inference/spectral.py), without the image:
how many speakers it counts, and who it puts together."""

from __future__ import annotations

import numpy as np
import pytest
from app.inference.spectral import spectral_clusters

DIM = 192  # CAM++ embeddings


def voices(counts: list[int], spread: float = 0.9, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of len(counts) speakers (counts[i] each) and who is who: each speaker's embeddings scatter
    around a voice of their own, so that two of a speaker's are at a cosine similarity of about 0.55, as CAM++
    embeddings of 2-s excerpts of one person are, and two people's near 0."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(counts), DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    who = np.repeat(np.arange(len(counts)), counts)
    noise = rng.normal(size=(len(who), DIM)) * spread / np.sqrt(DIM)
    return centres[who] + noise, who


def same_partition(found: np.ndarray, truth: np.ndarray) -> bool:
    pairs = {(int(f), int(t)) for f, t in zip(found, truth, strict=True)}
    return len(pairs) == len(set(found.tolist())) == len(set(truth.tolist()))


@pytest.mark.parametrize("counts", [[30, 30], [20, 35, 25], [40, 12, 30, 25, 18], [60] * 8])
def test_it_counts_the_speakers_and_keeps_each_together(counts: list[int]):
    x, who = voices(counts)
    found = spectral_clusters(x, max_clusters=10)
    assert same_partition(found, who), (len(set(found.tolist())), len(counts))


def test_one_voice_stays_one_speaker():
    x, _ = voices([50])
    assert set(spectral_clusters(x, max_clusters=10).tolist()) == {0}


def test_many_embeddings_of_eight_voices_are_still_eight():
    """Where a fixed threshold loses voices (a long window: many embeddings per speaker), the count holds."""
    x, who = voices([120, 90, 60, 150, 80, 70, 100, 40], seed=3)
    found = spectral_clusters(x, max_clusters=15)
    assert len(set(found.tolist())) == 8 and same_partition(found, who)


def test_the_bounds_given_are_kept():
    x, _ = voices([30, 30, 30, 30])
    assert len(set(spectral_clusters(x, max_clusters=2).tolist())) <= 2
    assert len(set(spectral_clusters(x, num_clusters=3).tolist())) == 3
    two, _ = voices([40, 40])
    assert len(set(spectral_clusters(two, min_clusters=3, max_clusters=5).tolist())) >= 3


def test_clusters_closer_than_the_merge_threshold_become_one_speaker():
    x, who = voices([40, 40, 40], spread=0.3, seed=1)
    x[who == 1] = x[who == 1] * 0.4 + x[who == 0].mean(axis=0) * 0.6  # speaker 1 sounds like speaker 0: 0.83 apart
    apart = spectral_clusters(x, max_clusters=6)
    merged = spectral_clusters(x, max_clusters=6, merge=0.8)
    assert len(set(apart.tolist())) == 3
    assert len(set(merged.tolist())) == 2 and len(set(merged[who != 2].tolist())) == 1
    assert len(set(spectral_clusters(x, min_clusters=3, max_clusters=6, merge=0.8).tolist())) == 3


@pytest.mark.parametrize("n", [0, 1, 2])
def test_too_few_embeddings_are_one_speaker(n: int):
    assert spectral_clusters(np.ones((n, DIM)), max_clusters=4).tolist() == [0] * n
