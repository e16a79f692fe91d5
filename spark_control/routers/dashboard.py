"""The dashboard: `GET /` and its static files (plain HTML, CSS and JavaScript modules, no build step)."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# The page loads nothing from elsewhere and renders untrusted text (transcripts, logs) only as text.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# no-cache = revalidate every time (ETag): after an upgrade the browser never runs yesterday's JavaScript.
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
ASSET_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


class DashboardAssets(StaticFiles):
    """StaticFiles that revalidate (ETag) instead of caching blindly."""

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(ASSET_HEADERS)
        return response


router = APIRouter(tags=["dashboard"])
router.mount("/static", DashboardAssets(directory=STATIC_DIR), name="static")


@router.get("/", include_in_schema=False)
def dashboard() -> FileResponse:
    """The Audio / Speech tab. The page itself holds no data: it reads everything from the API."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)
