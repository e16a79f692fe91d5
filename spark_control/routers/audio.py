"""The audio proxy: POST /api/audio/transcribe-with-speakers (WhisperX, or the legacy service)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from spark_control.deps import Proxy
from spark_control.security import require_audio

router = APIRouter(prefix="/api/audio", tags=["audio"], dependencies=[Depends(require_audio)])

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
