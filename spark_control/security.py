"""Who may do what: the API token, the dashboard's session cookie, and the browser-borne attacks.

The token: mutating endpoints require it, as a Bearer header or as the session cookie. A browser's
EventSource cannot send headers, so a dashboard logs in once (POST /api/session with the token) and
gets an HttpOnly, SameSite=Strict cookie that every later request, streams included, carries. The
cookie holds when it was issued, a random session id and an HMAC of both keyed with the token, never
the token itself; it is refused once older than SPARK_CONTROL_SESSION_MAX_AGE, when the token
changes, or once signed out (the session id is revoked on the server, so a copied cookie dies with
the sign-out too). Comparisons are constant-time.

A hostile page in the operator's browser: SameSite=Strict does not stop a page on another port of
the same host (same site, other origin) from sending the cookie with a form POST. So a request that
is authenticated by the cookie and changes something must also carry the dashboard's own header
(CSRF_HEADER: a page elsewhere cannot set it without a CORS preflight, which spark-control never
grants) and come from this origin (Origin, or Sec-Fetch-Site: same-origin). DNS rebinding (a name
the attacker controls, resolved to this machine) is refused by the Host allowlist (trusted_hosts).

Guessing the token: it has at least 24 characters (config.py), and POST /api/session allows a few
wrong tokens per client address and minute (LoginThrottle), then answers 429.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import socket
import time
from collections import deque
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import psutil
from fastapi import Depends, HTTPException, Request

from spark_control.config import Settings, write_private

SESSION_COOKIE = "spark_control_session"
CSRF_HEADER = "X-Spark-Control"  # the dashboard sends it on every request (static/js/api.js)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SESSION_CONTEXT = b"spark-control session v3 "
_CLOCK_SKEW_S = 60  # a cookie "from the future" by less than this is a clock step, not a forgery


class RevokedSessions:
    """Session ids signed out before their cookie expired, kept (on disk) until it would have expired."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self._until: dict[str, float] = {k: float(v) for k, v in json.loads(path.read_text()).items()}
        except (OSError, ValueError, TypeError, AttributeError):
            self._until = {}

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._until

    def add(self, session_id: str, until: float) -> None:
        now = time.time()
        self._until = {k: v for k, v in self._until.items() if v > now}
        self._until[session_id] = until
        write_private(self.path, json.dumps(self._until))


class Auth:
    def __init__(self, settings: Settings):
        self._token = settings.resolved_api_token().encode()
        self.session_max_age_s = settings.session_max_age_s
        self.reads_require_token = settings.reads_require_token
        self._audio_token = settings.audio_token.get_secret_value().encode() if settings.audio_token else None
        self.revoked = RevokedSessions(settings.data_dir / "state" / "revoked-sessions.json")
        self.throttle = LoginThrottle(settings.login_attempts_per_minute)

    def token_matches(self, presented: str) -> bool:
        return hmac.compare_digest(presented.encode(), self._token)

    def _mac(self, issued_at: int, session_id: str) -> bytes:
        message = _SESSION_CONTEXT + f"{issued_at}.{session_id}".encode()
        return hmac.new(self._token, message, hashlib.sha256).hexdigest().encode()

    def session_value(self, issued_at: float | None = None) -> str:
        """A new session cookie: `<issued at, unix s>.<session id>.<HMAC-SHA256 of both keyed with the token>`."""
        issued = int(time.time() if issued_at is None else issued_at)
        session_id = secrets.token_hex(16)
        return f"{issued}.{session_id}.{self._mac(issued, session_id).decode()}"

    def _session(self, cookie: str) -> tuple[int, str] | None:
        """(issued at, session id) of a genuine, unexpired, not signed-out cookie; None otherwise."""
        issued_text, _, rest = cookie.partition(".")
        session_id, _, mac = rest.partition(".")
        if not (issued_text.isascii() and issued_text.isdigit() and len(issued_text) <= 12):
            return None
        issued = int(issued_text)
        if not hmac.compare_digest(mac.encode(), self._mac(issued, session_id)):
            return None
        age = time.time() - issued
        if not -_CLOCK_SKEW_S <= age < self.session_max_age_s or session_id in self.revoked:
            return None
        return issued, session_id

    def session_valid(self, cookie: str) -> bool:
        return self._session(cookie) is not None

    def revoke(self, cookie: str) -> None:
        """Sign a session out on the server: its cookie is refused from now on, wherever it was copied to."""
        session = self._session(cookie)
        if session:
            self.revoked.add(session[1], session[0] + self.session_max_age_s + _CLOCK_SKEW_S)

    def how(self, request: Request) -> Literal["bearer", "cookie"] | None:
        """How the request proves it holds the token: the Bearer header, the session cookie, or not at all."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and value.strip() and self.token_matches(value.strip()):
            return "bearer"
        cookie = request.cookies.get(SESSION_COOKIE, "")
        return "cookie" if cookie and self.session_valid(cookie) else None

    def authenticated(self, request: Request) -> bool:
        return self.how(request) is not None

    @property
    def audio_token_required(self) -> bool:
        return self._audio_token is not None

    def bearer_may_transcribe(self, request: Request) -> bool:
        """A Bearer header with the audio token or the API token."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        presented = value.strip().encode()
        if scheme.lower() != "bearer" or not presented:
            return False
        return bool(self._audio_token and hmac.compare_digest(presented, self._audio_token)) or self.token_matches(
            value.strip()
        )


