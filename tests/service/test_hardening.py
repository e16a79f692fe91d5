"""The service attacked from the LAN: each test makes the attack and checks that it cost nothing and lost nothing.

One container for the module, as an operator hardens it: an API key (WHISPERX_API_KEY_FILE, a mounted file),
a queue of one, short diarization windows (so a running job stops soon after its caller leaves) and a one-hour
cap on declared audio.
"""

from __future__ import annotations

import io
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import AuthenticationError, OpenAI

from tests.service.conftest import Container, docker, remove, repeated, start, wait_for
from tests.service.test_audio_decoding import SBAGEN, silence, wav_header

pytestmark = pytest.mark.integration
API_KEY = "wx-test-key-9d1f0c7a5e3b48f2a6c1d0e9"
SPEAKERS = "/v1/audio/transcribe-with-speakers"
TRANSCRIPTIONS = "/v1/audio/transcriptions"
MAX_AUDIO_S = 3600
KEY = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def guarded(model_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    secrets = tmp_path_factory.mktemp("secrets")
    (secrets / "api_key").write_text(API_KEY + "\n")
    (secrets / "api_key").chmod(0o644)  # read by the container's user; on a real host the role makes it 0600
    container = start(
        model_bundle,
        "-v", f"{secrets / 'api_key'}:/run/secrets/api_key:ro",
        env={
            "WHISPERX_API_KEY_FILE": "/run/secrets/api_key",
            "WHISPERX_QUEUE_LIMIT": "1",
            "WHISPERX_WINDOW_S": "60",
            "WHISPERX_MAX_AUDIO_S": str(MAX_AUDIO_S),
        },
    )  # fmt: skip
    try:
        wait_for(container, {"ready", "error"})
        assert container.health()["status"] == "ready", container.logs()[-3000:]
        yield container
    finally:
        remove(container)


def post(service: Container, path: str, content: bytes, name: str = "upload.wav", **kw) -> httpx.Response:
    files = {"file": (name, io.BytesIO(content))}
    return httpx.post(f"{service.url}{path}", files=files, headers=KEY, timeout=120, **kw)


def tmp_files(service: Container) -> list[str]:
    return service.exec("find", "/tmp", "-mindepth", "1").split()


def decoded_requests(service: Container) -> int:
    """Requests whose upload is decoded and gone from /tmp (only their PCM left)."""
    files = tmp_files(service)
    pcm = [f for f in files if f.startswith("/tmp/whisperx-request-") and f.endswith("/audio.s16le")]
    uploads = [f for f in files if f.startswith("/tmp/whisperx-request-") and f.endswith("/upload")]
    return len(pcm) if not uploads else -1


def metric(service: Container, name: str) -> float:
    text = httpx.get(f"{service.url}/metrics", headers=KEY, timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


# -- the API key ------------------------------------------------------------------------------------------
def test_without_the_key_only_health_answers(guarded: Container, audio: Path):
    assert httpx.get(f"{guarded.url}/health", timeout=10).json()["status"] == "ready"
    for method, path in (("GET", "/v1/models"), ("GET", "/metrics"), ("POST", SPEAKERS), ("POST", TRANSCRIPTIONS)):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}):
            response = httpx.request(method, f"{guarded.url}{path}", headers=headers, timeout=10)
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(f"{guarded.url}/v1/models", headers=KEY, timeout=10).status_code == 200


def test_the_official_openai_client_works_with_the_key_and_fails_clearly_without(guarded: Container, audio: Path):
    good = OpenAI(base_url=f"{guarded.url}/v1", api_key=API_KEY, max_retries=0)
    with (audio / "sentence.wav").open("rb") as f:
        assert "budget" in good.audio.transcriptions.create(model="tiny.en", file=f).text.lower()
    bad = OpenAI(base_url=f"{guarded.url}/v1", api_key="not-the-key", max_retries=0)
    with pytest.raises(AuthenticationError), (audio / "sentence.wav").open("rb") as f:
        bad.audio.transcriptions.create(model="tiny.en", file=f)


def test_the_key_appears_nowhere_in_docker_inspect(guarded: Container):
    inspect = docker("inspect", guarded.name).stdout
    assert API_KEY not in inspect and "/run/secrets/api_key" in inspect


# -- decode bombs ---------------------------------------------------------------------------------------------
def test_decode_bombs_are_refused_within_seconds_and_leave_nothing(guarded: Container, audio: Path, tmp_path: Path):
    inside = "/srv/app/__init__.py"  # a local file a playlist or concat list would make ffmpeg read
    crafted = {
        "sbagen.sbg": (SBAGEN, "not an audio or video file"),
        "1hz.wav": (wav_header(1, 1000) + b"\0" * 1000, "sample rate is 1 Hz"),
        "list.m3u8": (f"#EXTM3U\n#EXTINF:5,\nfile://{inside}\n".encode(), "not an audio or video file"),
        "list.ffconcat": (f"ffconcat version 1.0\nfile '{inside}'\n".encode(), "not an audio or video file"),
        "long.flac": (silence(tmp_path / "long.flac", MAX_AUDIO_S + 60).read_bytes(), "WHISPERX_MAX_AUDIO_S"),
    }
    before = tmp_files(guarded)
    for name, (content, why) in crafted.items():
        for path in (SPEAKERS, TRANSCRIPTIONS):
            began = time.monotonic()
            response = post(guarded, path, content, name)
            assert response.status_code == 400, (name, response.text)
            assert why in response.json()["error"]["message"], (name, response.json())
            assert time.monotonic() - began < 60, f"{name}: refused before any long decode"
    assert tmp_files(guarded) == before
    assert guarded.health()["status"] == "ready"


