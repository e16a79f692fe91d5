"""Errors in OpenAI's shape: {"error": {"message", "type", "code"}} with a 4xx for the caller's mistakes."""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class APIError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", code: str = "invalid_request",
                 headers: dict[str, str] | None = None):  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.headers = status, message, type_, code, headers or {}


def bad_request(message: str, code: str = "invalid_value") -> APIError:
    return APIError(400, message, code=code)


def error_response(status: int, message: str, type_: str, code: str, headers: dict | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": type_, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


async def refuse(
    receive,
    send,
    status: int,
    message: str,
    type_: str,
    code: str,
    headers: dict[str, str] | None = None,
    *,
    drain_limit: int = 0,
    close: bool = False,
) -> None:
    """Answer an HTTP request from a middleware, in the OpenAI error shape, without storing its body.

    By default the answer goes out at once, before the body is read; the server then reads the rest of the
    body and throws it away as it arrives (the connection stays open for it), so the client gets the answer
    and no reset. `drain_limit` reads up to that many bytes first; `close` ends the connection after it.
    """
    drained = 0
    while drained < drain_limit:
        message_in = await receive()
        if message_in["type"] != "http.request":
            break
        drained += len(message_in.get("body", b""))
        if not message_in.get("more_body"):
            break
    body = json.dumps({"error": {"message": message, "type": type_, "code": code}}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        raw.append((b"connection", b"close"))
    raw += [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def install(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(_: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.type, exc.code, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query"))
            problems.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return error_response(400, "; ".join(problems) or "invalid request", "invalid_request_error", "invalid_value")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        type_ = "invalid_request_error" if exc.status_code < 500 else "server_error"
        code = {404: "not_found", 405: "method_not_allowed", 413: "file_too_large"}.get(exc.status_code, "error")
        return error_response(exc.status_code, str(exc.detail), type_, code, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error_response(500, f"internal error: {type(exc).__name__}", "server_error", "internal_error")
