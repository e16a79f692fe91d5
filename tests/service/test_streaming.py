"""stream=true on /v1/audio/transcriptions through the official openai client: one delta per window as soon
as that window is final, segment events for diarized_json, a done event with the text of the plain request,
and a caller who leaves mid-stream stops the run. One container with 60 s windows and a recording of three."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from tests.service.conftest import Container, repeated, serving

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def windowed(model_bundle: Path) -> Iterator[Container]:
    yield from serving(model_bundle, {"WHISPERX_WINDOW_S": "60"})


@pytest.fixture(scope="module")
def meeting(audio: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # about 2.6 minutes: three 60 s windows
    return repeated(audio / "dialogue.wav", 4, tmp_path_factory.mktemp("meeting") / "meeting.wav")


@pytest.fixture(scope="module")
def client(windowed: Container) -> OpenAI:
    return OpenAI(base_url=f"{windowed.url}/v1", api_key="not-needed", max_retries=0, timeout=600)


def running(container: Container) -> int:
    return container.health()["queue"]["running"]


def test_each_windows_text_arrives_as_it_is_final(client: OpenAI, windowed: Container, meeting: Path):
    with meeting.open("rb") as f:
        plain = client.audio.transcriptions.create(model="tiny.en", file=f)
    deltas, busy_at_first, done = [], None, None
    with meeting.open("rb") as f:
        for event in client.audio.transcriptions.create(model="tiny.en", file=f, stream=True):
            if event.type == "transcript.text.delta":
                if not deltas:
                    busy_at_first = running(windowed)
                deltas.append(event.delta)
            elif event.type == "transcript.text.done":
                done = event
    assert busy_at_first == 1, "the first delta came while the rest of the recording was still being transcribed"
    assert len(deltas) == 3, deltas
    assert done is not None and done.text == plain.text and "".join(deltas) == done.text
    assert done.usage.seconds == pytest.approx(plain.usage.seconds)


def test_diarized_json_streams_segments_with_lettered_speakers(client: OpenAI, meeting: Path):
    with meeting.open("rb") as f:
        plain = client.audio.transcriptions.create(model="tiny.en", file=f, response_format="diarized_json")
    with meeting.open("rb") as f:
        events = list(client.audio.transcriptions.create(model="tiny.en", file=f, response_format="diarized_json",
                                                         stream=True))  # fmt: skip
    segments = [e for e in events if e.type == "transcript.text.segment"]
    assert [s.id for s in segments] == [f"seg_{i}" for i in range(len(segments))]
    assert segments[0].speaker == "A" and {s.speaker for s in segments} == {"A", "B"}
    assert " ".join(s.text for s in segments).split() == plain.text.split()
    assert events[-1].type == "transcript.text.done" and events[-1].text == plain.text


def test_a_caller_who_leaves_mid_stream_stops_the_run(client: OpenAI, windowed: Container, meeting: Path):
    with meeting.open("rb") as f:
        stream = client.audio.transcriptions.create(model="tiny.en", file=f, stream=True)
        for event in stream:
            assert event.type == "transcript.text.delta"
            break  # after the first window
        stream.close()
    deadline = time.monotonic() + 300
    while running(windowed):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    logs = windowed.logs()
    assert "its transcription was dropped" in logs and "Traceback" not in logs, logs[-3000:]


def test_what_fails_before_the_first_window_is_a_plain_http_error(windowed: Container, meeting: Path):
    url = f"{windowed.url}/v1/audio/transcriptions"
    empty = httpx.post(url, files={"file": ("empty.wav", b"")}, data={"stream": "true"}, timeout=60)
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "empty_file"
    with meeting.open("rb") as f:
        srt = httpx.post(url, files={"file": (meeting.name, f)}, data={"stream": "true", "response_format": "srt"},
                         timeout=60)  # fmt: skip
    assert srt.status_code == 400 and "response_format" in srt.json()["error"]["message"]
