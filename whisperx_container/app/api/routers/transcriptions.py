"""POST /v1/audio/transcriptions (OpenAI-compatible) and POST /v1/audio/transcribe-with-speakers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response
from faster_whisper.tokenizer import _LANGUAGE_CODES

from app.api.errors import bad_request
from app.api.formats import RESPONSE_FORMATS, diarized_transcript, render, uri_of
from app.api.params import chunking_strategy as chunking_strategy_option
from app.api.params import include_option, known_fields_only
from app.api.schemas import DiarizedTranscript, Transcription, TranscriptionDiarized, TranscriptionVerbose
from app.api.service import Service, get_service
from app.api.streaming import stream_transcription
from app.api.voices import known_speakers
from app.inference.pipeline import Options

router = APIRouter(prefix="/v1/audio")
STRICT = [Depends(known_fields_only)]  # a form field the endpoint does not declare is a 400 unknown_parameter
CHUNKING = "'auto' (the default), or a server_vad object: threshold, prefix_padding_ms, silence_duration_ms"
KnownNames = Annotated[list[str] | None, Form(alias="known_speaker_names[]", description="names, paired by position")]
KnownReferences = Annotated[
    list[str] | None, Form(alias="known_speaker_references[]", description="data URLs of 2-10 s of each voice")
]
STREAMED = ("json", "text", "diarized_json")  # OpenAI streams these; srt, vtt and verbose_json have no events
HOTWORDS = "faster-whisper's hotwords: words to bias the decoder towards (an extension of OpenAI's API)"
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


@router.post("/transcriptions", response_class=Response, responses=TRANSCRIPTION_RESPONSES, dependencies=STRICT)
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
    chunking_strategy: Annotated[str | None, Form(description=CHUNKING)] = None,
    include: Annotated[list[str] | None, Form(alias="include[]")] = None,
    hotwords: Annotated[str | None, Form(description=HOTWORDS)] = None,
    known_speaker_names: KnownNames = None,
    known_speaker_references: KnownReferences = None,
) -> Response:
    if response_format not in RESPONSE_FORMATS:
        raise bad_request(f"unsupported response_format {response_format!r}: use one of {', '.join(RESPONSE_FORMATS)}")
    granularities = set(timestamp_granularities or [])
    if unknown := granularities - GRANULARITIES:
        raise bad_request(f"unsupported timestamp_granularities {sorted(unknown)}: use segment and/or word")
    if granularities and response_format != "verbose_json":
        raise bad_request("timestamp_granularities[] needs response_format=verbose_json")
    if stream and response_format not in STREAMED:
        raise bad_request(f"stream=true gives transcript events; response_format must be one of {', '.join(STREAMED)}")
    include_option(include)
    if (known_speaker_names or known_speaker_references) and response_format != "diarized_json":
        raise bad_request("known_speaker_names[] and known_speaker_references[] need response_format=diarized_json")
    options = Options(
        language=language_option(language, service),
        prompt=prompt,
        hotwords=hotwords,
        temperature=temperature,
        diarize=response_format == "diarized_json",
        vad=await chunking_strategy_option(request, chunking_strategy),
        known_speakers=await known_speakers(known_speaker_names, known_speaker_references),
    )
    if stream:
        return await stream_transcription(request, service, file, options, diarized=options.diarize)
    transcript, _ = await service.transcribe(request, file, options)
    return render(transcript, response_format, granularities, temperature)


@router.post("/transcribe-with-speakers", response_model=DiarizedTranscript, dependencies=STRICT)
async def transcribe_with_speakers(
    request: Request,
    file: Annotated[UploadFile, File(description="audio in any format ffmpeg reads")],
    service: Annotated[Service, Depends(get_service)],
    language: Annotated[str | None, Form()] = None,
    num_speakers: Annotated[int | None, Form()] = None,
    min_speakers: Annotated[int | None, Form()] = None,
    max_speakers: Annotated[int | None, Form()] = None,
    prompt: Annotated[str | None, Form()] = None,
    hotwords: Annotated[str | None, Form(description=HOTWORDS)] = None,
    known_speaker_names: KnownNames = None,
    known_speaker_references: KnownReferences = None,
    response_format: Annotated[str, Form(description="json (the diarized transcript) or rttm (its turns)")] = "json",
) -> DiarizedTranscript | Response:
    if response_format not in ("json", "rttm"):
        raise bad_request(f"unsupported response_format {response_format!r}: use json or rttm")
    speakers_options(num_speakers, min_speakers, max_speakers)
    options = Options(
        language=language_option(language, service),
        prompt=prompt,
        hotwords=hotwords,
        known_speakers=await known_speakers(known_speaker_names, known_speaker_references),
        diarize=True,
        num_speakers=num_speakers,
        min_speakers=min_speakers,
        max_speakers=max_speakers,
    )
    transcript, timings = await service.transcribe(request, file, options)
    if response_format == "rttm":
        return render(transcript, "rttm", set(), 0.0, uri_of(file.filename))
    return diarized_transcript(transcript, timings)
