"""Exceptions the endpoints raise and the one place that turns each into its response.

Endpoints return their response models; what goes wrong is raised (a job already holds the lock, a
service action that ran and failed) and answered here in a shape the OpenAPI document names, the way
the WhisperX service's app/errors.py does for its own API.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from spark_control.runner.jobs import JobConflict
from spark_control.schemas import JobConflictBody, ServiceActionResult
from spark_control.security import AudioTokenMissing


class ServiceActionFailed(Exception):
    """A start/stop/restart that ran and failed (502), or is still running after its time limit (504)."""

    def __init__(self, result: ServiceActionResult):
        super().__init__(result.error or result.state)
        self.result = result
        self.status_code = 504 if result.state == "running" else 502


async def job_conflict(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, JobConflict)
    return JSONResponse(JobConflictBody(detail=str(exc), job_id=exc.job.id).model_dump(), status_code=409)


async def service_action_failed(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceActionFailed)
    return JSONResponse(exc.result.model_dump(), status_code=exc.status_code)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, minus the rejected input: a malformed token must not be echoed back."""
    assert isinstance(exc, RequestValidationError)
    errors = [{k: v for k, v in error.items() if k not in ("input", "ctx", "url")} for error in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


async def audio_token_missing(request: Request, exc: Exception) -> JSONResponse:
    message = "the audio endpoints need a token here: send Authorization: Bearer <SPARK_CONTROL_AUDIO_TOKEN>"
    body = {"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}}
    return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AudioTokenMissing, audio_token_missing)
    app.add_exception_handler(JobConflict, job_conflict)
    app.add_exception_handler(ServiceActionFailed, service_action_failed)
    app.add_exception_handler(RequestValidationError, validation_error)
