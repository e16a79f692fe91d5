"""Long recordings in windows (whisperx_container/app/inference/windows.py), without the image: where windows are
cut, and how each window's speakers are linked to the recording's speakers by their embeddings."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from app.inference.audio import SAMPLE_RATE, PcmAudio
from app.inference.windows import SpeakerLinker, WindowSpeakers, best_assignment, cut_windows, name_speakers

DIM = 192  # CAM++ embeddings


def pcm(path: Path, seconds: float, quiet: list[tuple[float, float]]) -> PcmAudio:
    """Loud noise for `seconds`, silent in the `quiet` (start, end) spans."""
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.2, int(seconds * SAMPLE_RATE))
    for start, end in quiet:
        audio[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)] = 0.0
    samples = np.clip(audio * 32768, -32768, 32767).astype("<i2")
    samples.tofile(path)
    return PcmAudio(path, len(samples))


def test_a_recording_up_to_a_quarter_window_longer_than_the_window_is_one_window(tmp_path: Path):
    assert cut_windows(pcm(tmp_path / "a", 74.9, []), window_s=60) == [(0.0, 74.9)]
    assert len(cut_windows(pcm(tmp_path / "b", 75.2, []), window_s=60)) == 2


def test_windows_are_cut_in_the_quietest_spot_within_ten_seconds_of_each_boundary(tmp_path: Path):
    gaps = [(57.3, 57.7), (124.6, 125.0)]  # near the nominal cuts at 60 s and 57.5 + 60 s
    decoys = [(30.0, 31.0), (90.0, 91.0)]  # longer silences, too far from any boundary
    windows = cut_windows(pcm(tmp_path / "a", 190.0, gaps + decoys), window_s=60)

    assert len(windows) == 3
    assert windows[0][0] == 0.0 and windows[-1][1] == 190.0
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))  # contiguous: no audio lost or repeated
    for (_, cut), (quiet_start, quiet_end) in zip(windows, gaps, strict=False):
        assert quiet_start <= cut <= quiet_end, windows


def test_without_a_pause_near_the_boundary_the_cut_still_lands_within_ten_seconds(tmp_path: Path):
    windows = cut_windows(pcm(tmp_path / "a", 130.0, [(20.0, 25.0)]), window_s=60)
    assert len(windows) == 2 and 50.0 <= windows[0][1] <= 70.0


def voices(n: int, seed: int = 0) -> list[np.ndarray]:
    """n unrelated speaker embeddings (random directions: nearly orthogonal in 192 dimensions)."""
    rng = np.random.default_rng(seed)
    return [v / np.linalg.norm(v) for v in rng.normal(size=(n, DIM))]


def like(voice: np.ndarray, other: np.ndarray, similarity: float) -> np.ndarray:
    """A unit vector with the given cosine similarity to `voice`, the rest of it towards `other`."""
    rest = other - (other @ voice) * voice
    rest /= np.linalg.norm(rest)
    return similarity * voice + np.sqrt(1 - similarity**2) * rest


def window(start: float, speakers: dict[str, np.ndarray], turn_s: float = 5.0) -> WindowSpeakers:
    """A window in which each local speaker talks once, in the order given, for turn_s seconds."""
    turns = [(start + i * turn_s, start + (i + 1) * turn_s, label) for i, label in enumerate(speakers)]
    return WindowSpeakers(turns, dict(speakers), {label: turn_s for label in speakers})


def speaker_of(turns: list[tuple[float, float, str]], t: float) -> str:
    return next(label for start, end, label in turns if start <= t < end)


def test_the_same_voice_keeps_its_label_in_every_window_whatever_the_window_calls_it():
    alice, bob = voices(2)
    linker = SpeakerLinker()
    linker.add(window(0, {"SPEAKER_00": alice, "SPEAKER_01": bob}))
    linker.add(window(600, {"SPEAKER_00": like(bob, alice, 0.95), "SPEAKER_01": like(alice, bob, 0.9)}))
    linker.add(window(1200, {"SPEAKER_00": like(alice, bob, 0.92)}))

    turns = linker.finish()
    assert [label for *_, label in turns] == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_01", "SPEAKER_00", "SPEAKER_00"]


def test_two_speakers_of_one_window_never_get_the_same_label():
    alice, bob, carol = voices(3)
    linker = SpeakerLinker()
    linker.add(window(0, {"A": alice, "B": bob}))
    # both sound more like alice than like bob; only one of them can be alice
    linker.add(window(600, {"A": like(alice, carol, 0.97), "B": like(alice, carol, 0.7)}))

    turns = linker.finish()
    assert speaker_of(turns, 600) == speaker_of(turns, 0)
    assert speaker_of(turns, 605) not in {speaker_of(turns, 0), speaker_of(turns, 5)}
    assert len({label for *_, label in turns}) == 3


def test_a_voice_less_similar_than_the_threshold_to_every_speaker_so_far_is_a_new_speaker():
    alice, bob, carol = voices(3)
    linker = SpeakerLinker(threshold=0.65)
    linker.add(window(0, {"A": alice}))
    linker.add(window(600, {"A": like(alice, bob, 0.7)}))  # above the threshold: alice again
    linker.add(window(1200, {"A": like(alice, carol, 0.55)}))  # below, also to alice's updated centroid: new

    turns = linker.finish()
    assert [label for *_, label in turns] == ["SPEAKER_00", "SPEAKER_00", "SPEAKER_01"]


def test_beyond_the_speaker_cap_a_new_voice_joins_the_most_similar_speaker():
    alice, bob, carol, dave = voices(4)
    linker = SpeakerLinker(max_speakers=2)
    linker.add(window(0, {"A": alice, "B": bob}))
    linker.add(window(600, {"C": like(bob, carol, 0.4), "D": like(alice, dave, 0.3)}))

    turns = linker.finish()
    assert {label for *_, label in turns} == {"SPEAKER_00", "SPEAKER_01"}
    assert speaker_of(turns, 600) == speaker_of(turns, 5)  # carol-ish: nearest is bob
    assert speaker_of(turns, 605) == speaker_of(turns, 0)  # dave-ish: nearest is alice


def test_num_speakers_merges_the_most_similar_speakers_until_that_many_are_left():
    alice, bob, carol, dave = voices(4)
    alike = like(alice, dave, 0.6)  # below the link threshold, so a speaker of its own, but alice's closest
    linker = SpeakerLinker()
    linker.add(window(0, {"A": alice, "B": bob}))
    linker.add(window(600, {"A": alike}))
    linker.add(window(1200, {"C": carol}))

    assert len({label for *_, label in linker.finish()}) == 4
    three = linker.finish(num_speakers=3)
    assert speaker_of(three, 600) == speaker_of(three, 0)
    assert len({speaker_of(three, t) for t in (0, 5, 1200)}) == 3
    assert {label for *_, label in three} == {"SPEAKER_00", "SPEAKER_01", "SPEAKER_02"}
    assert {label for *_, label in linker.finish(num_speakers=1)} == {"SPEAKER_00"}


def test_the_assignment_finds_the_best_one_to_one_pairing():
    # greedy (largest first) would pair row 0 with column 0 and leave row 1 with 0.3
    assert best_assignment(np.array([[0.9, 0.8], [0.85, 0.3]])) == [(0, 1), (1, 0)]
    rng = np.random.default_rng(1)
    for rows, cols in itertools.product(range(1, 6), range(1, 6)):
        score = rng.uniform(-1, 1, size=(rows, cols))
        pairs = best_assignment(score)
        assert len(pairs) == min(rows, cols)
        assert len({r for r, _ in pairs}) == len({c for _, c in pairs}) == len(pairs)
        if rows <= cols:
            best = max(sum(score[r, c] for r, c in enumerate(p)) for p in itertools.permutations(range(cols), rows))
        else:
            best = max(sum(score[r, c] for c, r in enumerate(p)) for p in itertools.permutations(range(rows), cols))
        assert sum(score[r, c] for r, c in pairs) == pytest.approx(best)


def voice(seed: int, noise: float = 0.0, base: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = np.random.default_rng(base).normal(size=DIM) if base is not None else rng.normal(size=DIM)
    return (v + noise * rng.normal(size=DIM)).astype(np.float32)


def test_known_voices_name_the_most_similar_speakers_one_to_one_above_the_threshold():
    speakers = {"SPEAKER_00": voice(0), "SPEAKER_01": voice(1), "SPEAKER_02": voice(2)}
    alice, bob = voice(10, 0.5, base=1), voice(11, 0.5, base=0)  # noisy copies of speakers 01 and 00
    matches = name_speakers(speakers, [("Alice", alice), ("Bob", bob), ("Carol", voice(3))], threshold=0.6)
    assert {label: (m.name, m.reference) for label, m in matches.items()} == {
        "SPEAKER_01": ("Alice", 0), "SPEAKER_00": ("Bob", 1)}  # fmt: skip
    assert all(0.6 <= m.similarity < 1 for m in matches.values()), "Carol, a voice nobody has, names nobody"
    # two references of one voice: only one of them can name it, the other stays unused
    twice = name_speakers(speakers, [("Alice", alice), ("Alicia", voice(12, 0.5, base=1))], threshold=0.6)
    assert list(twice) == ["SPEAKER_01"]
    assert name_speakers(speakers, [("Alice", alice)], threshold=0.99) == {}, "below the threshold: anonymous"
    assert name_speakers({}, [("Alice", alice)], threshold=0.6) == name_speakers(speakers, [], 0.6) == {}


def test_the_linkers_speakers_come_with_one_centroid_each():
    a, b = voice(0), voice(1)
    linker = SpeakerLinker(threshold=0.6)
    linker.add(WindowSpeakers([(0.0, 5.0, "x"), (5.0, 8.0, "y")], {"x": a, "y": b}, {"x": 5.0, "y": 3.0}))
    linker.add(WindowSpeakers([(60.0, 64.0, "p")], {"p": voice(5, 0.3, base=1)}, {"p": 4.0}))
    turns, _, centroids = linker.speakers()
    assert turns == linker.finish() and sorted(centroids) == ["SPEAKER_00", "SPEAKER_01"]
    assert all(abs(np.linalg.norm(c) - 1) < 1e-5 for c in centroids.values())
    assert float(centroids["SPEAKER_00"] @ (a / np.linalg.norm(a))) > 0.99


def test_overlapping_turns_carry_the_same_labels_as_the_exclusive_ones():
    a, b, c = voices(3)
    linker = SpeakerLinker(threshold=0.6)
    # window 1: x talks 0-6 s, y starts over x at 5 s; window 2: x again, and q heard only under x
    linker.add(WindowSpeakers([(0.0, 5.0, "x"), (5.0, 9.0, "y")], {"x": a, "y": b}, {"x": 5.0, "y": 4.0},
                              overlapping=[(0.0, 6.0, "x"), (5.0, 9.0, "y")]))  # fmt: skip
    linker.add(WindowSpeakers([(60.0, 64.0, "p")], {"p": a, "q": c}, {"p": 4.0},
                              overlapping=[(60.0, 64.0, "p"), (61.0, 62.0, "q")]))  # fmt: skip
    found = linker.speakers()
    assert found.turns == [(0.0, 5.0, "SPEAKER_00"), (5.0, 9.0, "SPEAKER_01"), (60.0, 64.0, "SPEAKER_00")]
    # q never speaks alone: no speaker of its own (it could be a stray copy of x), so its overlap is not reported
    assert found.overlapping == [(0.0, 6.0, "SPEAKER_00"), (5.0, 9.0, "SPEAKER_01"), (60.0, 64.0, "SPEAKER_00")]
    assert sorted(found.centroids) == ["SPEAKER_00", "SPEAKER_01"]


def test_a_speaker_pyannote_could_not_embed_never_becomes_one():
    """Where pyannote counts more voices than it has clusters it adds a label with a zero embedding."""
    a, b = voices(2)
    linker = SpeakerLinker(threshold=0.6)
    linker.add(WindowSpeakers([(0.0, 5.0, "x"), (5.0, 9.0, "y")], {"x": a, "y": b}, {"x": 5.0, "y": 4.0}))
    phantom = np.zeros(DIM, np.float32)
    linker.add(WindowSpeakers([(60.0, 64.0, "p"), (64.0, 66.0, "z")], {"p": a, "z": phantom}, {"p": 4.0, "z": 2.0},
                              overlapping=[(60.0, 64.0, "p"), (62.0, 66.0, "z")]))  # fmt: skip
    found = linker.speakers(num_speakers=2)
    # x and y stay two people (a zero vector would have been a third speaker, and the merge to two had joined them)
    assert found.turns == [(0.0, 5.0, "SPEAKER_00"), (5.0, 9.0, "SPEAKER_01"), (60.0, 64.0, "SPEAKER_00")]
    assert found.overlapping == found.turns
    assert all(np.isfinite(c).all() for c in found.centroids.values())


def test_two_local_speakers_merged_into_one_report_one_set_of_turns():
    a, b = voices(2)
    linker = SpeakerLinker(threshold=0.6)
    linker.add(WindowSpeakers([(0.0, 5.0, "x"), (5.0, 9.0, "y")], {"x": a, "y": like(a, b, 0.8)},
                              {"x": 5.0, "y": 4.0}, overlapping=[(0.0, 6.0, "x"), (4.5, 9.0, "y")]))  # fmt: skip
    found = linker.speakers(num_speakers=1)
    assert found.turns == [(0.0, 5.0, "SPEAKER_00"), (5.0, 9.0, "SPEAKER_00")]
    assert found.overlapping == [(0.0, 9.0, "SPEAKER_00")], "one person cannot overlap themself"


def test_a_checkpoint_from_before_overlapping_turns_replays_its_exclusive_ones():
    a = voices(1)[0]
    saved = WindowSpeakers([(0.0, 5.0, "x")], {"x": a}, {"x": 5.0}).to_json()
    assert saved["overlapping"] == saved["turns"]
    del saved["overlapping"]
    old = WindowSpeakers.from_json(saved)
    assert old.spoken == [(0.0, 5.0, "x")]
    both = WindowSpeakers([(0.0, 5.0, "x")], {"x": a}, {"x": 5.0}, overlapping=[(0.0, 6.0, "x")])
    assert WindowSpeakers.from_json(both.to_json()).spoken == [(0.0, 6.0, "x")]
