"""Helpers shared by the spark-control tests (fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from httpx_sse import connect_sse

API_TOKEN = "control-test-token-5f1c9a7e2b"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def dashboard_headers(base_url: str) -> dict[str, str]:
    """What the dashboard's own requests carry besides the cookie (security.py: CSRF)."""
    return {"X-Spark-Control": "dashboard", "Origin": base_url}


HERE = Path(__file__).parent
STANDIN = HERE.parent / "images" / "spark2-standin" / "standin.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """A real uvicorn server in a thread: real sockets, real streaming, real disconnects."""

    def __init__(self, app: Any, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = app
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.server.started:
                return self
            time.sleep(0.02)
        raise RuntimeError("uvicorn did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        body = client.get(f"/api/jobs/{job_id}").json()
        return body if body["state"] != "running" else None

    return wait_until(finished, timeout)


@contextlib.contextmanager
def client_for(server: LiveServer, **kwargs: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30, **kwargs) as client:
        yield client


def read_until(client: httpx.Client, url: str, stop, headers: dict[str, str] | None = None) -> list[dict]:
    """Read events until stop(event) is true, then drop the connection (a client going away mid-stream)."""
    got = []
    with connect_sse(client, "GET", url, headers=headers or {}) as source:
        for event in source.iter_sse():
            if not event.data:
                continue
            got.append({"id": int(event.id), "event": event.event, "data": json.loads(event.data)})
            if stop(got[-1]):
                break
    return got


def repeat_wav(source: Path, target: Path, times: int) -> Path:
    """`source` `times` over, as one WAV: a long recording from a short clip."""
    with wave.open(str(source)) as clip:
        params, frames = clip.getparams(), clip.readframes(clip.getnframes())
    with wave.open(str(target), "wb") as out:
        out.setparams(params)
        out.writeframes(frames * times)
    return target


def cpu_whisperx(model_bundle: Path) -> dict[str, Any]:
    """The settings every real WhisperX install in these tests shares: the offline bundle's tiny.en on the
    CPU image built FROM the local base, with this machine's extra CA certificates."""
    certs = os.environ.get("EXTRA_CA_CERTS", "/usr/local/share/ca-certificates").split()
    return {
        "whisperx_model_bundle": model_bundle,
        "whisperx_bundle_model": "tiny.en",
        "whisperx_base_image": os.environ.get("BASE_IMAGE_LOCAL", "spark-inference/debian:bookworm"),
        "whisperx_gpus": "",
        "whisperx_memory": "4g",
        "whisperx_extra_ca_certs": [p for p in certs if Path(p).exists()],
    }
