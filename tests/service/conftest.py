"""The service image under test: one container per session, CPU, offline model bundle, tiny.en.

The unit tests here import the service's numpy-only modules from whisperx_container/app directly.

`make service-tests` builds the image first (`make image`); SERVICE_IMAGE names it. Each container
this suite starts is named svc-test-* and removed at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

# The service's own package (`app`), for the unit tests of its numpy-only parts (windows, speaker linking).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "whisperx_container"))

IMAGE = os.environ.get("SERVICE_IMAGE", "spark-inference/whisperx-asr:cpu")
QUEUE_LIMIT = 1
MAX_UPLOAD_MB = 2


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


@dataclass
class Container:
    name: str
    url: str

    def exec(self, *cmd: str) -> str:
        return docker("exec", self.name, *cmd).stdout

    def health(self) -> dict:
        return httpx.get(f"{self.url}/health", timeout=10).json()

    def logs(self) -> str:
        proc = docker("logs", self.name, check=False)
        return proc.stdout + proc.stderr


def start(model_bundle: Path, *extra: str, env: dict[str, str] | None = None, publish: bool = True) -> Container:
    """Run the image detached with the bundle mounted read-only at /models; publish 8002 on a free local port."""
    if docker("image", "inspect", IMAGE, check=False).returncode != 0:
        pytest.fail(f"image {IMAGE} is missing: run `make image`")
    name = f"svc-test-{uuid.uuid4().hex[:8]}"
    settings = {"WHISPER_MODEL": "tiny.en", "WHISPERX_MODEL_BUNDLE": "/models", **(env or {})}
    cmd = ["run", "-d", "--name", name, "-v", f"{model_bundle}:/models:ro"]
    cmd += [a for k, v in settings.items() for a in ("-e", f"{k}={v}")]
    if publish:
        cmd += ["-p", "127.0.0.1::8002"]
    docker(*cmd, *extra, IMAGE)
    url = ""
    if publish:
        port = docker("port", name, "8002/tcp").stdout.split("\n")[0].rsplit(":", 1)[1]
        url = f"http://127.0.0.1:{port}"
    return Container(name, url)


def transcribe(url: str, path: Path, *, timeout: float = 180, **form) -> dict:
    """The diarized transcript of a file from /v1/audio/transcribe-with-speakers (a 200 is asserted)."""
    with path.open("rb") as f:
        response = httpx.post(
            f"{url}/v1/audio/transcribe-with-speakers",
            files={"file": (path.name, f)},
            data={k: str(v) for k, v in form.items()},
            timeout=timeout,
        )
    assert response.status_code == 200, response.text
    return response.json()


def remove(container: Container) -> None:
    docker("rm", "-f", container.name, check=False)


def serving(model_bundle: Path, env: dict[str, str]) -> Iterator[Container]:
    """A ready container with these settings, removed afterwards (`yield from` it in a fixture)."""
    container = start(model_bundle, env=env)
    try:
        assert wait_for(container, {"ready", "error"})["status"] == "ready", container.logs()[-3000:]
        yield container
    finally:
        remove(container)


def repeated(clip: Path, times: int, target: Path) -> Path:
    """A WAV of `clip` said `times` times over (a long recording out of a short fixture)."""
    with wave.open(str(clip)) as source:
        params, frames = source.getparams(), source.readframes(source.getnframes())
    with wave.open(str(target), "wb") as out:
        out.setparams(params)
        out.writeframes(frames * times)
    return target


def wait_for(container: Container, statuses: set[str], timeout: float = 180) -> dict:
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            last = container.health()
            if last["status"] in statuses:
                return last
        except (httpx.HTTPError, json.JSONDecodeError):
            if docker("inspect", "--format", "{{.State.Running}}", container.name).stdout.strip() != "true":
                raise AssertionError(f"the container exited:\n{container.logs()[-3000:]}") from None
        time.sleep(0.25)
    raise AssertionError(f"/health never reached {statuses}: last {last}\n{container.logs()[-3000:]}")


@pytest.fixture(scope="session")
def service(model_bundle: Path) -> Iterator[Container]:
    """The service as configured for the suite: tiny.en from the bundle, a small queue and upload limit."""
    container = start(
        model_bundle,
        env={"WHISPERX_QUEUE_LIMIT": str(QUEUE_LIMIT), "WHISPERX_MAX_UPLOAD_MB": str(MAX_UPLOAD_MB)},
    )
    try:
        wait_for(container, {"ready", "error"})
        assert container.health()["status"] == "ready", container.logs()[-3000:]
        yield container
    finally:
        remove(container)


@pytest.fixture(scope="session")
def url(service: Container) -> str:
    return service.url


@pytest.fixture(scope="session")
def pyannote_sample(service: Container, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pyannote's bundled sample (30 s, two speakers) with its reference RTTM, copied out of the image."""
    where = service.exec("python", "-c", "import pyannote.audio, os; print(os.path.dirname(pyannote.audio.__file__))")
    dest = tmp_path_factory.mktemp("pyannote-sample")
    docker("cp", f"{service.name}:{where.strip()}/sample/.", str(dest))
    assert (dest / "sample.wav").is_file() and (dest / "sample.rttm").is_file()
    return dest
