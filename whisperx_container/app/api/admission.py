"""Admission before the body: a transcription the service cannot take now is refused before its upload is read.

FastAPI reads (and spools to disk) a multipart body before any endpoint code runs, so a 503 while the
models load or a 429 with a full queue decided in the endpoint would still cost the whole upload on
disk. This middleware decides first: readiness, then a place in the queue (`InferenceQueue.admit`),
counting uploads still arriving as waiting, so a flood of concurrent uploads cannot fill the disk
either. The admitted request's ticket reaches the endpoint through `scope["state"]`, and is given
back if the request ends before it queued.
"""

from __future__ import annotations

from app.api.errors import refuse
from app.api.queue import QueueFull

ADMITTED_PATHS = frozenset({"/v1/audio/transcriptions", "/v1/audio/transcribe-with-speakers", "/v1/audio/jobs"})


class Admission:
    def __init__(self, app, service):
        self.app = app
        self.service = service

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in ADMITTED_PATHS:
            return await self.app(scope, receive, send)
        state = self.service.state
        if state.status == "loading":
            return await refuse(receive, send, 503, "the models are still loading; retry shortly", "server_error",
                                "model_loading", {"Retry-After": "10"})  # fmt: skip
        if state.status == "error":
            return await refuse(receive, send, 503, f"the models failed to load: {state.error}", "server_error",
                                "model_unavailable")  # fmt: skip
        try:
            ticket = self.service.queue.admit()
        except QueueFull as full:
            return await refuse(receive, send, 429, "too many requests are queued; retry later", "rate_limit_error",
                                "queue_full", {"Retry-After": str(full.retry_after)})  # fmt: skip
        scope.setdefault("state", {})["ticket"] = ticket
        try:
            await self.app(scope, receive, send)
        finally:
            ticket.drop()  # no-op once the request took its place in the queue
