"""The scoring the service tests and the benchmark share (scripts/bench/scoring.py), on hand-made transcripts."""

from __future__ import annotations

import numpy as np
import pytest

from scripts.bench.scoring import best_mapping, der, word_speaker_accuracy

TURNS = [(0.0, 2.0, "alice"), (2.5, 4.0, "bob"), (4.5, 6.0, "alice")]


def transcript(labels_and_times: list[tuple[str, float]]) -> list[dict]:
    words = [{"word": "w", "start": t, "end": t + 0.2, "speaker": label} for label, t in labels_and_times]
    return [{"speaker": words[0]["speaker"], "words": words}]


def test_labels_are_matched_to_speakers_by_the_best_one_to_one_mapping_not_the_first_large_overlap():
    # greedy would give label 0 to speaker 0 (5 agreeing words) and leave label 1 unmatched: 5 of 13
    assert best_mapping(np.array([[5, 4], [4, 0]])) == {0: 1, 1: 0}
    assert best_mapping(np.array([[3, 0, 0], [0, 0, 2]])) == {0: 0, 1: 2}
    assert best_mapping(np.array([[3], [1], [0]])) == {0: 0}


def test_word_speaker_accuracy_ignores_what_the_labels_are_called():
    words = [("SPEAKER_07", 0.5), ("SPEAKER_07", 1.5), ("SPEAKER_02", 3.0), ("SPEAKER_07", 5.0)]
    assert word_speaker_accuracy(transcript(words), TURNS) == 1.0


def test_word_speaker_accuracy_counts_words_given_to_the_wrong_speaker():
    everyone_is_one_speaker = [("SPEAKER_00", t) for t in (0.5, 1.5, 3.0, 5.0)]
    assert word_speaker_accuracy(transcript(everyone_is_one_speaker), TURNS) == 0.75
    a_word_in_a_pause_goes_to_the_nearest_turn = [("SPEAKER_00", 0.5), ("SPEAKER_01", 2.1)]
    assert word_speaker_accuracy(transcript(a_word_in_a_pause_goes_to_the_nearest_turn), TURNS) == 0.5


def test_der_is_zero_for_the_reference_relabelled_and_one_for_nothing_found():
    relabelled = [(s, e, {"alice": "A", "bob": "B"}[spk]) for s, e, spk in TURNS]
    assert der(TURNS, relabelled, 6.0) == 0.0
    assert der(TURNS, [], 6.0) == 1.0
    assert der(TURNS, [(0.0, 6.0, "A")], 6.0) == pytest.approx((1.5 + 1.0) / 5.0, abs=0.01)
