"""A finished job's speakers: a reference clip of each one's clearest speech, and renaming one.

At completion, while the decoded recording is still on disk, each speaker's clearest speech is cut out:
its segments that no other speaker's segment overlaps, best mean word probability first, joined up to
MAX_S seconds (at least MIN_S, or the speaker gets no clip), as a 16 kHz mono WAV in
`<id>/speakers/NN.wav`. A caller (spark-control's voice library) makes a known speaker of it with
GET /v1/audio/jobs/{id}/speakers/{label}/clip. Renaming a speaker relabels it in the stored transcript,
so every format the result renders in (json, diarized_json, srt, vtt, text) says the new name.
"""

from __future__ import annotations

import io
import wave

import numpy as np

from app.api.errors import APIError, bad_request
from app.inference.audio import SAMPLE_RATE, PcmAudio
from app.inference.transcript import Transcript

MIN_S, MAX_S = 2.0, 10.0  # what a known speaker's reference may be (app/api/voices.py)
PIECE_MIN_S = 0.5  # shorter stretches are mostly a word clipped at both ends
JOIN_S = 0.2  # silence between two joined stretches
NAME_MAX = 64


def clearest(transcript: Transcript, label: str) -> list[tuple[float, float]]:
    """The stretches (start, end) of `label`'s clearest solo speech, MIN_S-MAX_S s in all, in time order;
    [] when the speaker has less than MIN_S s that no one else talks over."""
    others = [(s.start, s.end) for s in transcript.segments if s.speaker != label]
    candidates = []
    for seg in transcript.segments:
        if seg.speaker != label:
            continue
        start, end = (seg.words[0].start, seg.words[-1].end) if seg.words else (seg.start, seg.end)
        if end - start < PIECE_MIN_S or any(min(end, e) > max(start, s) for s, e in others):
            continue
        probabilities = [w.probability for w in seg.words if w.probability is not None]
        score = sum(probabilities) / len(probabilities) if probabilities else 0.0
        candidates.append((-score, -(end - start), start, end))
    picked, total = [], 0.0
    for _, _, start, end in sorted(candidates):
        take = min(end - start, MAX_S - total - (JOIN_S if picked else 0.0))
        if take < PIECE_MIN_S:
            break
        picked.append((start, start + take))
        total += take + (JOIN_S if len(picked) > 1 else 0.0)
    return sorted(picked) if total >= MIN_S else []


def clips(transcript: Transcript, audio: PcmAudio) -> dict[str, bytes]:
    """Each speaker's clearest speech as WAV bytes (speakers without enough of it are left out)."""
    out = {}
    for speaker in transcript.speakers:
        spans = clearest(transcript, speaker.id)
        if not spans:
            continue
        gap = np.zeros(int(JOIN_S * SAMPLE_RATE), np.float32)
        pieces = [piece for start, end in spans for piece in (gap, audio.read(start, end))][1:]
        out[speaker.id] = wav(np.concatenate(pieces))
    return out


def wav(samples: np.ndarray) -> bytes:
    pcm = (np.clip(samples, -1.0, 32767 / 32768) * 32768).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def rename(result: dict, label: str, name: str) -> tuple[dict, dict]:
    """`result` (a job's result.json) with speaker `label` called `name` everywhere, and that speaker."""
    transcript = Transcript.model_validate(result["transcript"])
    name = name.strip()
    speaker = next((s for s in transcript.speakers if s.id == label), None)
    if speaker is None:
        ids = ", ".join(s.id for s in transcript.speakers) or "none"
        raise APIError(404, f"the transcript has no speaker {label!r} (its speakers: {ids})", code="unknown_speaker")
    if not name or len(name) > NAME_MAX or any(ord(c) < 32 for c in name):
        raise bad_request(f"a speaker's name is 1-{NAME_MAX} printable characters", "invalid_name")
    if name != label and any(s.id == name for s in transcript.speakers):
        raise APIError(409, f"another speaker of this transcript is already called {name!r}", code="name_taken")
    for seg in transcript.segments:
        if seg.speaker == label:
            seg.speaker = name
        for word in seg.words:
            if word.speaker == label:
                word.speaker = name
    for turn in transcript.turns:
        if turn.speaker == label:
            turn.speaker = name
    if speaker.match is not None and speaker.name != name:
        speaker.match = None  # the reference it matched was someone else's name
    speaker.id = speaker.name = name
    saved = dict(result, transcript=transcript.model_dump(mode="json"))
    kept = dict(result.get("clips", {}))
    if label in kept:
        kept[name] = kept.pop(label)
    saved["clips"] = kept
    return saved, speaker.model_dump(mode="json")
