"""Helpers that score a transcript the way a reader would: which words came back, who said them."""

from __future__ import annotations

import itertools
import re


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def reference_turns_from_rttm(path) -> list[tuple[float, float, str]]:
    turns = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "SPEAKER":
            start, duration = float(parts[3]), float(parts[4])
            turns.append((start, start + duration, parts[7]))
    return turns


def speaker_at(turns: list[tuple[float, float, str]], t: float) -> str | None:
    """The reference speaker talking at t, or the nearest turn's speaker in a pause."""
    inside = [s for start, end, s in turns if start <= t <= end]
    if inside:
        return inside[0]
    return min(turns, key=lambda turn: min(abs(turn[0] - t), abs(turn[1] - t)))[2]


def word_speaker_accuracy(segments: list[dict], turns: list[tuple[float, float, str]]) -> float:
    """Fraction of timed words whose speaker matches the reference, under the best label mapping."""
    pairs = [
        (w["speaker"], speaker_at(turns, (w["start"] + w["end"]) / 2))
        for seg in segments
        for w in seg["words"]
        if w.get("speaker")
    ]
    if not pairs:
        return 0.0
    hyp_labels = sorted({h for h, _ in pairs})
    ref_labels = sorted({r for _, r in pairs})
    best = 0
    for perm in itertools.permutations(ref_labels + [None] * len(hyp_labels), len(hyp_labels)):
        mapping = dict(zip(hyp_labels, perm, strict=True))
        best = max(best, sum(mapping[h] == r for h, r in pairs))
    return best / len(pairs)
