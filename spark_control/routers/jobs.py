"""Playbook jobs: list, read, stream (SSE), cancel. One set of routes, mounted twice.

`/api/jobs` serves every kind; `/api/whisperx/install` serves the installs and removals (the
dashboard's progress dialog and CONTRACT section 3), with stream URLs under its own prefix.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Response

from spark_control.deps import Jobs, SettingsDep
from spark_control.runner.jobs import Job, JobManager
from spark_control.runner.stream import parse_cursor, stream_response
from spark_control.schemas import JobKindName, JobView
from spark_control.security import require_read, require_token

LastEventId = Annotated[str | None, Header(description="set by EventSource when it reconnects")]
After = Annotated[str | None, Query(description="resume after this event id (for clients that cannot set headers)")]
WHISPERX_JOBS: tuple[JobKindName, ...] = ("install", "remove", "rollback")
INSTALL_PREFIX = "/api/whisperx/install"


def job_view(job: Job, stream_prefix: str = "/api/jobs") -> JobView:
    r = job.record
    return JobView(
        job_id=r.id,
        kind=r.kind,
        state=r.state,
        phase=r.phase,
        hosts=r.hosts,
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


def job_routes(prefix: str, kinds: tuple[JobKindName, ...] | None, tag: str) -> APIRouter:
    """The job routes under `prefix`, for jobs of `kinds` (None: every kind)."""
    router = APIRouter(prefix=prefix, tags=[tag], dependencies=[Depends(require_read)])

    def find(jobs: JobManager, job_id: str) -> Job:
        job = jobs.get(job_id)
        if job is None or (kinds and job.record.kind not in kinds):
            raise HTTPException(404, f"no such job: {job_id}")
        return job

    @router.get("", response_model=list[JobView], summary=f"List {'/'.join(kinds or ('all',))} jobs, newest first")
    def list_jobs(
        jobs: Jobs,
        kind: JobKindName | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> list[JobView]:
        # Under a prefix of some kinds, asking for another kind lists nothing.
        wanted = ((kind,) if kind else None) if kinds is None else tuple(k for k in kinds if kind in (None, k))
        return [job_view(j, prefix) for j in jobs.list(wanted)[:limit]]

    @router.get("/{job_id}", response_model=JobView)
    def read_job(job_id: str, jobs: Jobs) -> JobView:
        return job_view(find(jobs, job_id), prefix)

    @router.get("/{job_id}/stream", response_class=Response, responses={200: {"content": {"text/event-stream": {}}}})
    def stream_job(
        job_id: str, jobs: Jobs, settings: SettingsDep, last_event_id: LastEventId = None, after: After = None
    ) -> Response:
        return stream_response(find(jobs, job_id), parse_cursor(last_event_id, after), settings)

    @router.post("/{job_id}/cancel", response_model=JobView, status_code=202, dependencies=[Depends(require_token)])
    def cancel_job(job_id: str, jobs: Jobs) -> JobView:
        job = find(jobs, job_id)
        if job.finished:
            raise HTTPException(409, f"job {job.id} already finished ({job.record.state})")
        jobs.cancel(job)
        return job_view(job, prefix)

    return router


router = job_routes("/api/jobs", None, "jobs")
install_router = job_routes(INSTALL_PREFIX, WHISPERX_JOBS, "whisperx")
