"""The audio proxy: POST /api/audio/transcribe-with-speakers (WhisperX, or the legacy service)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from spark_control.deps import Proxy
from spark_control.security import require_audio

router = APIRouter(prefix="/api/audio", tags=["audio"], dependencies=[Depends(require_audio)])
JobId = Annotated[str, Path(pattern=r"^job_[0-9a-f]{16}$", description="a WhisperX job's id")]

_MULTIPART = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "language": {"type": "string"},
                        "num_speakers": {"type": "integer"},
                        "min_speakers": {"type": "integer"},
                        "max_speakers": {"type": "integer"},
                        "prompt": {"type": "string"},
                        "response_format": {"type": "string", "enum": ["json", "rttm"]},
                    },
                }
            }
        },
    }
}


@router.post(
    "/transcribe-with-speakers",
    openapi_extra=_MULTIPART,
    response_class=Response,
    responses={
        200: {
            "description": "the diarized transcript (CONTRACT section 1); header X-ASR-Backend: whisperx | legacy",
            "content": {"application/json": {}},
        },
        401: {"description": "SPARK_CONTROL_AUDIO_TOKEN is set and the request does not carry it"},
        413: {"description": "upload over SPARK_CONTROL_PROXY_MAX_UPLOAD_MB"},
        415: {"description": "not multipart/form-data"},
        502: {"description": "no backend answered"},
    },
)
async def transcribe_with_speakers(request: Request, proxy: Proxy) -> Response:
    return await proxy.transcribe(request)


# -- the job API, through to WhisperX (503 when it is not available: the legacy service has no jobs) ---------
@router.post(
    "/jobs",
    openapi_extra=_MULTIPART,
    response_class=Response,
    status_code=202,
    responses={
        202: {"description": "the job (CONTRACT section 1, Jobs), once the upload is on WhisperX's disk"},
        429: {"description": "WhisperX's queue is full (Retry-After)"},
        503: {"description": "WhisperX is not installed or not healthy"},
        507: {"description": "WhisperX's job store is full"},
    },
)
async def submit_job(request: Request, proxy: Proxy) -> Response:
    return await proxy.submit_job(request)


@router.get("/jobs", response_class=Response)
async def list_jobs(request: Request, proxy: Proxy) -> Response:
    return await proxy.job_request(request, "GET", "")


@router.get("/jobs/{job_id}", response_class=Response)
async def read_job(job_id: JobId, request: Request, proxy: Proxy) -> Response:
    return await proxy.job_request(request, "GET", f"/{job_id}")


@router.get("/jobs/{job_id}/result", response_class=Response)
async def job_result(job_id: JobId, request: Request, proxy: Proxy) -> Response:
    return await proxy.job_request(request, "GET", f"/{job_id}/result")


@router.get("/jobs/{job_id}/events", response_class=Response, responses={200: {"content": {"text/event-stream": {}}}})
async def job_events(job_id: JobId, request: Request, proxy: Proxy) -> Response:
    return await proxy.job_request(request, "GET", f"/{job_id}/events")


@router.delete("/jobs/{job_id}", response_class=Response, status_code=204)
async def delete_job(job_id: JobId, request: Request, proxy: Proxy) -> Response:
    return await proxy.job_request(request, "DELETE", f"/{job_id}")
