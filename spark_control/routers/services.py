"""Managed services: state and health, start/stop/restart through service.yml, deep checks."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, HTTPException

from spark_control.deps import Registry, WatchdogDep
from spark_control.schemas import DeepCheckResult, JobConflictBody, ServiceActionResult, ServiceView
from spark_control.security import require_read, require_token
from spark_control.services import ServiceRegistry, ServiceSpec

router = APIRouter(prefix="/api/services", tags=["services"], dependencies=[Depends(require_read)])


def managed_spec(registry: ServiceRegistry, name: str) -> ServiceSpec:
    spec = registry.spec(name)
    if spec is not None:
        return spec
    if name.startswith("whisperx") and registry.known(name):
        raise HTTPException(404, f"{name} is not installed yet: POST /api/whisperx/install first")
    raise HTTPException(404, f"unknown service {name!r} (managed: {', '.join(registry.managed())})")


@router.get("", response_model=list[ServiceView])
async def list_services(registry: Registry, watchdog: WatchdogDep) -> list[ServiceView]:
    return await registry.views(watchdog)


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
async def act(name: str, action: Literal["start", "stop", "restart"], registry: Registry) -> ServiceActionResult:
    return await registry.act(managed_spec(registry, name).name, action)
