"""Upload size limit, enforced before the body is parsed (a pure ASGI middleware).

An upload whose Content-Length is over WHISPERX_MAX_UPLOAD_MB gets 413 at once: the body is drained
without being kept (so the client reads a clean response), up to a bound beyond which the connection
is simply closed. A chunked upload without Content-Length is counted as it arrives and stopped at the
limit.
"""

from __future__ import annotations

import json

from fastapi import HTTPException  # FastAPI re-raises its own HTTPException from body parsing; others become 400

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
            if int(length) <= self.max_bytes + DRAIN_LIMIT:
                await self._drain(receive)
            return await self._reject(send)
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

    @staticmethod
    async def _drain(receive) -> None:
        while True:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body"):
                return

    async def _reject(self, send) -> None:
        error = UploadTooLarge(self.max_mb)
        body = json.dumps({"error": {"message": error.detail, "type": "invalid_request_error",
                                     "code": "file_too_large"}}).encode()  # fmt: skip
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]  # fmt: skip
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
