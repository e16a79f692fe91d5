"""The FastAPI application: routers, error shapes, the upload limit, and model loading at start-up."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import __version__
from app.api import errors
from app.api.admission import Admission
from app.api.auth import ApiKey
from app.api.limits import UploadLimit
from app.api.metrics import RequestMetrics
from app.api.routers import health, models, transcriptions
from app.api.routers import jobs as jobs_router
from app.api.service import Service, remove_leftovers
from app.config import Settings
from app.inference.loader import prepare_environment
from app.jobs.runner import JobRunner


def create_app(settings: Settings, load_models: bool = True) -> FastAPI:
    prepare_environment(settings)
    service = Service(settings)

    jobs = JobRunner(settings, service.state, service.queue, service.loader)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        remove_leftovers()  # a killed process's request files (a restart keeps the writable layer)
        if load_models:
            service.loader.start()
        await jobs.start()  # jobs a stopped service left queued or running, taken up again
        idle = None
        if settings.whisperx_idle_unload_s > 0:
            idle = asyncio.create_task(service.unload_when_idle(), name="idle-unload")
        yield
        if idle is not None:
            idle.cancel()
        await jobs.stop()

    app = FastAPI(title="whisperx-asr", version=__version__, lifespan=lifespan)
    app.state.service = service
    app.state.jobs = jobs
    errors.install(app)
    app.include_router(health.router)
    app.include_router(models.router)
    app.include_router(transcriptions.router)
    app.include_router(jobs_router.router)

    # Outermost first when a request arrives: metrics (counting refusals too), the API key, admission
    # (readiness, a queue place), the upload limit; each refusal before a byte of the body is stored.
    app.add_middleware(UploadLimit, max_mb=settings.whisperx_max_upload_mb)
    app.add_middleware(Admission, service=service)
    app.add_middleware(ApiKey, key_file=settings.whisperx_api_key_file)
    audio_routes = {route.path: route.path.rsplit("/", 1)[-1] for route in transcriptions.router.routes}
    app.add_middleware(RequestMetrics, metrics=service.metrics, endpoints=audio_routes)
    logging.getLogger("app").setLevel(logging.INFO)
    return app
