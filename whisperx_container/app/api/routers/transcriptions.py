"""POST /v1/audio/transcriptions (OpenAI-compatible) and POST /v1/audio/transcribe-with-speakers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response
from faster_whisper.tokenizer import _LANGUAGE_CODES

from app.api.errors import bad_request
from app.api.formats import RESPONSE_FORMATS, diarized_transcript, render
from app.api.schemas import DiarizedTranscript, Transcription, TranscriptionDiarized, TranscriptionVerbose
from app.api.service import Service, get_service
from app.inference.pipeline import Options

router = APIRouter(prefix="/v1/audio")
GRANULARITIES = {"segment", "word"}
MAX_SPEAKERS_PARAM = 64
TEXT = {"schema": {"type": "string"}}
TRANSCRIPTION_RESPONSES = {
    200: {
        "description": "the transcript: json, verbose_json or diarized_json; text, srt or vtt as plain text",
        "model": Transcription | TranscriptionVerbose | TranscriptionDiarized,
        "content": {"text/plain": TEXT, "application/x-subrip": TEXT, "text/vtt": TEXT},
    }
}


def language_option(value: str | None, service: Service) -> str | None:
    if not value:
        return None
    language = value.strip().lower()
    if language not in _LANGUAGE_CODES:
        raise bad_request(f"unsupported language {value!r}: use an ISO-639-1 code such as 'en'", "unsupported_language")
    if service.settings.whisper_model.endswith(".en") and language != "en":
        model = service.settings.whisper_model
        raise bad_request(f"the model {model} transcribes English only", "unsupported_language")
    return language


def speakers_options(num: int | None, low: int | None, high: int | None) -> None:
    for name, value in (("num_speakers", num), ("min_speakers", low), ("max_speakers", high)):
        if value is not None and not 1 <= value <= MAX_SPEAKERS_PARAM:
            raise bad_request(f"{name} must be between 1 and {MAX_SPEAKERS_PARAM}, got {value}")
    if low is not None and high is not None and low > high:
        raise bad_request(f"min_speakers ({low}) is greater than max_speakers ({high})")


@router.post("/transcriptions", response_class=Response, responses=TRANSCRIPTION_RESPONSES)
async def transcriptions(
    request: Request,
    file: Annotated[UploadFile, File(description="audio in any format ffmpeg reads")],
    service: Annotated[Service, Depends(get_service)],
    model: Annotated[str | None, Form(description="accepted for compatibility; the service runs one model")] = None,
    language: Annotated[str | None, Form()] = None,
    prompt: Annotated[str | None, Form()] = None,
    temperature: Annotated[float, Form(ge=0.0, le=1.0)] = 0.0,
    response_format: Annotated[str, Form()] = "json",
    timestamp_granularities: Annotated[list[str] | None, Form(alias="timestamp_granularities[]")] = None,
    stream: Annotated[bool, Form()] = False,
) -> Response:
    if response_format not in RESPONSE_FORMATS:
        raise bad_request(f"unsupported response_format {response_format!r}: use one of {', '.join(RESPONSE_FORMATS)}")
    granularities = set(timestamp_granularities or [])
    if unknown := granularities - GRANULARITIES:
        raise bad_request(f"unsupported timestamp_granularities {sorted(unknown)}: use segment and/or word")
    if granularities and response_format != "verbose_json":
        raise bad_request("timestamp_granularities[] needs response_format=verbose_json")
    if stream:
        raise bad_request("streaming is not supported", "unsupported_parameter")
    options = Options(
        language=language_option(language, service),
        prompt=prompt,
        temperature=temperature,
        diarize=response_format == "diarized_json",
    )
    transcript, _ = await service.transcribe(request, file, options)
    return render(transcript, response_format, granularities, temperature)


@router.post("/transcribe-with-speakers", response_model=DiarizedTranscript)
async def transcribe_with_speakers(
    request: Request,
    file: Annotated[UploadFile, File(description="audio in any format ffmpeg reads")],
    service: Annotated[Service, Depends(get_service)],
    language: Annotated[str | None, Form()] = None,
    num_speakers: Annotated[int | None, Form()] = None,
    min_speakers: Annotated[int | None, Form()] = None,
    max_speakers: Annotated[int | None, Form()] = None,
    prompt: Annotated[str | None, Form()] = None,
) -> DiarizedTranscript:
    speakers_options(num_speakers, min_speakers, max_speakers)
    options = Options(
        language=language_option(language, service),
        prompt=prompt,
        diarize=True,
        num_speakers=num_speakers,
        min_speakers=min_speakers,
        max_speakers=max_speakers,
    )
    transcript, timings = await service.transcribe(request, file, options)
    return diarized_transcript(transcript, timings)
