"""Word-to-speaker assignment rules (scripts/eval/assign.py)."""

from __future__ import annotations

from scripts.bench.scoring import word_speaker_accuracy
from scripts.eval.assign import by_segment, by_word, speaker_of

TURNS = [(0.0, 3.2, "A"), (3.0, 6.0, "B")]  # B starts before A has finished
SEGMENTS = [{"start": 0.0, "end": 6.0}]  # Whisper heard one sentence across the change
WORDS = [{"word": w, "start": s, "end": s + 0.4} for w, s in (("so", 0.5), ("then", 1.5), ("right", 3.4),
                                                               ("yes", 4.5), ("agreed", 5.2))]  # fmt: skip


def test_the_speaker_overlapping_most_and_the_nearest_where_none_does():
    assert speaker_of(2.5, 3.1, TURNS) == "A"  # 0.6 s of A, 0.1 s of B
    assert speaker_of(3.1, 3.6, TURNS) == "B"
    assert speaker_of(6.5, 6.9, TURNS) == "B" and speaker_of(0.0, 0.0, []) is None


def test_a_segment_across_a_speaker_change_loses_words_only_by_segment():
    reference = [(0.0, 3.1, "alice"), (3.1, 6.0, "bob")]
    whole = by_segment(SEGMENTS, WORDS, TURNS)
    assert [s["speaker"] for s in whole] == ["A"]  # 3.2 s of A's turn against 3 s of B's
    assert word_speaker_accuracy(whole, reference) == 3 / 5  # one label for both people: two words lost
    each = by_word(SEGMENTS, WORDS, TURNS)
    assert [w["speaker"] for w in each[0]["words"]] == ["A", "A", "B", "B", "B"]
    assert word_speaker_accuracy(each, reference) == 1.0
