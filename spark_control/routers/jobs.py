"""Playbook jobs of every kind: list, read, stream (SSE), cancel."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Response

from spark_control.config import Settings
from spark_control.deps import get_jobs, get_settings
from spark_control.runner.jobs import Job, JobManager
from spark_control.runner.stream import parse_cursor, stream_response
from spark_control.schemas import JobView
from spark_control.security import require_read, require_token

router = APIRouter(prefix="/api/jobs", tags=["jobs"], dependencies=[Depends(require_read)])

Jobs = Annotated[JobManager, Depends(get_jobs)]
LastEventId = Annotated[str | None, Header(description="set by EventSource when it reconnects")]
After = Annotated[str | None, Query(description="resume after this event id (for clients that cannot set headers)")]


def job_view(job: Job, stream_prefix: str = "/api/jobs") -> JobView:
    r = job.record
    return JobView(
        job_id=r.id,
        kind=r.kind,
        state=r.state,
        phase=r.phase,
        started_at=r.started_at,
        finished_at=r.finished_at,
        elapsed_s=job.elapsed_s(),
        rc=r.rc,
        target=r.target,
        action=r.action,
        trigger=r.trigger,
        error=r.error,
        unreachable=r.unreachable,
        result=r.result,
        stream_url=f"{stream_prefix}/{r.id}/stream",
    )


def find_job(jobs: JobManager, job_id: str, kinds: tuple[str, ...] | None = None) -> Job:
    job = jobs.get(job_id)
    if job is None or (kinds and job.record.kind not in kinds):
        raise HTTPException(404, f"no such job: {job_id}")
    return job


def stream(job: Job, last_event_id: str | None, after: str | None, settings: Settings) -> Response:
    return stream_response(job, parse_cursor(last_event_id, after), settings)


def cancel(jobs: JobManager, job: Job, stream_prefix: str) -> JobView:
    if job.finished:
        raise HTTPException(409, f"job {job.id} already finished ({job.record.state})")
    jobs.cancel(job)
    return job_view(job, stream_prefix)


@router.get("", response_model=list[JobView])
def list_jobs(
    jobs: Jobs,
    kind: Literal["install", "remove", "status", "service"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[JobView]:
    return [job_view(j) for j in jobs.list((kind,) if kind else None)[:limit]]


@router.get("/{job_id}", response_model=JobView)
def read_job(job_id: str, jobs: Jobs) -> JobView:
    return job_view(find_job(jobs, job_id))


@router.get("/{job_id}/stream", response_class=Response, responses={200: {"content": {"text/event-stream": {}}}})
def stream_job(
    job_id: str,
    jobs: Jobs,
    settings: Annotated[Settings, Depends(get_settings)],
    last_event_id: LastEventId = None,
    after: After = None,
) -> Response:
    return stream(find_job(jobs, job_id), last_event_id, after, settings)


@router.post("/{job_id}/cancel", response_model=JobView, status_code=202, dependencies=[Depends(require_token)])
def cancel_job(job_id: str, jobs: Jobs) -> JobView:
    return cancel(jobs, find_job(jobs, job_id), "/api/jobs")
