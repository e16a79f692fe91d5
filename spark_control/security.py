"""The API token: mutating endpoints require it, as a Bearer header or as the session cookie.

A browser's EventSource cannot send headers, so a dashboard logs in once (POST /api/session with
the token) and gets an HttpOnly, SameSite=Strict cookie that every later request, streams
included, carries. The cookie holds an HMAC of the token, never the token itself. Comparisons are
constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from spark_control.config import Settings

SESSION_COOKIE = "spark_control_session"


class Auth:
    def __init__(self, settings: Settings):
        token = settings.resolved_api_token().encode()
        self._token = token
        self._session = hmac.new(token, b"spark-control session v1", hashlib.sha256).hexdigest().encode()
        self.reads_require_token = settings.reads_require_token

    def token_matches(self, presented: str) -> bool:
        return hmac.compare_digest(presented.encode(), self._token)

    def session_value(self) -> str:
        return self._session.decode()

    def authenticated(self, request: Request) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and value.strip() and self.token_matches(value.strip()):
            return True
        cookie = request.cookies.get(SESSION_COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), self._session)


def get_auth(request: Request) -> Auth:
    return request.app.state.auth


def require_token(request: Request, auth: Annotated[Auth, Depends(get_auth)]) -> None:
    if not auth.authenticated(request):
        raise HTTPException(
            401,
            "this endpoint needs the API token: send `Authorization: Bearer <SPARK_CONTROL_API_TOKEN>` "
            "or log in with POST /api/session",
            headers={"WWW-Authenticate": "Bearer"},
        )


def require_read(request: Request, auth: Annotated[Auth, Depends(get_auth)]) -> None:
    """Reads are open unless SPARK_CONTROL_READS_REQUIRE_TOKEN is set."""
    if auth.reads_require_token:
        require_token(request, auth)
