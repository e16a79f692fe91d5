"""The transcript of one recording: what `SpeechPipeline.run` returns and every response format renders.

Pydantic models (pydantic only: no FastAPI, no torch), so they are the response schemas as well:
serialised as is, plus the stage timings, a `Transcript` is the diarized transcript of CONTRACT
section 1 (`app.api.schemas.DiarizedTranscript`), and app/api/formats.py renders it as json,
verbose_json, diarized_json, text, srt and vtt. Inside the pipeline segments stay the dicts whisperX's
functions take and return; `Transcript.from_segments` is the one place they become this.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Word(BaseModel):
    word: str
    start: float
    end: float
    probability: float | None = None
    speaker: str | None = None


class Segment(BaseModel):
    """One sentence, or the part of one that a single speaker said."""

    id: int
    type: Literal["transcript.text.segment"] = "transcript.text.segment"
    start: float
    end: float
    speaker: str | None = Field(None, description="SPEAKER_NN when diarized (always, in the diarized transcript)")
    text: str
    words: list[Word]
    # verbose_json's; never serialised, since the diarized transcript has no such field
    avg_logprob: float | None = Field(None, exclude=True)


class SpeakerMatch(BaseModel):
    reference: int = Field(description="the index of the known_speaker_references[] entry the voice matched")
    similarity: float = Field(description="cosine similarity of the speaker's voice and the reference's")


class Speaker(BaseModel):
    id: str
    duration: float = Field(description="seconds of speech")
    name: str | None = Field(None, description="the known speaker's name, when a reference matched")
    match: SpeakerMatch | None = None


class Turn(BaseModel):
    """A stretch of one speaker's speech as the diarizer found it; turns overlap where speakers do."""

    start: float
    end: float
    speaker: str


class Transcript(BaseModel):
    task: Literal["transcribe"] = "transcribe"
    text: str
    language: str
    duration: float
    segments: list[Segment]
    speakers: list[Speaker] = Field(description="empty unless diarized")
    turns: list[Turn] = Field(
        default_factory=list, description="the diarizer's speaker turns, the segments' labels; empty unless diarized"
    )
    backend: Literal["whisperx"] = "whisperx"
    model: str

    @classmethod
    def from_segments(
        cls,
        segments: list[dict],
        turns: list[tuple[float, float, str]],
        *,
        language: str,
        duration: float,
        model: str,
        diarized: bool,
        matches: dict | None = None,
    ) -> Transcript:
        """The pipeline's segments (dicts, as whisperX's functions pass them) as the typed result.

        Segments are numbered and their times rounded to the millisecond. Diarized, each segment and each
        word without a speaker of its own gets its segment's (SPEAKER_00 if none), and `speakers` sums the
        turns per label, plus the segments of a label the turns never name. `matches` (label: a
        windows.Match) are the labels that are known speakers' names.
        """
        matches = matches or {}
        out = []
        for i, seg in enumerate(segments):
            speaker = (seg.get("speaker") or "SPEAKER_00") if diarized else None
            words = [Word.model_validate({"speaker": speaker} | word) for word in seg.get("words", [])]
            out.append(
                Segment(
                    id=i,
                    start=round(seg["start"], 3),
                    end=round(seg["end"], 3),
                    speaker=speaker,
                    text=seg["text"],
                    words=words,
                    avg_logprob=seg.get("avg_logprob"),
                )
            )
        seconds: dict[str, float] = {}
        for start, end, label in turns:
            seconds[label] = seconds.get(label, 0.0) + (end - start)
        for seg in out:  # speech the diarization did not cover still names its speaker
            if diarized and seg.speaker not in seconds:
                seconds[seg.speaker] = seg.end - seg.start
        return cls(
            language=language,
            duration=round(duration, 3),
            text=" ".join(seg.text for seg in out).strip(),
            segments=out,
            speakers=[_speaker(label, s, matches.get(label)) for label, s in sorted(seconds.items())],
            turns=[Turn(start=round(a, 3), end=round(b, 3), speaker=label) for a, b, label in sorted(turns) if b > a]
            if diarized
            else [],
            model=model,
        )


def _speaker(label: str, seconds: float, match=None) -> Speaker:
    """A speaker of the transcript; `match` (a windows.Match) when its label is a known speaker's name."""
    if match is None:
        return Speaker(id=label, duration=round(seconds, 3))
    found = SpeakerMatch(reference=match.reference, similarity=match.similarity)
    return Speaker(id=label, duration=round(seconds, 3), name=match.name, match=found)
