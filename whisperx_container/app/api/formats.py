"""The transcript in each response_format of OpenAI's audio API, plus the diarized transcript.

Each renderer takes the pipeline's `Transcript`; the JSON bodies are the response schemas of
app/api/schemas.py, dumped to plain data and sent with JSONResponse.
"""

from __future__ import annotations

import re
from pathlib import PurePath

from fastapi.responses import JSONResponse, PlainTextResponse, Response

from app.api.schemas import (
    DiarizedTranscript,
    DurationUsage,
    Timings,
    Transcription,
    TranscriptionDiarized,
    TranscriptionDiarizedSegment,
    TranscriptionSegment,
    TranscriptionVerbose,
    TranscriptionWord,
)
from app.inference.transcript import Segment, Transcript

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json", "diarized_json")
JOB_FORMATS = (*RESPONSE_FORMATS, "rttm")  # a job's result also as the diarizer's turns in NIST RTTM


def _stamp(seconds: float, sep: str) -> str:
    ms = round(max(seconds, 0.0) * 1000)
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _cue_text(seg: Segment) -> str:
    return f"[{seg.speaker}] {seg.text}" if seg.speaker else seg.text


def srt(transcript: Transcript) -> str:
    cues = [
        f"{i}\n{_stamp(seg.start, ',')} --> {_stamp(seg.end, ',')}\n{_cue_text(seg)}\n"
        for i, seg in enumerate(transcript.segments, 1)
    ]
    return "\n".join(cues)


def vtt(transcript: Transcript) -> str:
    cues = [
        f"{_stamp(seg.start, '.')} --> {_stamp(seg.end, '.')}\n"
        + (f"<v {seg.speaker}>{seg.text}" if seg.speaker else seg.text)
        + "\n"
        for seg in transcript.segments
    ]
    return "WEBVTT\n\n" + "\n".join(cues)


def json_body(transcript: Transcript) -> dict:
    return Transcription(text=transcript.text, usage=DurationUsage(seconds=transcript.duration)).model_dump()


def verbose_json(transcript: Transcript, granularities: set[str], temperature: float) -> dict:
    segments = words = None
    if "segment" in granularities or not granularities:
        segments = [
            TranscriptionSegment(
                id=seg.id,
                start=seg.start,
                end=seg.end,
                text=seg.text,
                temperature=temperature,
                avg_logprob=seg.avg_logprob or 0.0,
            )
            for seg in transcript.segments
        ]
    if "word" in granularities:
        words = [TranscriptionWord(word=w.word, start=w.start, end=w.end) for s in transcript.segments for w in s.words]
    body = TranscriptionVerbose(
        language=transcript.language,
        duration=transcript.duration,
        text=transcript.text,
        segments=segments,
        words=words,
        usage=DurationUsage(seconds=transcript.duration),
    )
    return body.model_dump(exclude_none=True)  # segments and words are left out unless asked for


def diarized_transcript(transcript: Transcript, timings: Timings) -> DiarizedTranscript:
    """The contract's transcribe-with-speakers body."""
    return DiarizedTranscript(**dict(transcript), timings=timings)


def diarized_json(transcript: Transcript) -> dict:
    """OpenAI's diarized_json exactly: string segment ids, a known speaker's name or else A, B, ... in the order
    the anonymous speakers first speak, the duration as usage."""
    names = {speaker.id for speaker in transcript.speakers if speaker.name}
    letters: dict[str, str] = {}
    for seg in transcript.segments:
        if seg.speaker and seg.speaker not in names and seg.speaker not in letters:
            letters[seg.speaker] = letter(len(letters))
    letters |= {name: name for name in names}
    segments = [
        TranscriptionDiarizedSegment(
            id=f"seg_{seg.id}", start=seg.start, end=seg.end, text=seg.text, speaker=letters.get(seg.speaker or "", "A")
        )
        for seg in transcript.segments
    ]
    body = TranscriptionDiarized(
        text=transcript.text, duration=transcript.duration, segments=segments,
        usage=DurationUsage(seconds=transcript.duration),
    )  # fmt: skip
    return body.model_dump()


def letter(index: int) -> str:
    """A, B, ... Z, AA, AB, ...: OpenAI's anonymous speaker labels."""
    label = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        label = chr(ord("A") + rest) + label
    return label


def text(transcript: Transcript) -> str:
    """The text; diarized (a job's result), one paragraph per speaker turn, each led by its speaker."""
    if not any(seg.speaker for seg in transcript.segments):
        return transcript.text + "\n"
    turns: list[tuple[str | None, list[str]]] = []
    for seg in transcript.segments:
        if turns and turns[-1][0] == seg.speaker:
            turns[-1][1].append(seg.text.strip())
        else:
            turns.append((seg.speaker, [seg.text.strip()]))
    return "\n\n".join(f"{speaker}: {' '.join(said)}" for speaker, said in turns) + "\n"


def rttm(transcript: Transcript, uri: str) -> str:
    """The speaker turns as NIST RTTM (`SPEAKER <uri> 1 <start> <duration> <NA> <NA> <speaker> <NA> <NA>`); the
    file name's stem is the URI, and whitespace in it or in a speaker's name becomes `_` (RTTM's field separator)."""
    return "".join(
        f"SPEAKER {_field(uri)} 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> {_field(t.speaker)} <NA> <NA>\n"
        for t in transcript.turns
    )


def _field(text: str) -> str:
    return re.sub(r"\s+", "_", text.strip()) or "_"


def uri_of(filename: str | None) -> str:
    return PurePath(filename or "audio").stem or "audio"


def render(
    transcript: Transcript, response_format: str, granularities: set[str], temperature: float, uri: str = "audio"
) -> Response:
    if response_format == "rttm":
        return PlainTextResponse(rttm(transcript, uri))
    if response_format == "text":
        return PlainTextResponse(text(transcript))
    if response_format == "srt":
        return PlainTextResponse(srt(transcript), media_type="application/x-subrip")
    if response_format == "vtt":
        return PlainTextResponse(vtt(transcript), media_type="text/vtt")
    if response_format == "verbose_json":
        return JSONResponse(verbose_json(transcript, granularities, temperature))
    if response_format == "diarized_json":
        return JSONResponse(diarized_json(transcript))
    return JSONResponse(json_body(transcript))
