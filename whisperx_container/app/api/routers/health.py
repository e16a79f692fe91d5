"""GET /health and GET /metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app import __version__
from app.api.schemas import Health, QueueStatus
from app.api.service import Service, get_service

router = APIRouter()


@router.get("/health", response_model=Health)
def health(service: Annotated[Service, Depends(get_service)]) -> Health:
    state, queue = service.state, service.queue
    return Health(
        status=state.status,
        whisper_loaded=state.whisper_loaded,
        diarizer_loaded=state.diarizer_loaded,
        aligner=state.aligner,
        model=service.settings.whisper_model,
        device=state.device,
        whisper_device=state.whisper_device,
        diarizer_device=state.device,
        compute_type=state.compute_type,
        queue=QueueStatus(running=queue.running, waiting=queue.queued, limit=queue.limit),
        version=__version__,
        error=state.error,
    )


@router.get("/metrics", include_in_schema=False)
def metrics(service: Annotated[Service, Depends(get_service)]) -> Response:
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)
