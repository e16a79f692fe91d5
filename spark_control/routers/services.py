"""Managed services: state and health, start/stop/restart through service.yml, deep checks."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse

from spark_control.deps import get_registry, get_watchdog
from spark_control.runner.jobs import JobConflict
from spark_control.schemas import DeepCheckResult, HealthCheckInfo, JobConflictBody, ServiceActionResult, ServiceView
from spark_control.security import require_read, require_token
from spark_control.services import ServiceRegistry, ServiceSpec
from spark_control.watchdog import Watchdog
from spark_control.whisperx import WhisperxMonitor

router = APIRouter(prefix="/api/services", tags=["services"], dependencies=[Depends(require_read)])

Registry = Annotated[ServiceRegistry, Depends(get_registry)]
WatchdogDep = Annotated[Watchdog, Depends(get_watchdog)]


def managed_spec(registry: ServiceRegistry, name: str) -> ServiceSpec:
    spec = registry.spec(name)
    if spec is not None:
        return spec
    if name == "whisperx" and registry.known(name):
        raise HTTPException(404, "whisperx is not installed yet: POST /api/whisperx/install first")
    raise HTTPException(404, f"unknown service {name!r} (managed: {', '.join(registry.managed())})")


@router.get("", response_model=list[ServiceView])
async def list_services(registry: Registry, watchdog: WatchdogDep) -> list[ServiceView]:
    monitor = registry.whisperx
    specs = registry.managed()
    samples = await asyncio.gather(*(registry.probes[name].check() for name in specs))
    views = []
    for (name, spec), sample in zip(specs.items(), samples, strict=True):
        record = registry.record(name)
        views.append(
            ServiceView(
                name=name,
                title=spec.title,
                kind=spec.kind,
                container=spec.container,
                host_group=spec.host_group,
                url=spec.url,
                state=_state(name, record.state, monitor),
                state_at=record.state_at or (monitor.container.checked_at if name == "whisperx" else None),
                healthy=sample.ok,
                health=HealthCheckInfo.of(sample),
                health_body=sample.body,
                intent=record.intent,
                last_action=record.last_action,
                deep_check=record.deep_check,
                watchdog=watchdog.view(name),
            )
        )
    return views


def _state(name: str, recorded: str, monitor: WhisperxMonitor) -> str:
    """The last action's container state; for WhisperX, what the last playbook that looked at it saw."""
    if name != "whisperx" or recorded != "unknown" or monitor.container.running is None:
        return recorded
    return "running" if monitor.container.running else "exited"


@router.post(
    "/{name}/deep-check",
    response_model=DeepCheckResult,
    dependencies=[Depends(require_token)],
    description="Runs a real short clip through an ASR (or synthesizes speech with a TTS) and checks the answer; "
    "`ok` says whether the service passed.",
)
async def deep_check(name: str, registry: Registry) -> DeepCheckResult:
    spec = managed_spec(registry, name)
    return DeepCheckResult(**await registry.deep_check(spec.name))


@router.post(
    "/{name}/{action}",
    response_model=ServiceActionResult,
    responses={
        409: {"model": JobConflictBody, "description": "another job is acting on this service"},
        502: {"model": ServiceActionResult, "description": "the playbook ran and failed"},
        504: {"model": ServiceActionResult, "description": "still running after the action timeout"},
    },
    dependencies=[Depends(require_token)],
)
async def act(
    name: str, action: Literal["start", "stop", "restart"], registry: Registry
) -> ServiceActionResult | JSONResponse:
    spec = managed_spec(registry, name)
    try:
        job = await registry.start_action(spec.name, action)
    except JobConflict as exc:
        body = JobConflictBody(detail=f"job {exc.job.id} is acting on {name}", job_id=exc.job.id)
        return JSONResponse(body.model_dump(), status_code=409)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(job.done.wait()), registry.settings.action_timeout_s + 30)
    result = ServiceActionResult(
        name=name,
        action=action,
        job_id=job.id,
        state=job.record.state,
        rc=job.record.rc,
        result=job.record.result.get("service_result"),
        error=job.record.error,
    )
    if job.record.state == "successful":
        return result
    return JSONResponse(result.model_dump(), status_code=504 if job.record.state == "running" else 502)