# -- a full queue and callers that leave -----------------------------------------------------------------------
def abandon(service: Container, clip: Path) -> subprocess.Popen:
    """A caller that uploads a long file and goes away once it sees its request queued or running."""
    script = (
        "import socket, sys, httpx\n"
        f"with open({str(clip)!r}, 'rb') as f: data = f.read()\n"
        "try:\n"
        f"    httpx.post({service.url + SPEAKERS!r}, files={{'file': ('long.wav', data)}}, headers={KEY!r},"
        " timeout=httpx.Timeout(30, read=float(sys.argv[1])))\n"
        "except httpx.ReadTimeout:\n"
        "    pass\n"
    )
    return subprocess.Popen([sys.executable, "-c", script, "3600"])


def queue(service: Container) -> dict:
    return service.health()["queue"]


def wait(predicate, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.2)


def answer_before_body(service: Container, length: int) -> bytes:
    """Send a request's head and a tenth of its body, then read: what the service answers before the rest."""
    host, port = service.url.removeprefix("http://").split(":")
    head = (
        f"POST {SPEAKERS} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {API_KEY}\r\n"
        f"Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: {length}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=60) as conn:
        conn.sendall(head + b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n')
        conn.sendall(b"\0" * (length // 10))
        return read_response(conn)


def read_response(conn: socket.socket) -> bytes:
    """One HTTP response off a socket: its head and as much body as its Content-Length says."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1)) if b"ontent-length" in head else 0
    while len(body) < length and (chunk := conn.recv(65536)):
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_full_queue_answers_before_the_upload_and_abandoned_callers_free_it(
    guarded: Container, audio: Path, tmp_path: Path
):
    clip = repeated(audio / "dialogue.wav", 30, tmp_path / "long.wav")  # 30 dialogues: minutes of work, many windows
    done_before = metric(guarded, 'whisperx_requests_total{endpoint="transcribe-with-speakers",status="200"}')
    callers = [abandon(guarded, clip)]
    wait(lambda: queue(guarded)["running"] == 1)
    callers.append(abandon(guarded, clip))
    wait(lambda: queue(guarded) == {"running": 1, "waiting": 1, "limit": 1})

    # A third caller: refused before its upload is read, so the refusal costs no disk. (First the two taken
    # requests settle: the waiting one decodes its upload while it waits.)
    wait(lambda: decoded_requests(guarded) == 2)
    files_before = tmp_files(guarded)
    answer = answer_before_body(guarded, 1 << 20)
    assert answer.startswith(b"HTTP/1.1 429"), answer[:200]
    assert b"queue_full" in answer and re.search(rb"(?i)retry-after: \d+", answer)
    assert tmp_files(guarded) == files_before

    # Both callers go away: the waiting one leaves the queue, the running one stops at its next window.
    for caller in callers:
        caller.kill()
        caller.wait()
    wait(lambda: queue(guarded) == {"running": 0, "waiting": 0, "limit": 1}, timeout=300)
    dropped = metric(guarded, 'whisperx_requests_total{endpoint="transcribe-with-speakers",status="499"}')
    assert dropped == 2, "both abandoned requests ended as dropped, not transcribed"
    assert metric(guarded, 'whisperx_requests_total{endpoint="transcribe-with-speakers",status="200"}') == done_before
    assert guarded.logs().count("the caller went away: its transcription was dropped") == 2
    assert post(guarded, SPEAKERS, (audio / "sentence.wav").read_bytes()).status_code == 200, "it serves again"


def test_a_caller_without_the_key_is_refused_before_its_upload(guarded: Container):
    host, port = guarded.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as conn:
        conn.sendall(
            f"POST {SPEAKERS} HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary=xyz\r\n"
            f"Content-Length: {1 << 20}\r\n\r\n".encode()
            + b"\0" * 4096
        )
        answer = read_response(conn)
    assert answer.startswith(b"HTTP/1.1 401") and b"invalid_api_key" in answer, answer[:300]


def test_request_files_a_kill_left_behind_are_removed_at_the_next_start(guarded: Container):
    guarded.exec("mkdir", "-p", "/tmp/whisperx-request-left-by-a-kill")
    guarded.exec("dd", "if=/dev/zero", "of=/tmp/whisperx-request-left-by-a-kill/audio.s16le", "bs=1M", "count=8")
    docker("kill", guarded.name)
    docker("start", guarded.name)  # docker keeps the writable layer: the files are still there
    port = docker("port", guarded.name, "8002/tcp").stdout.split("\n")[0].rsplit(":", 1)[1]
    restarted = Container(guarded.name, f"http://127.0.0.1:{port}")
    wait_for(restarted, {"ready", "error"})
    assert "whisperx-request-left-by-a-kill" not in " ".join(tmp_files(restarted))
