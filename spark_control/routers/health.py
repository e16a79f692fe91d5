"""spark-control's own liveness (not the services')."""

from __future__ import annotations

from fastapi import APIRouter

from spark_control import __version__

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok", "version": __version__}
