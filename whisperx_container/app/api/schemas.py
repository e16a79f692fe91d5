"""Response schemas, so /docs shows the contract.

The transcript's own models (Transcript, Segment, Word, Speaker) are app.inference.transcript's: the
pipeline returns them and the diarized transcript is one of them plus its timings.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.inference.transcript import Transcript


class QueueStatus(BaseModel):
    running: int
    waiting: int
    limit: int


class Health(BaseModel):
    status: Literal["loading", "ready", "error", "unloaded"]
    whisper_loaded: bool
    diarizer_loaded: bool
    aligner: Literal["wav2vec2", "whisper"] | None
    model: str
    device: Literal["cuda", "cpu"] = Field(description="the diarizer's (torch); kept for older callers")
    whisper_device: Literal["cuda", "cpu"] = Field(description="Whisper's (CTranslate2)")
    diarizer_device: Literal["cuda", "cpu"] = Field(description="pyannote's and the aligner's (torch)")
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


class Timings(BaseModel):
    decode_s: float
    vad_s: float
    transcribe_s: float
    align_s: float
    diarize_s: float
    total_s: float


class DiarizedTranscript(Transcript):
    """POST /v1/audio/transcribe-with-speakers: the pipeline's transcript and the seconds each stage took."""

    timings: Timings


# OpenAI's response_format bodies for POST /v1/audio/transcriptions, named as in the openai client's types.


class DurationUsage(BaseModel):
    type: Literal["duration"] = "duration"
    seconds: float


class Transcription(BaseModel):
    """response_format=json"""

    text: str
    usage: DurationUsage


class TranscriptionSegment(BaseModel):
    id: int
    seek: int = 0
    start: float
    end: float
    text: str
    tokens: list[int] = []
    temperature: float
    avg_logprob: float
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0


class TranscriptionWord(BaseModel):
    word: str
    start: float
    end: float


class TranscriptionVerbose(BaseModel):
    """response_format=verbose_json: segments unless only words are asked for, words when asked for."""

    task: Literal["transcribe"] = "transcribe"
    language: str
    duration: float
    text: str
    segments: list[TranscriptionSegment] | None = None
    words: list[TranscriptionWord] | None = None
    usage: DurationUsage


class TranscriptionDiarizedSegment(BaseModel):
    type: Literal["transcript.text.segment"] = "transcript.text.segment"
    id: str
    start: float
    end: float
    speaker: str = Field(description="A, B, ... in the order they first speak, or a known name")
    text: str


class TranscriptionDiarized(BaseModel):
    """response_format=diarized_json, as OpenAI's TranscriptionDiarized: the segments with speakers, no words."""

    task: Literal["transcribe"] = "transcribe"
    text: str
    duration: float
    segments: list[TranscriptionDiarizedSegment]
    usage: DurationUsage


class JobProgress(BaseModel):
    windows_done: int
    windows_total: int
    audio_s_done: float
    fraction: float
    eta_s: int | None


class JobError(BaseModel):
    message: str
    type: str
    code: str


class JobObject(BaseModel):
    """A transcription job (CONTRACT section 1, "Jobs"); times are Unix seconds."""

    id: str
    object: Literal["transcription.job"] = "transcription.job"
    status: Literal["queued", "running", "completed", "failed", "canceled"]
    created_at: int
    started_at: int | None
    finished_at: int | None
    filename: str
    duration: float | None
    response_format: str
    speakers: int | None = Field(None, description="how many speakers the transcript names, once completed")
    progress: JobProgress
    error: JobError | None


class JobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[JobObject]
    has_more: bool