class AudioTokenMissing(Exception):
    """No valid SPARK_CONTROL_AUDIO_TOKEN (errors.py answers 401 in the OpenAI error shape)."""


class LoginThrottle:
    """At most `per_minute` wrong tokens per client address in any 60 s; then 429 until the oldest ages out."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str) -> deque[float]:
        failures = self._failures.setdefault(client, deque())
        while failures and failures[0] <= time.monotonic() - 60:
            failures.popleft()
        if not failures:
            del self._failures[client]  # no memory kept for clients that stopped guessing
            return deque()
        return failures

    def retry_after(self, client: str) -> int | None:
        """Seconds until `client` may try again, or None when it may now."""
        failures = self._recent(client)
        if len(failures) < self.per_minute:
            return None
        return max(1, int(failures[0] + 60 - time.monotonic()) + 1)

    def failed(self, client: str) -> None:
        self._failures.setdefault(client, deque()).append(time.monotonic())


def cross_site(request: Request) -> str | None:
    """Why a cookie-authenticated request that changes something may come from another site's page."""
    if CSRF_HEADER.lower() not in request.headers:
        return f"the request lacks the dashboard's {CSRF_HEADER} header"
    origin = request.headers.get("origin")
    if origin is not None:
        if urlsplit(origin).netloc != request.headers.get("host"):
            return f"it comes from another origin ({origin[:100]})"
        return None
    if request.headers.get("sec-fetch-site") == "same-origin":
        return None
    return "it names no origin (Origin or Sec-Fetch-Site: same-origin)"


def trusted_hosts(settings: Settings) -> list[str]:
    """The Host names spark-control answers to: this machine's names and addresses, plus ALLOWED_HOSTS.

    A DNS rebinding attack reaches it under a name the attacker controls, which is in neither.
    """
    if "*" in settings.allowed_hosts:
        return ["*"]
    names = {"localhost", "127.0.0.1", "::1", socket.gethostname(), socket.getfqdn(), settings.host}
    for addresses in psutil.net_if_addrs().values():
        names.update(a.address.split("%")[0] for a in addresses if a.family in (socket.AF_INET, socket.AF_INET6))
    names.update(settings.allowed_hosts)
    return sorted(n for n in names if n and n not in ("0.0.0.0", "::"))  # noqa: S104 - wildcard binds, not names


def get_auth(request: Request) -> Auth:
    return request.app.state.auth


AuthDep = Annotated[Auth, Depends(get_auth)]


def require_token(request: Request, auth: AuthDep) -> None:
    how = auth.how(request)
    if how is None:
        expired = SESSION_COOKIE in request.cookies and "authorization" not in request.headers
        raise HTTPException(
            401,
            "the session has expired (SPARK_CONTROL_SESSION_MAX_AGE), was signed out or is no longer valid: "
            "log in again with POST /api/session"
            if expired
            else "this endpoint needs the API token: send `Authorization: Bearer <SPARK_CONTROL_API_TOKEN>` "
            "or log in with POST /api/session",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if how == "cookie" and request.method not in SAFE_METHODS and (why := cross_site(request)):
        raise HTTPException(403, f"refused as a possible cross-site request: {why}; API clients send the Bearer token")


def require_audio(request: Request, auth: AuthDep) -> None:
    """The audio endpoints: open unless SPARK_CONTROL_AUDIO_TOKEN is set; then that token, the API token or
    a dashboard session (with the CSRF rules of any change: a read, such as a job's event stream, which an
    EventSource cannot add a header to, is one another site's page cannot read). Refused in the OpenAI
    error shape (401)."""
    if not auth.audio_token_required or auth.bearer_may_transcribe(request):
        return
    if auth.how(request) != "cookie":
        raise AudioTokenMissing
    if request.method not in SAFE_METHODS and (why := cross_site(request)):
        raise HTTPException(403, f"refused as a possible cross-site request: {why}")


def require_read(request: Request, auth: AuthDep) -> None:
    """Reads are open unless SPARK_CONTROL_READS_REQUIRE_TOKEN is set."""
    if auth.reads_require_token:
        require_token(request, auth)
