"""The API token: mutating endpoints require it, as a Bearer header or as the session cookie.

A browser's EventSource cannot send headers, so a dashboard logs in once (POST /api/session with
the token) and gets an HttpOnly, SameSite=Strict cookie that every later request, streams
included, carries. The cookie holds when it was issued and an HMAC of that time keyed with the
token, never the token itself; it is refused once older than SPARK_CONTROL_SESSION_MAX_AGE (or when
the token changes). Comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from spark_control.config import Settings

SESSION_COOKIE = "spark_control_session"
_SESSION_CONTEXT = b"spark-control session v2 issued at "
_CLOCK_SKEW_S = 60  # a cookie "from the future" by less than this is a clock step, not a forgery


class Auth:
    def __init__(self, settings: Settings):
        self._token = settings.resolved_api_token().encode()
        self.session_max_age_s = settings.session_max_age_s
        self.reads_require_token = settings.reads_require_token

    def token_matches(self, presented: str) -> bool:
        return hmac.compare_digest(presented.encode(), self._token)

    def _mac(self, issued_at: int) -> bytes:
        return hmac.new(self._token, _SESSION_CONTEXT + str(issued_at).encode(), hashlib.sha256).hexdigest().encode()

    def session_value(self, issued_at: float | None = None) -> str:
        """A new session cookie: `<issued at, unix seconds>.<HMAC-SHA256 of it keyed with the token>`."""
        issued = int(time.time() if issued_at is None else issued_at)
        return f"{issued}.{self._mac(issued).decode()}"

    def session_valid(self, cookie: str) -> bool:
        issued_text, _, mac = cookie.partition(".")
        if not (issued_text.isascii() and issued_text.isdigit() and len(issued_text) <= 12):
            return False
        issued = int(issued_text)
        if not hmac.compare_digest(mac.encode(), self._mac(issued)):
            return False
        age = time.time() - issued
        return -_CLOCK_SKEW_S <= age < self.session_max_age_s

    def authenticated(self, request: Request) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and value.strip() and self.token_matches(value.strip()):
            return True
        cookie = request.cookies.get(SESSION_COOKIE, "")
        return bool(cookie) and self.session_valid(cookie)


def get_auth(request: Request) -> Auth:
    return request.app.state.auth


AuthDep = Annotated[Auth, Depends(get_auth)]


def require_token(request: Request, auth: AuthDep) -> None:
    if not auth.authenticated(request):
        expired = SESSION_COOKIE in request.cookies and "authorization" not in request.headers
        raise HTTPException(
            401,
            "the session has expired (SPARK_CONTROL_SESSION_MAX_AGE) or is no longer valid: "
            "log in again with POST /api/session"
            if expired
            else "this endpoint needs the API token: send `Authorization: Bearer <SPARK_CONTROL_API_TOKEN>` "
            "or log in with POST /api/session",
            headers={"WWW-Authenticate": "Bearer"},
        )


def require_read(request: Request, auth: AuthDep) -> None:
    """Reads are open unless SPARK_CONTROL_READS_REQUIRE_TOKEN is set."""
    if auth.reads_require_token:
        require_token(request, auth)
