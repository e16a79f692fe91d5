"""OpenAI's parameters as OpenAI treats them, through the official client where it can send them: a field an
endpoint does not know is refused by name, `chunking_strategy` reaches the VAD, `include[]=logprobs` is a clear
400, `hotwords` is accepted, and every JSON format carries its usage."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from scripts.bench.scoring import words

pytestmark = pytest.mark.integration
KEY_WORDS = ("schedule", "quarterly", "budget", "meeting", "thursday", "afternoon")


@pytest.fixture(scope="module")
def client(url: str) -> OpenAI:
    return OpenAI(base_url=f"{url}/v1", api_key="not-needed", max_retries=0, timeout=120)


def post(url: str, path: str, clip: Path, **form) -> httpx.Response:
    with clip.open("rb") as f:
        return httpx.post(f"{url}{path}", files={"file": (clip.name, f)}, data=form, timeout=120)


def error(response: httpx.Response) -> dict:
    assert response.status_code == 400, response.text
    return response.json()["error"]


@pytest.mark.parametrize("path", ["/v1/audio/transcriptions", "/v1/audio/transcribe-with-speakers", "/v1/audio/jobs"])
def test_a_field_the_endpoint_does_not_know_is_refused_by_name(url: str, audio: Path, path: str):
    jobs = httpx.get(f"{url}/v1/audio/jobs", timeout=30).json()["data"]
    refused = error(post(url, path, audio / "sentence.wav", languge="en"))  # a typo that used to be dropped
    assert refused["code"] == "unknown_parameter" and "'languge'" in refused["message"]
    assert "language" in refused["message"], "the message lists what the endpoint takes"
    assert httpx.get(f"{url}/v1/audio/jobs", timeout=30).json()["data"] == jobs, "a refused job leaves nothing"


def test_the_official_clients_parameters_are_all_known(client: OpenAI, audio: Path):
    with (audio / "sentence.wav").open("rb") as f:
        result = client.audio.transcriptions.create(
            model="tiny.en", file=f, language="en", prompt="A planning call.", temperature=0.0,
            response_format="verbose_json", timestamp_granularities=["word"], chunking_strategy="auto", stream=False,
        )  # fmt: skip
    assert all(w in words(result.text) for w in KEY_WORDS), result.text


def test_server_vad_reaches_the_vad(client: OpenAI, audio: Path):
    def heard(strategy) -> str:
        with (audio / "sentence.wav").open("rb") as f:
            return client.audio.transcriptions.create(model="tiny.en", file=f, chunking_strategy=strategy).text

    # the client sends the object as chunking_strategy[type], chunking_strategy[threshold], ...
    assert all(w in words(heard({"type": "server_vad"})) for w in KEY_WORDS)
    padded = {"type": "server_vad", "threshold": 0.4, "prefix_padding_ms": 500, "silence_duration_ms": 800}
    assert all(w in words(heard(padded)) for w in KEY_WORDS)
    # speech is what the segmentation scores above the threshold, and no score is above certainty
    assert heard({"type": "server_vad", "threshold": 1.0}) == ""


def test_a_server_vad_object_as_json_and_its_bad_values(url: str, audio: Path):
    clip = audio / "sentence.wav"
    ok = post(url, "/v1/audio/transcriptions", clip, chunking_strategy='{"type": "server_vad", "threshold": 1}')
    assert ok.status_code == 200 and ok.json()["text"] == ""
    for value, says in [("sometimes", "'auto' or a server_vad object"), ('{"type": "semantic_vad"}', "'server_vad'"),
                        ('{"type": "server_vad", "threshold": 2}', "between 0 and 1"),
                        ('{"type": "server_vad", "silence_duration_ms": "long"}', "must be a number")]:  # fmt: skip
        refused = error(post(url, "/v1/audio/transcriptions", clip, chunking_strategy=value))
        assert says in refused["message"], refused
    refused = error(
        post(
            url,
            "/v1/audio/transcriptions",
            clip,
            **{"chunking_strategy[type]": "server_vad", "chunking_strategy[eagerness]": "high"},
        )
    )
    assert refused["code"] == "unknown_parameter" and "'eagerness'" in refused["message"]


def test_logprobs_are_a_clear_400(client: OpenAI, audio: Path):
    with (audio / "sentence.wav").open("rb") as f, pytest.raises(openai.BadRequestError) as refused:
        client.audio.transcriptions.create(model="tiny.en", file=f, include=["logprobs"])
    assert refused.value.code == "unsupported_parameter" and "per token" in refused.value.message


def test_hotwords_are_accepted_as_an_extension(client: OpenAI, url: str, audio: Path):
    with (audio / "sentence.wav").open("rb") as f:
        result = client.audio.transcriptions.create(
            model="tiny.en", file=f, extra_body={"hotwords": "quarterly budget"}
        )
    assert all(w in words(result.text) for w in KEY_WORDS), result.text
    diarized = post(url, "/v1/audio/transcribe-with-speakers", audio / "sentence.wav", hotwords="budget")
    assert diarized.status_code == 200 and "budget" in words(diarized.json()["text"])


def test_every_json_format_carries_the_duration_as_usage(client: OpenAI, audio: Path):
    for fmt in ("json", "verbose_json", "diarized_json"):
        with (audio / "sentence.wav").open("rb") as f:
            result = client.audio.transcriptions.create(model="tiny.en", file=f, response_format=fmt)
        assert result.usage.type == "duration" and result.usage.seconds == pytest.approx(5.2, abs=0.5), fmt
