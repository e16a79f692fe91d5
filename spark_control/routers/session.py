"""Log in with the API token to get a session cookie (for the dashboard's EventSource and forms)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response

from spark_control.deps import AuthDep
from spark_control.schemas import SessionRequest, SessionView
from spark_control.security import SESSION_COOKIE

router = APIRouter(prefix="/api/session", tags=["session"])


@router.post("", status_code=204, response_class=Response, responses={429: {"description": "too many wrong tokens"}})
def log_in(body: SessionRequest, request: Request, auth: AuthDep) -> Response:
    client = request.client.host if request.client else "unknown"
    if (wait := auth.throttle.retry_after(client)) is not None:
        raise HTTPException(
            429, f"too many wrong tokens from {client}: try again in {wait} s", headers={"Retry-After": str(wait)}
        )
    if not auth.token_matches(body.token.get_secret_value()):
        auth.throttle.failed(client)
        raise HTTPException(401, "wrong API token", headers={"WWW-Authenticate": "Bearer"})
    response = Response(status_code=204)
    response.set_cookie(
        SESSION_COOKIE,
        auth.session_value(),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.delete("", status_code=204, response_class=Response)
def log_out(request: Request, auth: AuthDep) -> Response:
    """Sign out: the session is revoked on the server (a copy of the cookie stops working too)."""
    auth.revoke(request.cookies.get(SESSION_COOKIE, ""))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("", response_model=SessionView)
def whoami(request: Request, auth: AuthDep) -> SessionView:
    return SessionView(authenticated=auth.authenticated(request), reads_require_token=auth.reads_require_token)
