"""The job API (CONTRACT section 1, "Jobs"): long recordings as durable jobs, watched, resumed, fetched later.

POST /v1/audio/jobs takes the fields of transcribe-with-speakers (plus response_format, what `result`
returns by default) and answers 202 once the upload is on disk; the rest reads, streams or deletes it.
Execution and storage are app.jobs'; the transcript is rendered by the same code as the synchronous
endpoints.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from app.api.errors import APIError, bad_request
from app.api.formats import JOB_FORMATS, diarized_transcript, render, uri_of
from app.api.routers.transcriptions import (
    HOTWORDS,
    STRICT,
    KnownNames,
    KnownReferences,
    language_option,
    speakers_options,
)  # fmt: skip
from app.api.schemas import JobList, JobObject, Timings
from app.api.service import Service, get_service
from app.api.voices import known_speakers
from app.inference.transcript import Speaker
from app.jobs.runner import JobRunner

router = APIRouter(prefix="/v1/audio/jobs", tags=["jobs"])


def get_runner(request: Request) -> JobRunner:
    return request.app.state.jobs


Runner = Annotated[JobRunner, Depends(get_runner)]
ServiceDep = Annotated[Service, Depends(get_service)]


@router.post("", status_code=202, response_model=JobObject, dependencies=STRICT)
async def create_job(
    request: Request,
    runner: Runner,
    service: ServiceDep,
    file: Annotated[UploadFile, File(description="audio in any format ffmpeg reads")],
    language: Annotated[str | None, Form()] = None,
    num_speakers: Annotated[int | None, Form()] = None,
    min_speakers: Annotated[int | None, Form()] = None,
    max_speakers: Annotated[int | None, Form()] = None,
    prompt: Annotated[str | None, Form()] = None,
    hotwords: Annotated[str | None, Form(description=HOTWORDS)] = None,
    known_speaker_names: KnownNames = None,
    known_speaker_references: KnownReferences = None,
    response_format: Annotated[str, Form(description="what GET .../result returns by default")] = "json",
) -> JSONResponse:
    service.require_ready()
    speakers_options(num_speakers, min_speakers, max_speakers)
    if response_format not in JOB_FORMATS:
        raise bad_request(f"unsupported response_format {response_format!r}: use one of {', '.join(JOB_FORMATS)}")
    options = {
        "language": language_option(language, service), "prompt": prompt, "hotwords": hotwords, "diarize": True,
        "num_speakers": num_speakers, "min_speakers": min_speakers, "max_speakers": max_speakers,
    }  # fmt: skip
    known = await known_speakers(known_speaker_names, known_speaker_references)
    incoming = await run_in_threadpool(_keep, file, runner.store.root)
    try:
        job = runner.submit(getattr(request.state, "ticket", None), incoming, file.filename or "upload", options,
                            response_format, known)  # fmt: skip
    finally:
        incoming.unlink(missing_ok=True)  # moved into the job's directory, unless refused
    return JSONResponse(job.view(), status_code=202)


def _keep(upload: UploadFile, root: Path) -> Path:
    """The upload copied next to the job store (the same file system, so it is moved, not copied again)."""
    fd, name = tempfile.mkstemp(prefix=".incoming-", dir=root)
    path = Path(name)
    with open(fd, "wb") as out:
        upload.file.seek(0)
        shutil.copyfileobj(upload.file, out, 1 << 20)
    if path.stat().st_size == 0:
        path.unlink()
        raise APIError(400, "the uploaded file is empty", code="empty_file")
    return path


@router.get("", response_model=JobList)
def list_jobs(
    runner: Runner, limit: Annotated[int, Query(ge=1, le=100)] = 20, after: str | None = None
) -> JSONResponse:
    jobs, more = runner.list(limit, after)
    return JSONResponse({"object": "list", "data": [j.view() for j in jobs], "has_more": more})


@router.get("/{job_id}", response_model=JobObject)
def read_job(job_id: str, runner: Runner) -> JSONResponse:
    return JSONResponse(runner.get(job_id).view())


@router.get("/{job_id}/result")
def job_result(
    job_id: str,
    runner: Runner,
    format: Annotated[str | None, Query(description="json, verbose_json, diarized_json, text, srt, vtt, rttm")] = None,
) -> Response:
    job = runner.get(job_id)
    fmt = format or job.response_format
    if fmt not in JOB_FORMATS:
        raise bad_request(f"unsupported format {fmt!r}: use one of {', '.join(JOB_FORMATS)}")
    transcript = runner.transcript(job)
    if fmt == "json":  # the diarized transcript, as transcribe-with-speakers answers
        timings = runner.store.result(job.id).get("timings", {})
        return JSONResponse(diarized_transcript(transcript, Timings(**timings)).model_dump(mode="json"))
    return render(transcript, fmt, set(), 0.0, uri_of(job.filename))


@router.get(
    "/{job_id}/speakers/{label}/clip",
    response_class=FileResponse,
    responses={200: {"content": {"audio/wav": {}}, "description": "2-10 s of the speaker's clearest speech"}},
)
def speaker_clip(job_id: str, label: str, runner: Runner) -> FileResponse:
    """A speaker's clearest speech (its segments no one else talks over), cut when the job completed: what a
    voice library makes a known speaker of."""
    return FileResponse(runner.speaker_clip(runner.get(job_id), label), media_type="audio/wav")


class SpeakerName(BaseModel):
    name: str = Field(description="what the transcript calls the speaker from now on")


@router.patch("/{job_id}/speakers/{label}", response_model=Speaker)
async def rename_speaker(job_id: str, label: str, body: SpeakerName, runner: Runner) -> JSONResponse:
    """Rename a speaker of a completed job: its segments, words and every format of the result say `name`."""
    return JSONResponse(runner.rename_speaker(runner.get(job_id), label, body.name))


@router.get("/{job_id}/events", response_class=Response, responses={200: {"content": {"text/event-stream": {}}}})
def job_events(
    job_id: str,
    runner: Runner,
    last_event_id: Annotated[str | None, Header(description="set by EventSource when it reconnects")] = None,
) -> Response:
    runner.get(job_id)
    after = int(last_event_id) if last_event_id and last_event_id.strip().isdigit() else 0

    async def stream():
        async for event in runner.events(job_id, after):
            yield ServerSentEvent(data=json.dumps(event["data"]), event=event["event"], id=str(event["id"]))

    return EventSourceResponse(stream(), ping=10, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.delete("/{job_id}", status_code=204, response_class=Response)
async def delete_job(job_id: str, runner: Runner) -> Response:
    await runner.delete(job_id)
    return Response(status_code=204)
