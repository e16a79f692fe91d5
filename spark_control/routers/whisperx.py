"""WhisperX: status, install (with its live log), remove."""

from __future__ import annotations

from pathlib import Path
from secrets import token_hex
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Response
from fastapi.responses import JSONResponse

from spark_control.config import Settings, write_private
from spark_control.deps import get_jobs, get_settings, get_whisperx
from spark_control.health import is_whisperx_health
from spark_control.routers.jobs import After, LastEventId, cancel, find_job, job_view, stream
from spark_control.runner.jobs import JobConflict, JobManager
from spark_control.schemas import (
    ContainerInfo,
    HealthCheckInfo,
    InstallRequest,
    JobConflictBody,
    JobRef,
    JobStarted,
    JobView,
    WhisperxStatus,
)
from spark_control.security import require_read, require_token
from spark_control.whisperx import INSTALL_LOCK, WhisperxMonitor, container_vars, install_vars

router = APIRouter(prefix="/api/whisperx", tags=["whisperx"], dependencies=[Depends(require_read)])

Jobs = Annotated[JobManager, Depends(get_jobs)]
Monitor = Annotated[WhisperxMonitor, Depends(get_whisperx)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
INSTALL_STREAMS = "/api/whisperx/install"
WHISPERX_JOBS = ("install", "remove")


def conflict(exc: JobConflict) -> JSONResponse:
    body = JobConflictBody(detail=f"a {exc.job.record.kind} job is running: {exc.job.id}", job_id=exc.job.id)
    return JSONResponse(body.model_dump(), status_code=409)


@router.get("/status", response_model=WhisperxStatus)
async def status(monitor: Monitor, jobs: Jobs, settings: SettingsDep) -> WhisperxStatus:
    sample = await monitor.health()
    refreshing = await monitor.refresh_if_stale(sample)
    container = monitor.container
    live = is_whisperx_health(sample.body)  # the service itself answered: it is installed and running
    body = sample.body if live else None
    installed = live or bool(container.installed)
    running = live or bool(container.running)
    if live:
        reachable: bool | None = True
    elif container.host_reachable is False:
        reachable = False
    else:
        reachable = container.host_reachable
    last = next(iter(jobs.list(WHISPERX_JOBS)), None)  # the newest install or removal
    age = monitor.container_age_s()
    return WhisperxStatus(
        installed=installed,
        running=running,
        healthy=bool(sample.ok and body and body.get("status") == "ready"),
        health=body,
        url=str(settings.whisperx_url),
        job=JobRef(id=last.id, state=last.record.state, phase=last.record.phase) if last else None,
        host_reachable=reachable,
        answered_from="live" if live else "cache",
        checks={
            "health": HealthCheckInfo.of(sample),
            "container": ContainerInfo(
                **{k: v for k, v in vars(container).items() if k != "host_reachable"},
                age_s=round(age, 1) if age is not None else None,
                stale=age is None or age > settings.container_state_max_age_s,
                refreshing=refreshing,
            ),
        },
    )


@router.post(
    "/install",
    status_code=202,
    response_model=JobStarted,
    responses={409: {"model": JobConflictBody, "description": "another install/remove is running"}},
    dependencies=[Depends(require_token)],
)
async def install(
    jobs: Jobs, settings: SettingsDep, request: Annotated[InstallRequest | None, Body()] = None
) -> JobStarted | JSONResponse:
    request = request or InstallRequest()
    holder = jobs.holding(INSTALL_LOCK)
    if holder is not None and not holder.finished:
        return conflict(JobConflict(holder))
    token = request.hf_token.get_secret_value() if request.hf_token else settings.huggingface_token()
    token_file: Path | None = None
    temporary: tuple[Path, ...] = ()
    if request.hf_token is None and settings.hf_token_file and settings.hf_token_file.is_file():
        token_file = settings.hf_token_file  # already a file on this machine: the role reads it there
    elif token:
        token_file = settings.secrets_dir / f"hf_token-{token_hex(8)}"
        write_private(token_file, token)
        temporary = (token_file,)
    try:
        job = await jobs.start(
            "install",
            "whisperx",
            install_vars(settings, token_file, request.model),
            lock=INSTALL_LOCK,
            target="whisperx",
            action="install",
            timeout_s=settings.install_timeout_s,
            secrets=(token,) if token else (),
            temp_files=temporary,
        )
    except JobConflict as exc:
        return conflict(exc)
    return JobStarted(job_id=job.id, stream_url=f"{INSTALL_STREAMS}/{job.id}/stream")


@router.post(
    "/remove",
    status_code=202,
    response_model=JobStarted,
    responses={409: {"model": JobConflictBody}},
    dependencies=[Depends(require_token)],
)
async def remove(jobs: Jobs, settings: SettingsDep) -> JobStarted | JSONResponse:
    try:
        job = await jobs.start(
            "remove", "whisperx_remove", container_vars(settings), lock=INSTALL_LOCK, target="whisperx", action="remove"
        )
    except JobConflict as exc:
        return conflict(exc)
    return JobStarted(job_id=job.id, stream_url=f"{INSTALL_STREAMS}/{job.id}/stream")


@router.get("/install", response_model=list[JobView])
def list_installs(jobs: Jobs) -> list[JobView]:
    return [job_view(j, INSTALL_STREAMS) for j in jobs.list(WHISPERX_JOBS)]


@router.get("/install/{job_id}", response_model=JobView)
def read_install(job_id: str, jobs: Jobs) -> JobView:
    return job_view(find_job(jobs, job_id, WHISPERX_JOBS), INSTALL_STREAMS)


@router.get(
    "/install/{job_id}/stream", response_class=Response, responses={200: {"content": {"text/event-stream": {}}}}
)
def stream_install(
    job_id: str, jobs: Jobs, settings: SettingsDep, last_event_id: LastEventId = None, after: After = None
) -> Response:
    return stream(find_job(jobs, job_id, WHISPERX_JOBS), last_event_id, after, settings)


@router.post("/install/{job_id}/cancel", response_model=JobView, status_code=202, dependencies=[Depends(require_token)])
def cancel_install(job_id: str, jobs: Jobs) -> JobView:
    return cancel(jobs, find_job(jobs, job_id, WHISPERX_JOBS), INSTALL_STREAMS)
