"""GET /v1/models: the one Whisper model this service runs, in OpenAI's list shape."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from app.api.schemas import ModelCard, ModelList
from app.api.service import Service, get_service

router = APIRouter()


@router.get("/v1/models", response_model=ModelList)
def models(service: Annotated[Service, Depends(get_service)]) -> ModelList:
    return ModelList(data=[ModelCard(id=service.settings.whisper_model, created=service.started)])
