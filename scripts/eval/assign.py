"""Word-to-speaker assignment near turn boundaries: rules compared on the same words and the same turns.

`make eval` transcribes each recording once more without diarization (`/v1/audio/transcriptions`, Whisper's
segments and word times) and gives those words speakers from the service's reported turns by each rule; the
words given to the right speaker then differ by the rule alone, not by the diarization or the recognition.
"""

from __future__ import annotations

Turn = tuple[float, float, str]


def speaker_of(start: float, end: float, turns: list[Turn]) -> str | None:
    """The speaker whose turns overlap [start, end] most; with none overlapping, the nearest turn's (whisperX's
    assign_word_speakers with fill_nearest, which the service runs)."""
    overlap: dict[str, float] = {}
    for s, e, who in turns:
        if (o := min(end, e) - max(start, s)) > 0:
            overlap[who] = overlap.get(who, 0.0) + o
    if overlap:
        return max(overlap, key=overlap.__getitem__)
    return min(turns, key=lambda t: max(t[0] - end, start - t[1]))[2] if turns else None


def within(segment: dict, words: list[dict]) -> list[dict]:
    return [w for w in words if segment["start"] <= (w["start"] + w["end"]) / 2 < segment["end"]]


def by_segment(segments: list[dict], words: list[dict], turns: list[Turn]) -> list[dict]:
    """Each Whisper segment to one speaker, every word in it with it (whisperX without word times)."""
    return [{"speaker": speaker_of(s["start"], s["end"], turns),
             "words": [dict(w) for w in within(s, words)]} for s in segments]  # fmt: skip


def by_word(segments: list[dict], words: list[dict], turns: list[Turn]) -> list[dict]:
    """Each word to the speaker its own time overlaps most (the service's rule)."""
    return [{"speaker": None, "words": [dict(w, speaker=speaker_of(w["start"], w["end"], turns))
                                        for w in within(s, words)]} for s in segments]  # fmt: skip


RULES = {"segment": by_segment, "word": by_word}
