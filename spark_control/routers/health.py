"""spark-control's own liveness (not the services')."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from spark_control import __version__

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index() -> str:
    # The dashboard (Audio / Speech tab) replaces this page in a later issue.
    return (
        "<!doctype html><title>spark-control</title><h1>spark-control</h1>"
        '<p>The API is up. See <a href="/docs">/docs</a>.</p>'
    )
