"""The FastAPI application: routers, error shapes, the upload limit, and model loading at start-up."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import __version__
from app.api import errors
from app.api.limits import UploadLimit
from app.api.metrics import RequestMetrics
from app.api.routers import health, models, transcriptions
from app.api.service import Service
from app.config import Settings
from app.inference.loader import ModelLoader, prepare_environment


def create_app(settings: Settings, load_models: bool = True) -> FastAPI:
    prepare_environment(settings)
    service = Service(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        if load_models:
            ModelLoader(settings, service.state).start()
        yield

    app = FastAPI(title="whisperx-asr", version=__version__, lifespan=lifespan)
    app.state.service = service
    errors.install(app)
    app.include_router(health.router)
    app.include_router(models.router)
    app.include_router(transcriptions.router)

    app.add_middleware(UploadLimit, max_mb=settings.whisperx_max_upload_mb)
    audio_routes = {route.path: route.path.rsplit("/", 1)[-1] for route in transcriptions.router.routes}
    app.add_middleware(RequestMetrics, metrics=service.metrics, endpoints=audio_routes)  # outermost: counts 413s too
    logging.getLogger("app").setLevel(logging.INFO)
    return app
