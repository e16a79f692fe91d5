"""The audio proxy: WhisperX when it can diarize, the legacy service otherwise, the same answer shape."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from spark_control.security import SESSION_COOKIE
from spark_control.services import DEEP_CHECK_CLIP
from tests.control.helpers import API_TOKEN, LiveServer, dashboard_headers, wait_until
from tests.control.test_services import watchdog_rounds

CLIP = DEEP_CHECK_CLIP
TRANSCRIPT_KEYS = {"task", "text", "language", "duration", "segments", "speakers", "backend", "model", "timings"}


class FakeWhisperx:
    """An in-process WhisperX: /health as configured, transcriptions answered or failed as configured."""

    def __init__(self) -> None:
        self.health: dict[str, Any] = {"status": "ready", "whisper_loaded": True, "diarizer_loaded": True}
        self.answer: tuple[int, dict[str, Any], dict[str, str]] | None = None
        self.received: list[dict[str, Any]] = []
        self.app = FastAPI()

        @self.app.get("/health")
        def health() -> dict[str, Any]:
            return self.health

        @self.app.post("/v1/audio/transcribe-with-speakers")
        async def transcribe(request: Request) -> JSONResponse:
            form = await request.form()
            upload = form["file"]
            data = await upload.read()  # type: ignore[union-attr]
            self.received.append(
                {
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "filename": upload.filename,  # type: ignore[union-attr]
                    "fields": {k: v for k, v in form.items() if k != "file"},
                }
            )
            if self.answer:
                status, body, headers = self.answer
                return JSONResponse(body, status, headers=headers)
            return JSONResponse(
                {
                    "task": "transcribe",
                    "text": "whisperx heard it",
                    "language": "en",
                    "duration": 3.4,
                    "segments": [],
                    "speakers": [],
                    "backend": "whisperx",
                    "model": "tiny.en",
                    "timings": {"total_s": 0.1},
                }
            )


@pytest.fixture
def whisperx(serve) -> tuple[FakeWhisperx, LiveServer]:
    fake = FakeWhisperx()
    return fake, serve(fake.app)


def post_clip(server: LiveServer, **fields: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/audio/transcribe-with-speakers",
        files={"file": ("meeting.wav", CLIP.read_bytes(), "audio/wav")},
        data=fields,
        timeout=60,
    )


def legacy_requests(legacy: LiveServer) -> int:
    return httpx.get(f"{legacy.url}/_standin/stats").json()["transcriptions"]


Make = Callable[..., Any]


def test_whisperx_gets_the_upload_when_its_diarizer_is_loaded(make_settings, serve, whisperx, legacy):
    fake, wx = whisperx
    server = serve(make_settings(whisperx_url=wx.url, legacy_asr_url=legacy.url))
    response = post_clip(server, language="en", num_speakers="2", prompt="a meeting")
    assert response.status_code == 200
    assert response.headers["x-asr-backend"] == "whisperx"
    assert response.json()["backend"] == "whisperx"
    assert fake.received == [
        {
            "sha256": hashlib.sha256(CLIP.read_bytes()).hexdigest(),
            "filename": "meeting.wav",
            "fields": {"language": "en", "num_speakers": "2", "prompt": "a meeting"},
        }
    ]
    assert legacy_requests(legacy) == 0


def test_the_legacy_service_answers_while_whisperx_cannot_diarize(make_settings, serve, whisperx, legacy):
    fake, wx = whisperx
    fake.health = {**fake.health, "status": "loading", "diarizer_loaded": False}
    server = serve(make_settings(whisperx_url=wx.url, legacy_asr_url=legacy.url))
    response = post_clip(server, language="en")
    assert response.status_code == 200
    assert response.headers["x-asr-backend"] == "legacy"
    assert "diarizer not loaded" in response.headers["x-asr-fallback-reason"]
    body = response.json()
    assert set(body) == TRANSCRIPT_KEYS, "the same shape as WhisperX's"
    assert body["text"] == "The quick brown fox jumps over the lazy dog."
    assert fake.received == []


def test_a_whisperx_that_released_its_models_while_idle_still_gets_the_upload(make_settings, serve, whisperx, legacy):
    fake, wx = whisperx
    fake.health = {**fake.health, "status": "unloaded", "whisper_loaded": False, "diarizer_loaded": False}
    server = serve(make_settings(whisperx_url=wx.url, legacy_asr_url=legacy.url))
    response = post_clip(server, language="en")
    assert response.status_code == 200 and response.headers["x-asr-backend"] == "whisperx"
    assert len(fake.received) == 1 and legacy_requests(legacy) == 0, "it loads them again for the request"


def test_the_legacy_service_answers_while_whisperx_is_down(make_settings, serve, legacy):
    server = serve(make_settings(legacy_asr_url=legacy.url))  # nothing listens on the WhisperX URL
    response = post_clip(server)
    assert response.status_code == 200 and response.headers["x-asr-backend"] == "legacy"
    assert "whisperx health" in response.headers["x-asr-fallback-reason"]


def test_a_whisperx_5xx_is_retried_once_on_legacy(make_settings, serve, whisperx, legacy):
    fake, wx = whisperx
    fake.answer = (500, {"error": {"message": "CUDA out of memory", "type": "server_error", "code": "oom"}}, {})
    server = serve(make_settings(whisperx_url=wx.url, legacy_asr_url=legacy.url))
    response = post_clip(server)
    assert response.status_code == 200
    assert response.headers["x-asr-backend"] == "legacy"
    assert response.headers["x-asr-fallback-reason"] == "whisperx answered HTTP 500"
    assert len(fake.received) == 1 and legacy_requests(legacy) == 1


def test_a_whisperx_that_drops_the_connection_is_retried_on_legacy(make_settings, serve, dropping_whisperx, legacy):
    server = serve(make_settings(whisperx_url=dropping_whisperx, legacy_asr_url=legacy.url))
    response = post_clip(server)
    assert response.status_code == 200
    assert response.headers["x-asr-backend"] == "legacy"
    assert response.headers["x-asr-fallback-reason"].startswith("whisperx failed:")
    assert legacy_requests(legacy) == 1


def test_a_dropped_request_drops_the_cached_health_so_status_stops_saying_ready(
    make_settings, serve, dropping_whisperx, legacy
):
    """The proxy saw WhisperX die: the status route probes again instead of serving the sample from before."""
    server = serve(make_settings(whisperx_url=dropping_whisperx, legacy_asr_url=legacy.url, health_cache_s=60))
    before = httpx.get(f"{server.url}/api/whisperx/status").json()["checks"]["health"]
    assert (
        httpx.get(f"{server.url}/api/whisperx/status").json()["checks"]["health"]["checked_at"]
        == (before["checked_at"])
    ), "within SPARK_CONTROL_HEALTH_CACHE the status route answers from the cached sample"
    assert post_clip(server).headers["x-asr-fallback-reason"].startswith("whisperx failed:")
    after = httpx.get(f"{server.url}/api/whisperx/status").json()["checks"]["health"]
    assert after["checked_at"] > before["checked_at"] and after["age_s"] < 60, "probed after the failure"


@pytest.mark.parametrize(
    ("status", "headers"),
    [(400, {}), (413, {}), (429, {"Retry-After": "7"})],
)
def test_whisperx_answers_about_the_callers_request_are_passed_through(
    make_settings, serve, whisperx, legacy, status, headers
):
    fake, wx = whisperx
    error = {"error": {"message": "undecodable audio", "type": "invalid_request_error", "code": "bad_audio"}}
    fake.answer = (status, error, headers)
    server = serve(make_settings(whisperx_url=wx.url, legacy_asr_url=legacy.url))
    response = post_clip(server)
    assert response.status_code == status
    assert response.json() == error
    assert response.headers["x-asr-backend"] == "whisperx"
    if headers:
        assert response.headers["retry-after"] == "7"
    assert legacy_requests(legacy) == 0


def test_no_backend_is_a_502_in_the_openai_error_shape(make_settings, serve):
    server = serve(make_settings())
    response = post_clip(server)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "backend_unavailable"
    assert response.headers["x-asr-backend"] == "legacy"


def test_bad_uploads_get_a_clear_4xx(make_settings, serve, legacy):
    settings = make_settings(legacy_asr_url=legacy.url, proxy_max_upload_mb=1)
    server = serve(settings)
    url = f"{server.url}/api/audio/transcribe-with-speakers"
    as_json = httpx.post(url, json={"file": "x"}, timeout=10)
    assert as_json.status_code == 415 and "multipart/form-data" in as_json.json()["error"]["message"]
    empty = httpx.post(url, content=b"", headers={"content-type": "multipart/form-data; boundary=x"}, timeout=10)
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "empty_body"
    big = httpx.post(url, files={"file": ("big.wav", b"\0" * (2 << 20), "audio/wav")}, timeout=30)
    assert big.status_code == 413 and big.json()["error"]["code"] == "file_too_large"
    no_file = httpx.post(url, data={"language": "en"}, files={"other": ("x", b"1")}, timeout=10)
    assert no_file.status_code == 400, "the backend's own 4xx comes back"
    assert not list(settings.spool_dir.iterdir()), "no upload is left behind"


def test_an_upload_is_streamed_without_a_content_length(make_settings, serve, whisperx, legacy):
    """A chunked upload (no Content-Length) is spooled and forwarded with one."""
    fake, wx = whisperx
    server = serve(make_settings(whisperx_url=wx.url, legacy_asr_url=legacy.url))
    request = httpx.Request(
        "POST",
        f"{server.url}/api/audio/transcribe-with-speakers",
        files={"file": ("meeting.wav", CLIP.read_bytes(), "audio/wav")},
    )
    body = request.read()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 7000):
            yield body[start : start + 7000]

    response = httpx.post(request.url, content=chunks(), headers={"content-type": request.headers["content-type"]})
    assert response.status_code == 200 and response.headers["x-asr-backend"] == "whisperx"
    assert fake.received[0]["sha256"] == hashlib.sha256(CLIP.read_bytes()).hexdigest()


# -- floods and abandoned requests ------------------------------------------------------------------
class HoldingWhisperx:
    """A WhisperX that takes every upload and holds it, answering only when released; it notes each caller
    that went away while it held them (what a real WhisperX needs to know to drop the work)."""

    def __init__(self) -> None:
        self.held = 0
        self.abandoned = 0
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.app = FastAPI()

        @self.app.get("/health")
        def health() -> dict[str, Any]:
            return {"status": "ready", "whisper_loaded": True, "diarizer_loaded": True}

        @self.app.post("/v1/audio/transcribe-with-speakers")
        async def transcribe(request: Request) -> JSONResponse:
            await request.body()
            with self.lock:
                self.held += 1
            while not self.release.is_set():
                if await request.is_disconnected():
                    with self.lock:
                        self.abandoned += 1
                    return JSONResponse({}, 499)
                await asyncio.sleep(0.05)
            return JSONResponse({"text": "released", "segments": [], "speakers": [], "backend": "whisperx"})


@pytest.fixture
def holding(serve) -> Iterator[tuple[HoldingWhisperx, LiveServer]]:
    fake = HoldingWhisperx()
    yield fake, serve(fake.app)
    fake.release.set()


def test_a_caller_that_leaves_has_its_whisperx_request_closed(make_settings, serve, holding, legacy):
    fake, wx = holding
    server = serve(make_settings(whisperx_url=wx.url, legacy_asr_url=legacy.url))
    with pytest.raises(httpx.ReadTimeout):  # the caller gives up (a closed tab, a killed script)
        httpx.post(
            f"{server.url}/api/audio/transcribe-with-speakers",
            files={"file": ("meeting.wav", CLIP.read_bytes(), "audio/wav")},
            timeout=httpx.Timeout(10, read=2),
        )
    wait_until(lambda: fake.abandoned == 1, 30, 0.05)
    assert legacy_requests(legacy) == 0, "an abandoned request is not sent anywhere else"
    assert not list(server.app.state.settings.spool_dir.iterdir()), "its spooled upload is gone"


def test_a_whisperx_read_timeout_is_a_504_not_a_second_run_on_legacy(make_settings, serve, holding, legacy):
    fake, wx = holding
    server = serve(make_settings(whisperx_url=wx.url, legacy_asr_url=legacy.url, proxy_read_timeout_s=1))
    response = post_clip(server)
    assert response.status_code == 504 and response.json()["error"]["code"] == "upstream_timeout"
    assert response.headers["x-asr-backend"] == "whisperx"
    assert fake.held == 1 and legacy_requests(legacy) == 0, "the long file is not run twice"


def test_a_flood_of_uploads_is_capped_and_never_starves_the_health_checks(make_settings, serve, holding, legacy):
    """More uploads at once than the proxy's HTTP pool holds: the excess gets 429 before anything is spooled,
    and /health keeps being checked on its own pool (no false failure, no watchdog restart)."""
    fake, wx = holding
    settings = make_settings(
        whisperx_url=wx.url,
        legacy_asr_url=legacy.url,
        proxy_max_concurrent=4,
        watchdog_enabled=True,
        watchdog_interval_s=0.2,
        watchdog_failures=2,
        health_timeout_s=1.0,
    )
    server = serve(settings)
    flood = 70  # beyond the 64 connections of the proxy's pool
    with ThreadPoolExecutor(flood) as pool:
        answers = [pool.submit(post_clip, server) for _ in range(flood)]
        wait_until(lambda: fake.held == 4 and sum(a.done() for a in answers) == flood - 4, 60, 0.05)
        refused = [a.result() for a in answers if a.done()]
        assert {r.status_code for r in refused} == {429}
        assert {r.json()["error"]["code"] for r in refused} == {"too_many_uploads"}
        assert int(refused[0].headers["retry-after"]) >= 1
        assert not list(settings.spool_dir.iterdir()), "the four taken uploads are small: in memory, not on disk"
        with httpx.Client(base_url=server.url, timeout=10) as client:
            watched = watchdog_rounds(client, "parakeet", 5)
            status = client.get("/api/whisperx/status").json()
        assert status["healthy"], status["checks"]["health"]
        assert watched["restarts"] == [] and watched["consecutive_failures"] == 0
        held = [a for a in answers if not a.done()]
        fake.release.set()
        taken = [a.result() for a in held]
    assert [r.json()["text"] for r in taken] == ["released"] * 4
    assert legacy_requests(legacy) == 0


def test_an_audio_token_when_set_guards_the_proxy_in_the_openai_error_shape(make_settings, serve, legacy):
    audio_token = "audio-token-for-the-lab-0123456789"
    server = serve(make_settings(legacy_asr_url=legacy.url, audio_token=audio_token))
    url = f"{server.url}/api/audio/transcribe-with-speakers"

    def post(headers: dict[str, str], cookies: dict[str, str] | None = None) -> httpx.Response:
        clip = {"file": ("meeting.wav", CLIP.read_bytes(), "audio/wav")}
        return httpx.post(url, files=clip, headers=headers, cookies=cookies, timeout=60)

    for refused in (post({}), post({"Authorization": "Bearer not-the-token"})):
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert refused.json()["error"]["code"] == "invalid_api_key"
        assert "SPARK_CONTROL_AUDIO_TOKEN" in refused.json()["error"]["message"]
    assert post({"Authorization": f"Bearer {audio_token}"}).status_code == 200
    assert post({"Authorization": f"Bearer {API_TOKEN}"}).status_code == 200, "the API token also transcribes"
    session = httpx.post(f"{server.url}/api/session", json={"token": API_TOKEN}, timeout=10).cookies[SESSION_COOKIE]
    assert post(dashboard_headers(server.url), {SESSION_COOKIE: session}).status_code == 200, "the dashboard"
    assert post({}, {SESSION_COOKIE: session}).status_code == 403, "the cookie alone, from another page: CSRF"
    assert legacy_requests(legacy) == 3
    assert not list(server.app.state.settings.spool_dir.iterdir()), "a refused upload is not spooled"
