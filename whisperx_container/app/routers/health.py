"""GET /health."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app import __version__

router = APIRouter()


@router.get("/health")
def health(request: Request) -> dict:
    settings = request.app.state.settings
    return {
        "status": "loading",
        "whisper_loaded": False,
        "diarizer_loaded": False,
        "aligner": None,
        "model": settings.whisper_model,
        "device": "cpu",
        "compute_type": settings.whisperx_compute_type,
        "queue": {"running": 0, "waiting": 0, "limit": settings.whisperx_queue_limit},
        "version": __version__,
        "error": None,
    }
