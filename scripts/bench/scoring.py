"""How a transcript is scored against a reference: words, who said them, WER and DER.

One definition of each, used by the service tests (tests/service) and the benchmark
(scripts/bench_service.py). Reference speaker turns come from NIST RTTM files; speaker labels are
matched to reference speakers one-to-one, by the mapping that agrees most (every one-to-one mapping
is tried: the label sets here are a handful of speakers).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np

Turns = list[tuple[float, float, str]]  # (start s, end s, speaker)


def words(text: str) -> list[str]:
    """The words of a text, lower-cased, without punctuation."""
    return re.findall(r"[a-z0-9']+", text.lower())


def normalise(text: str) -> str:
    return " ".join(words(text))


def rttm_turns(path: Path) -> Turns:
    """The speaker turns of a NIST RTTM file."""
    turns = []
    for line in Path(path).read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == "SPEAKER":
            start, duration = float(fields[3]), float(fields[4])
            turns.append((start, start + duration, fields[7]))
    return turns


def stm_lines(path: Path) -> list[tuple[float, float, str]]:
    """(start, end, text) of each line of a NIST STM transcript."""
    lines = []
    for line in Path(path).read_text().splitlines():
        fields = line.split()
        if len(fields) > 5:
            lines.append((float(fields[3]), float(fields[4]), " ".join(fields[5:])))
    return lines


def speaker_at(turns: Turns, t: float) -> str:
    """The reference speaker talking at t, or the nearest turn's speaker in a pause."""
    inside = [speaker for start, end, speaker in turns if start <= t <= end]
    if inside:
        return inside[0]
    return min(turns, key=lambda turn: min(abs(turn[0] - t), abs(turn[1] - t)))[2]


def best_mapping(agreement: np.ndarray) -> dict[int, int]:
    """The one-to-one mapping of rows (hypothesis labels) to columns (reference labels) with the most agreement.

    Rows or columns left over stay unmapped. Exhaustive: fine for the few speakers of a test recording.
    """
    rows, cols = agreement.shape
    best, best_score = {}, -1
    if rows <= cols:
        for chosen in itertools.permutations(range(cols), rows):
            score = int(agreement[range(rows), chosen].sum())
            if score > best_score:
                best, best_score = dict(enumerate(chosen)), score
    else:
        for chosen in itertools.permutations(range(rows), cols):
            score = int(agreement[chosen, range(cols)].sum())
            if score > best_score:
                best, best_score = {r: c for c, r in enumerate(chosen)}, score
    return {r: c for r, c in best.items() if agreement[r, c] > 0}


def word_speakers(segments: list[dict], turns: Turns) -> list[tuple[str, str]]:
    """(label the transcript gives, reference speaker) for every timed word, at the word's midpoint."""
    return [
        (w.get("speaker") or seg["speaker"], speaker_at(turns, (w["start"] + w["end"]) / 2))
        for seg in segments
        for w in seg.get("words", [])
        if w.get("speaker") or seg.get("speaker")
    ]


def word_speaker_accuracy(segments: list[dict], turns: Turns) -> float:
    """Fraction of timed words whose speaker matches the reference, under the best one-to-one label mapping."""
    pairs = word_speakers(segments, turns)
    if not pairs:
        return 0.0
    hyp_labels = sorted({h for h, _ in pairs})
    ref_labels = sorted({r for _, r in pairs})
    agreement = np.zeros((len(hyp_labels), len(ref_labels)), np.int64)
    for h, r in pairs:
        agreement[hyp_labels.index(h), ref_labels.index(r)] += 1
    mapping = best_mapping(agreement)
    return sum(mapping.get(hyp_labels.index(h)) == ref_labels.index(r) for h, r in pairs) / len(pairs)


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate after lower-casing and dropping punctuation."""
    import jiwer

    return float(jiwer.wer(normalise(reference), normalise(hypothesis) or "<empty>"))


def _frames(turns: Turns, total_s: float, labels: list[str]) -> np.ndarray:
    m = np.zeros((int(total_s * 100) + 1, len(labels)), bool)
    for start, end, speaker in turns:
        m[int(start * 100) : int(end * 100), labels.index(speaker)] = True
    return m


def der(reference: Turns, hypothesis: Turns, total_s: float) -> float:
    """Frame-level (10 ms) diarization error rate, no collar, overlap scored, best one-to-one speaker mapping."""
    ref_labels = sorted({t[2] for t in reference})
    hyp_labels = sorted({t[2] for t in hypothesis})
    ref = _frames(reference, total_s, ref_labels)
    hyp = _frames(hypothesis, total_s, hyp_labels) if hyp_labels else np.zeros((ref.shape[0], 0), bool)
    mapping = best_mapping(hyp.T.astype(np.int64) @ ref.astype(np.int64)) if hyp_labels else {}
    n_ref, n_hyp = ref.sum(1), hyp.sum(1)
    mapped = np.zeros_like(ref)
    for h, r in mapping.items():
        mapped[:, r] |= hyp[:, h]
    correct = (mapped & ref).sum(1)
    errors = np.maximum(n_ref, n_hyp) - correct
    return float(errors.sum() / max(n_ref.sum(), 1))


def hypothesis_turns(result: dict) -> Turns:
    """The speaker turns a transcript implies: its speaker-labelled segments."""
    return [(s["start"], s["end"], s["speaker"]) for s in result["segments"] if s["end"] > s["start"]]
