"""WhisperX: status, what an install can be asked for, install and remove (the jobs' own routes: jobs.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends

from spark_control.config import WHISPERX_MODELS
from spark_control.deps import Monitor, SettingsDep
from spark_control.routers.jobs import INSTALL_PREFIX
from spark_control.runner.phases import OUTCOME, PHASES
from spark_control.schemas import (
    InstallRequest,
    JobConflictBody,
    JobStarted,
    PhaseInfo,
    WhisperxOptions,
    WhisperxStatus,
)
from spark_control.security import require_read, require_token

router = APIRouter(prefix="/api/whisperx", tags=["whisperx"], dependencies=[Depends(require_read)])
CONFLICT = {409: {"model": JobConflictBody, "description": "another install or removal is running"}}


@router.get("/status", response_model=WhisperxStatus)
async def status(monitor: Monitor) -> WhisperxStatus:
    return await monitor.status()


@router.get("/options", response_model=WhisperxOptions)
def options(settings: SettingsDep) -> WhisperxOptions:
    return WhisperxOptions(
        models=list(WHISPERX_MODELS),
        default_model=settings.served_model,
        phases=[PhaseInfo(**vars(phase)) for phase in PHASES],
        outcome=PhaseInfo(**vars(OUTCOME)),
    )


@router.post(
    "/install", status_code=202, response_model=JobStarted, responses=CONFLICT, dependencies=[Depends(require_token)]
)
async def install(monitor: Monitor, request: Annotated[InstallRequest | None, Body()] = None) -> JobStarted:
    job = await monitor.install(request or InstallRequest())
    return JobStarted(job_id=job.id, stream_url=f"{INSTALL_PREFIX}/{job.id}/stream")


@router.post(
    "/remove", status_code=202, response_model=JobStarted, responses=CONFLICT, dependencies=[Depends(require_token)]
)
async def remove(monitor: Monitor) -> JobStarted:
    job = await monitor.remove()
    return JobStarted(job_id=job.id, stream_url=f"{INSTALL_PREFIX}/{job.id}/stream")
