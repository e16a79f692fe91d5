"""WHISPERX_API_KEY_FILE: when set, every endpoint but /health needs `Authorization: Bearer <key>`.

Checked in front of everything else (a pure ASGI middleware), so a caller without the key costs no
disk and no queue place; refused with 401 in the OpenAI error shape, which the official `openai`
client reports as an authentication error. The key is read once, from a file (a mounted secret),
never from the environment, and compared in constant time.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from app.api.errors import refuse

OPEN_PATHS = frozenset({"/health"})


class ApiKey:
    def __init__(self, app, key_file: Path | None):
        self.app = app
        self.key = key_file.read_text().strip().encode() if key_file else None
        if key_file and not self.key:
            raise ValueError(f"WHISPERX_API_KEY_FILE {key_file} is empty")

    async def __call__(self, scope, receive, send):
        if self.key is None or scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        scheme, _, presented = dict(scope["headers"]).get(b"authorization", b"").partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(presented.strip(), self.key):
            return await self.app(scope, receive, send)
        return await refuse(
            receive, send, 401, "this service needs an API key: send Authorization: Bearer <key>",
            "invalid_request_error", "invalid_api_key", {"WWW-Authenticate": "Bearer"},
        )  # fmt: skip
