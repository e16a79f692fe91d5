"""Upload size limit, enforced before the body is parsed (a pure ASGI middleware).

An upload whose Content-Length is over WHISPERX_MAX_UPLOAD_MB gets 413 at once: the body is drained
without being kept (so the client reads a clean response), up to a bound beyond which the connection
is simply closed. A chunked upload without Content-Length is counted as it arrives and stopped at the
limit.
"""

from __future__ import annotations

from fastapi import HTTPException  # FastAPI re-raises its own HTTPException from body parsing; others become 400

from app.api.errors import refuse

DRAIN_LIMIT = 256 << 20  # bytes read and thrown away so the client sees the 413


class UploadTooLarge(HTTPException):
    def __init__(self, limit_mb: int):
        super().__init__(413, f"the upload is larger than the {limit_mb} MB limit (WHISPERX_MAX_UPLOAD_MB)")


class UploadLimit:
    def __init__(self, app, max_mb: int):
        self.app = app
        self.max_mb = max_mb
        self.max_bytes = max_mb << 20

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            drain = DRAIN_LIMIT if int(length) <= self.max_bytes + DRAIN_LIMIT else 0
            error = UploadTooLarge(self.max_mb).detail
            return await refuse(
                receive, send, 413, error, "invalid_request_error", "file_too_large", drain_limit=drain, close=True
            )
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise UploadTooLarge(self.max_mb)
            return message

        return await self.app(scope, counted, send)
