"""The FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from app import __version__
from app.config import Settings
from app.routers import health


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(title="whisperx-asr", version=__version__)
    app.state.settings = settings
    app.include_router(health.router)
    return app
