"""A job's events as Server-Sent Events, resumable with Last-Event-ID.

Each client holds only a cursor (the last id it got) and reads the job's shared event buffer, or the
runner's files when it is further behind, so a slow client costs no memory; sse-starlette's
send_timeout drops a client that stops reading, and it resumes with Last-Event-ID.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
from fastapi import HTTPException, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from spark_control.config import Settings
from spark_control.runner.jobs import Job

RECONNECT_MS = 1000


def parse_cursor(last_event_id: str | None, after: str | None) -> int:
    """The id a client already has: the Last-Event-ID header (set by EventSource on reconnect) or ?after=."""
    raw = last_event_id if last_event_id not in (None, "") else after
    if raw in (None, ""):
        return 0
    raw = raw.strip()
    if not raw.isdigit():
        raise HTTPException(400, f"Last-Event-ID / after must be an event id, a non-negative integer (got {raw!r})")
    return int(raw)


async def job_events(job: Job, cursor: int) -> AsyncIterator[ServerSentEvent]:
    yield ServerSentEvent(comment=f"job {job.id}", retry=RECONNECT_MS)
    while True:
        if job.in_memory(cursor):
            events = job.events_after(cursor)
        else:  # far behind or a job from before a restart: replay the runner's files off the loop
            events = await anyio.to_thread.run_sync(job.events_after, cursor)
        for event in events:
            yield event.to_sse()
            cursor = event.id
            if event.event == "done":
                return
        await job.wait_for_change(within_s=5.0)


def stream_response(job: Job, cursor: int, settings: Settings) -> Response:
    if job.finished and cursor >= job.final_id():
        # Nothing more will come: 204 tells EventSource to stop reconnecting.
        return Response(status_code=204)
    return EventSourceResponse(
        job_events(job, cursor),
        ping=settings.stream_ping_s,
        send_timeout=settings.stream_send_timeout_s,
        headers={"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"},
    )
