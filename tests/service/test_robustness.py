"""Bad input gets a clear 4xx in OpenAI's error shape, load gets 429, and nothing is left behind."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import httpx
import pytest
from openai import BadRequestError, OpenAI

from tests.service.conftest import MAX_UPLOAD_MB, Container

pytestmark = pytest.mark.integration
TRANSCRIPTIONS = "/v1/audio/transcriptions"
SPEAKERS = "/v1/audio/transcribe-with-speakers"


def post(url: str, path: str, content: bytes, name: str = "upload.wav", **form) -> httpx.Response:
    files = {"file": (name, io.BytesIO(content))}
    return httpx.post(f"{url}{path}", files=files, data={k: str(v) for k, v in form.items()}, timeout=120)


def assert_openai_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert error["type"] and error["code"]
    return error


def assert_still_ready(service: Container) -> None:
    health = service.health()
    assert health["status"] == "ready" and health["queue"]["running"] == 0, health


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("empty", lambda audio: b""),
        ("text", lambda audio: b"this is not audio at all, just some words in a text file\n" * 20),
        ("truncated-wav", lambda audio: (audio / "sentence.wav").read_bytes()[:30000]),
        ("truncated-m4a", lambda audio: (audio / "sentence.m4a").read_bytes()[:20000]),
        ("truncated-mp3", lambda audio: (audio / "sentence.mp3").read_bytes()[:20000]),
        ("truncated-ogg", lambda audio: (audio / "sentence.ogg").read_bytes()[:20000]),
        ("truncated-flac", lambda audio: (audio / "sentence.flac").read_bytes()[:60000]),
        ("truncated-webm", lambda audio: (audio / "sentence.webm").read_bytes()[:15000]),
        ("wav-header-only", lambda audio: (audio / "sentence.wav").read_bytes()[:44]),
    ],
)
def test_unusable_audio_is_a_clear_400(service: Container, audio: Path, name: str, make):
    for path in (TRANSCRIPTIONS, SPEAKERS):
        error = assert_openai_error(post(service.url, path, make(audio), f"{name}.bin"), 400)
        assert error["type"] == "invalid_request_error"
        assert any(w in error["message"] for w in ("empty", "decode", "truncated", "no audio")), error
    assert_still_ready(service)


@pytest.mark.parametrize(
    ("path", "form", "complaint"),
    [
        (SPEAKERS, {"min_speakers": 3, "max_speakers": 2}, "min_speakers"),
        (SPEAKERS, {"num_speakers": 0}, "num_speakers"),
        (SPEAKERS, {"max_speakers": "many"}, "max_speakers"),
        (TRANSCRIPTIONS, {"response_format": "docx"}, "response_format"),
        (TRANSCRIPTIONS, {"temperature": 7}, "temperature"),
        (TRANSCRIPTIONS, {"language": "klingon"}, "language"),
        (TRANSCRIPTIONS, {"language": "de"}, "English"),
        (TRANSCRIPTIONS, {"response_format": "json", "timestamp_granularities[]": "word"}, "verbose_json"),
    ],
)
def test_invalid_parameters_are_a_clear_400(service: Container, audio: Path, path: str, form: dict, complaint: str):
    error = assert_openai_error(post(service.url, path, (audio / "sentence.wav").read_bytes(), **form), 400)
    assert complaint in error["message"], error
    assert_still_ready(service)


def test_a_missing_file_is_a_400(url: str):
    response = httpx.post(f"{url}{TRANSCRIPTIONS}", data={"model": "tiny.en"}, timeout=30)
    assert "file" in assert_openai_error(response, 400)["message"]


def test_the_openai_client_raises_bad_request_with_the_message(url: str):
    client = OpenAI(base_url=f"{url}/v1", api_key="not-needed", max_retries=0)
    with pytest.raises(BadRequestError, match="decode"):
        client.audio.transcriptions.create(model="tiny.en", file=("notes.mp3", b"not an mp3 at all" * 100))


def leftovers(service: Container) -> tuple[list[str], list[str]]:
    """Files under /tmp, and files the service process holds open that are temporary or deleted."""
    files = service.exec("find", "/tmp", "-mindepth", "1").split()
    held = service.exec("find", "/proc/1/fd", "-lname", "/tmp/*", "-o", "-lname", "* (deleted)").split()
    return files, held


def test_an_upload_over_the_limit_is_413_before_it_is_processed(service: Container):
    before = leftovers(service)
    too_big = b"\0" * ((MAX_UPLOAD_MB << 20) + 1)
    for path in (TRANSCRIPTIONS, SPEAKERS):
        error = assert_openai_error(post(service.url, path, too_big), 413)
        assert f"{MAX_UPLOAD_MB} MB" in error["message"]
    assert_still_ready(service)
    assert leftovers(service) == before


def test_a_chunked_upload_over_the_limit_is_refused_as_it_arrives(service: Container):
    def chunked():  # no Content-Length: the service counts the body as it arrives
        yield b"--xyz\r\n" + b'Content-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'
        for _ in range(MAX_UPLOAD_MB * 4 + 4):
            yield b"\0" * (256 << 10)
        yield b"\r\n--xyz--\r\n"

    before = leftovers(service)
    try:
        response = httpx.post(
            f"{service.url}{TRANSCRIPTIONS}",
            content=chunked(),
            headers={"content-type": "multipart/form-data; boundary=xyz"},
            timeout=60,
        )
    except (httpx.RemoteProtocolError, httpx.WriteError, httpx.ReadError):
        # the one other acceptable refusal: the service stops reading and drops the connection (a disconnect
        # before the response, or a write or read on a reset socket); any other outcome fails the test
        pass
    else:
        error = assert_openai_error(response, 413)  # what this service sends, measured
        assert f"{MAX_UPLOAD_MB} MB" in error["message"]
    assert_still_ready(service)
    assert leftovers(service) == before


def test_a_burst_beyond_the_queue_gets_429_with_retry_after(service: Container, audio: Path):
    content = (audio / "dialogue.wav").read_bytes()
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def send():
        response = post(service.url, SPEAKERS, content, "dialogue.wav")
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=send) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) >= 2 and statuses.count(429) >= 1, statuses
    assert set(statuses) == {200, 429}
    for r in responses:
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1
            assert r.json()["error"]["code"] == "queue_full"
    assert_still_ready(service)
    assert service.health()["queue"] == {"running": 0, "waiting": 0, "limit": 1}


def test_no_temporary_file_survives_any_request(service: Container, audio: Path):
    before = service.exec("find", "/tmp", "-mindepth", "1").split()
    post(service.url, SPEAKERS, (audio / "dialogue.wav").read_bytes(), "dialogue.wav")
    post(service.url, TRANSCRIPTIONS, (audio / "sentence.m4a").read_bytes(), "sentence.m4a")
    post(service.url, TRANSCRIPTIONS, (audio / "sentence.m4a").read_bytes()[:20000], "broken.m4a")
    post(service.url, TRANSCRIPTIONS, b"", "empty.wav")
    post(service.url, SPEAKERS, (audio / "sentence.wav").read_bytes(), min_speakers=2, max_speakers=1)
    after = service.exec("find", "/tmp", "-mindepth", "1").split()
    assert after == before
    assert "whisperx-request" not in service.exec("find", "/", "-xdev", "-name", "whisperx-request-*")
