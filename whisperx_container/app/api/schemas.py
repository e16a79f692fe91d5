"""Response schemas, so /docs shows the contract."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class QueueStatus(BaseModel):
    running: int
    waiting: int
    limit: int


class Health(BaseModel):
    status: Literal["loading", "ready", "error"]
    whisper_loaded: bool
    diarizer_loaded: bool
    aligner: Literal["wav2vec2", "whisper"] | None
    model: str
    device: Literal["cuda", "cpu"]
    compute_type: str
    queue: QueueStatus
    version: str
    error: str | None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "whisperx"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Word(BaseModel):
    word: str
    start: float
    end: float
    probability: float | None = None
    speaker: str | None = None


class DiarizedSegment(BaseModel):
    id: int
    type: Literal["transcript.text.segment"] = "transcript.text.segment"
    start: float
    end: float
    speaker: str
    text: str
    words: list[Word]


class Speaker(BaseModel):
    id: str
    duration: float


class Timings(BaseModel):
    decode_s: float
    vad_s: float
    transcribe_s: float
    align_s: float
    diarize_s: float
    total_s: float


class DiarizedTranscript(BaseModel):
    task: Literal["transcribe"] = "transcribe"
    text: str
    language: str
    duration: float
    segments: list[DiarizedSegment]
    speakers: list[Speaker]
    backend: Literal["whisperx"] = "whisperx"
    model: str
    timings: Timings
