"""The voice library (spark_control/voices.py): list, add from a clip or from a speaker of a finished job,
play, delete. Changes need the API token; a clip plays only for the operator, since voices are personal."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Body, Depends, File, Form, HTTPException, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from spark_control.deps import Proxy, Voices
from spark_control.proxy import openai_error
from spark_control.routers.audio import JobId
from spark_control.security import require_read, require_token
from spark_control.voice_clips import MAX_UPLOAD_BYTES, ClipError, reference_clip
from spark_control.voices import SENT, Voice, VoiceLibrary, clean_name

router = APIRouter(tags=["voices"])
TOKEN = [Depends(require_token)]


def refused(error: ClipError) -> JSONResponse:
    return JSONResponse({"error": {"message": str(error), "type": "invalid_request_error", "code": error.code}},
                        error.status)  # fmt: skip


def find(voices: VoiceLibrary, voice_id: str) -> Voice:
    voice = voices.get(voice_id)
    if voice is None:
        raise HTTPException(404, f"no such voice: {voice_id}")
    return voice


async def clip_of(file: UploadFile) -> tuple[bytes, float]:
    data = await file.read(MAX_UPLOAD_BYTES + 1)
    return await run_in_threadpool(reference_clip, data)


@router.get("/api/voices", dependencies=[Depends(require_read)], summary="The voice library, by name")
def list_voices(voices: Voices) -> dict[str, Any]:
    return {"object": "list", "data": [v.view() for v in voices.list()], "limit": voices.limit, "sent": SENT}


@router.post("/api/voices", status_code=201, dependencies=TOKEN, summary="A new voice from a clip of 2-30 s")
async def create_voice(
    voices: Voices,
    name: Annotated[str, Form(description="the person's name, as transcripts will say it")],
    file: Annotated[UploadFile, File(description="2-30 s of the person speaking: WAV, FLAC, MP3 or Ogg")],
) -> Response:
    try:
        voices.check_room(clean_name(name))
        clip, seconds = await clip_of(file)
        voice = voices.create(name, clip, seconds, {"kind": "upload", "filename": file.filename or "clip"})
    except ClipError as error:
        return refused(error)
    return JSONResponse(voice.view(), 201)


@router.get("/api/voices/{voice_id}", dependencies=[Depends(require_read)])
def read_voice(voice_id: str, voices: Voices) -> dict[str, Any]:
    return find(voices, voice_id).view()


@router.post("/api/voices/{voice_id}/clips", status_code=201, dependencies=TOKEN, summary="One more clip of a voice")
async def add_clip(voice_id: str, voices: Voices, file: Annotated[UploadFile, File()]) -> Response:
    voice = find(voices, voice_id)
    try:
        clip, seconds = await clip_of(file)
    except ClipError as error:
        return refused(error)
    voice = voices.add(voice, clip, seconds, {"kind": "upload", "filename": file.filename or "clip"})
    return JSONResponse(voice.view(), 201)


@router.get(
    "/api/voices/{voice_id}/clips/{index}",
    dependencies=TOKEN,
    response_class=FileResponse,
    responses={200: {"content": {"audio/wav": {}}}},
)
def play_clip(voice_id: str, index: int, voices: Voices) -> FileResponse:
    voice = find(voices, voice_id)
    path = voices.clip_path(voice, index)
    if path is None:
        raise HTTPException(404, f"{voice.name} has no clip {index}")
    return FileResponse(path, media_type="audio/wav", headers={"Cache-Control": "no-store"})


@router.delete("/api/voices/{voice_id}", status_code=204, dependencies=TOKEN)
def delete_voice(voice_id: str, voices: Voices) -> Response:
    voices.delete(find(voices, voice_id))
    return Response(status_code=204)


@router.post(
    "/api/audio/jobs/{job_id}/speakers/{label}/voice",
    status_code=201,
    dependencies=TOKEN,
    summary="Name a speaker of a finished job: the transcript says the name, the library keeps the voice",
)
async def voice_from_speaker(
    job_id: JobId,
    label: str,
    voices: Voices,
    proxy: Proxy,
    name: Annotated[str, Body(embed=True, description="who the speaker is")],
) -> Response:
    """Cut the speaker's clearest 2-10 s on WhisperX, rename the speaker in the job's transcript (its
    downloads follow) and add the clip to the voice of that name (made when there is none)."""
    try:
        name = clean_name(name)
        voices.check_room(name)
    except ClipError as error:
        return refused(error)
    speaker = f"/speakers/{quote(label, safe='')}"
    clip = await proxy.job_call("GET", job_id, f"{speaker}/clip")
    if not isinstance(clip, httpx.Response):
        return clip
    if clip.status_code != 200:
        return passed_on(clip)
    try:
        data, seconds = await run_in_threadpool(reference_clip, clip.content)
    except ClipError as error:
        return openai_error(502, f"WhisperX's clip of {label} is unusable: {error}", "server_error", "bad_clip")
    voice = voices.named(name)
    renamed = await proxy.job_call("PATCH", job_id, speaker, {"name": voice.name if voice else name})
    if not isinstance(renamed, httpx.Response):
        return renamed
    if renamed.status_code != 200:
        return passed_on(renamed)
    source = {"kind": "job", "job_id": job_id, "speaker": label}
    try:
        voice = voices.add(voice, data, seconds, source) if voice else voices.create(name, data, seconds, source)
    except ClipError as error:
        return refused(error)
    return JSONResponse({"voice": voice.view(), "speaker": renamed.json()}, 201)


def passed_on(response: httpx.Response) -> Response:
    """WhisperX's refusal (unknown job or speaker, not completed, no clear speech) as it gave it."""
    return Response(response.content, response.status_code, media_type=response.headers.get("content-type"))
