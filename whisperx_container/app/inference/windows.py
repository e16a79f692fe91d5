"""Long recordings in windows: where the windows are cut, and how their speakers become one set.

Windows of WHISPERX_WINDOW_S are cut at the quietest 100 ms near each nominal boundary, so a word is
rarely split. Each window is diarized on its own (`diarize.py`); `SpeakerLinker` maps every window's
local speakers onto the recording's global speakers by their centroid embeddings. The state carried
from window to window is one centroid per speaker and the list of turns: memory is bounded by the
window, not the recording. numpy and scipy only, so the unit tests run without the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from app.inference.audio import PcmAudio

BOUNDARY_SEARCH_S = 10.0  # windows end at the quietest 100 ms within this distance of the nominal cut
FRAME_S = 0.1
SINGLE_WINDOW_SLACK = 1.25  # a recording up to 1.25 windows long is diarized in one piece


def cut_windows(audio: PcmAudio, window_s: float, search_s: float = BOUNDARY_SEARCH_S) -> list[tuple[float, float]]:
    """(start, end) seconds of each window: contiguous, covering the recording."""
    cuts, start = [], 0.0
    while audio.duration - start > window_s * SINGLE_WINDOW_SLACK:
        nominal = start + window_s
        rms = audio.rms_frames(nominal - search_s, nominal + search_s, FRAME_S)
        cut = nominal - search_s + FRAME_S * (int(np.argmin(rms)) + 0.5) if len(rms) else nominal
        cuts.append((start, cut))
        start = cut
    cuts.append((start, audio.duration))
    return cuts


@dataclass
class WindowSpeakers:
    """One window's diarization in absolute seconds with window-local labels, and centroids.

    `turns` has one speaker at a time (what words are given to); `overlapping` is every speaker the
    diarizer heard, two at once where they overlap (what the transcript's `turns` report). Without it
    (a checkpoint written before it existed) the exclusive turns stand in.
    """

    turns: list[tuple[float, float, str]]
    centroids: dict[str, np.ndarray]
    durations: dict[str, float]
    overlapping: list[tuple[float, float, str]] | None = None

    @property
    def spoken(self) -> list[tuple[float, float, str]]:
        return self.turns if self.overlapping is None else self.overlapping

    def to_json(self) -> dict:
        """Plain JSON (a job's checkpoint); float32 centroids survive the round trip exactly."""
        return {
            "turns": [[start, end, label] for start, end, label in self.turns],
            "overlapping": [[start, end, label] for start, end, label in self.spoken],
            "centroids": {label: c.astype(np.float32).tolist() for label, c in self.centroids.items()},
            "durations": self.durations,
        }

    @classmethod
    def from_json(cls, data: dict) -> WindowSpeakers:
        return cls(
            turns=[(float(s), float(e), str(label)) for s, e, label in data["turns"]],
            centroids={label: np.asarray(c, dtype=np.float32) for label, c in data["centroids"].items()},
            durations={label: float(d) for label, d in data["durations"].items()},
            overlapping=[(float(s), float(e), str(label)) for s, e, label in data.get("overlapping", data["turns"])],
        )


class Speakers(NamedTuple):
    """A recording's speakers: exclusive turns (for words), overlapping turns (as heard), centroids by label."""

    turns: list[tuple[float, float, str]]
    overlapping: list[tuple[float, float, str]]
    centroids: dict[str, np.ndarray]


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    return v / n if n > 0 and np.isfinite(n) else v


def _usable(centroid: np.ndarray | None) -> bool:
    """A centroid that can be compared: pyannote gives an extra speaker it could not embed zeros."""
    return centroid is not None and bool(np.all(np.isfinite(centroid))) and float(np.linalg.norm(centroid)) > 0


def _union(turns: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Each label's turns with overlapping or touching ones merged (two local speakers may end as one)."""
    out: list[tuple[float, float, str]] = []
    last: dict[str, int] = {}
    for start, end, label in sorted(turns, key=lambda t: (t[0], t[1])):
        i = last.get(label)
        if i is not None and start <= out[i][1]:
            out[i] = (out[i][0], max(out[i][1], end), label)
            continue
        last[label] = len(out)
        out.append((start, end, label))
    return sorted(out)


def best_assignment(score: np.ndarray) -> list[tuple[int, int]]:
    """Rows matched one-to-one to columns (min(rows, cols) pairs) with the largest total score."""
    rows, cols = linear_sum_assignment(score, maximize=True)
    return sorted(zip(rows.tolist(), cols.tolist(), strict=True))


@dataclass
class SpeakerLinker:
    """Global speakers across windows: each window's local speakers join the most similar global one.

    Two local speakers of one window never share a global speaker (a one-to-one assignment that
    maximises the total cosine similarity); a local speaker below `threshold` similarity to the global
    speaker it was assigned starts a new speaker, up to `max_speakers`, beyond which it joins the
    nearest. State is one centroid per speaker.
    """

    threshold: float = 0.65  # cosine; window centroids: same speaker > 0.9, espeak pair ~0.58, real ~0.45
    max_speakers: int = 8
    centroids: list[np.ndarray] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    turns: list[tuple[float, float, int]] = field(default_factory=list)
    overlapping: list[tuple[float, float, int]] = field(default_factory=list)

    def add(self, window: WindowSpeakers) -> None:
        alone = {label for *_, label in window.turns}  # a speaker only ever heard under another one is not linked
        local = [label for label in window.durations if label in alone and _usable(window.centroids.get(label))]
        local.sort(key=lambda label: -window.durations[label])
        mapping: dict[str, int] = {}
        if self.centroids and local:
            sim = np.array([[float(_unit(window.centroids[lb]) @ _unit(c)) for c in self.centroids] for lb in local])
            for r, c in best_assignment(sim):
                if sim[r, c] >= self.threshold:
                    mapping[local[r]] = c
        for label in local:
            if label in mapping:
                continue
            if len(self.centroids) < self.max_speakers:
                self.centroids.append(np.zeros_like(window.centroids[label]))
                self.weights.append(0.0)
                mapping[label] = len(self.centroids) - 1
            else:
                sims = [float(_unit(window.centroids[label]) @ _unit(c)) for c in self.centroids]
                mapping[label] = int(np.argmax(sims))
        for label, g in mapping.items():
            w = window.durations[label]
            total = self.weights[g] + w
            self.centroids[g] = (self.centroids[g] * self.weights[g] + _unit(window.centroids[label]) * w) / total
            self.weights[g] = total
        for start, end, label in window.turns:
            if label in mapping:
                self.turns.append((start, end, mapping[label]))
        for start, end, label in window.spoken:
            if label in mapping:
                self.overlapping.append((start, end, mapping[label]))

    def finish(self, num_speakers: int | None = None) -> list[tuple[float, float, str]]:
        """The turns with final labels SPEAKER_00.. in order of first appearance.

        With num_speakers, the two most similar speakers are merged until that many are left.
        """
        return self.speakers(num_speakers).turns

    def speakers(self, num_speakers: int | None = None) -> Speakers:
        """`finish`'s turns, the overlapping turns labelled alike, and each final speaker's centroid (unit length,
        weighted by speech)."""
        merged = list(range(len(self.centroids)))
        if num_speakers is not None:
            groups = {g: [g] for g in merged}
            cents = {g: _unit(c) for g, c in enumerate(self.centroids)}
            while len(groups) > num_speakers:
                keys = list(groups)
                best = max(
                    ((a, b) for i, a in enumerate(keys) for b in keys[i + 1 :]),
                    key=lambda ab: float(cents[ab[0]] @ cents[ab[1]]),
                )
                a, b = best
                groups[a] += groups.pop(b)
                cents[a] = _unit(cents[a] + cents.pop(b))
            for root, members in groups.items():
                for m in members:
                    merged[m] = root
        names: dict[int, str] = {}
        for *_, g in sorted(self.turns):
            names.setdefault(merged[g], f"SPEAKER_{len(names):02d}")
        out = [(start, end, names[merged[g]]) for start, end, g in sorted(self.turns)]
        heard = [(start, end, names[merged[g]]) for start, end, g in self.overlapping if merged[g] in names]
        overlapping = _union(heard)
        centroids: dict[str, np.ndarray] = {}
        for g, root in enumerate(merged):
            if root in names:
                label = names[root]
                centroids[label] = centroids.get(label, 0) + self.centroids[g] * self.weights[g]
        return Speakers(out, overlapping, {label: _unit(c) for label, c in centroids.items()})


@dataclass
class Match:
    """A speaker named after a known voice: the reference's index and the cosine similarity."""

    name: str
    reference: int
    similarity: float


def name_speakers(centroids: dict[str, np.ndarray], references: list[tuple[str, np.ndarray]],
                  threshold: float) -> dict[str, Match]:  # fmt: skip
    """Known voices onto speakers, one to one: the assignment with the largest total cosine similarity,
    keeping the pairs at or above `threshold`; a speaker without one keeps its anonymous label."""
    labels = list(centroids)
    if not labels or not references:
        return {}
    sim = np.array([[float(_unit(centroids[label]) @ _unit(vector)) for _, vector in references] for label in labels])
    return {
        labels[r]: Match(references[c][0], c, round(float(sim[r, c]), 4))
        for r, c in best_assignment(sim)
        if sim[r, c] >= threshold
    }
