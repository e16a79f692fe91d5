"""Speech in, words out: every audio container, every response_format through the official openai client."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from scripts.bench.scoring import words

pytestmark = pytest.mark.integration
KEY_WORDS = ("schedule", "quarterly", "budget", "meeting", "thursday", "afternoon")


@pytest.fixture(scope="module")
def client(url: str) -> OpenAI:
    return OpenAI(base_url=f"{url}/v1", api_key="not-needed", max_retries=0, timeout=120)


@pytest.mark.parametrize("ext", ["wav", "mp3", "m4a", "ogg", "flac", "webm"])
def test_the_spoken_sentence_comes_back_from_every_container_format(client: OpenAI, audio: Path, ext: str):
    with (audio / f"sentence.{ext}").open("rb") as f:
        result = client.audio.transcriptions.create(model="tiny.en", file=f)
    heard = words(result.text)
    assert all(w in heard for w in KEY_WORDS), result.text


def test_text_srt_and_vtt_come_back_as_plain_text(client: OpenAI, audio: Path):
    with (audio / "sentence.wav").open("rb") as f:
        text = client.audio.transcriptions.create(model="tiny.en", file=f, response_format="text")
    assert isinstance(text, str) and "budget" in text.lower()

    with (audio / "sentence.wav").open("rb") as f:
        srt = client.audio.transcriptions.create(model="tiny.en", file=f, response_format="srt")
    first_cue = srt.strip().split("\n")
    assert first_cue[0] == "1" and " --> " in first_cue[1] and "," in first_cue[1]
    assert "budget" in srt.lower()

    with (audio / "sentence.wav").open("rb") as f:
        vtt = client.audio.transcriptions.create(model="tiny.en", file=f, response_format="vtt")
    assert vtt.startswith("WEBVTT") and " --> " in vtt and "budget" in vtt.lower()


def test_verbose_json_has_segments_and_timed_words_in_order(client: OpenAI, audio: Path):
    with (audio / "sentence.wav").open("rb") as f:
        result = client.audio.transcriptions.create(
            model="tiny.en", file=f, response_format="verbose_json", timestamp_granularities=["word", "segment"]
        )
    assert result.language == "en" and result.duration == pytest.approx(5.2, abs=0.5)
    assert result.segments and result.segments[0].start < result.segments[-1].end
    spoken = [w.word.lower().strip(".,") for w in result.words]
    assert "budget" in spoken and "thursday" in spoken
    starts = [w.start for w in result.words]
    assert starts == sorted(starts) and all(w.end >= w.start for w in result.words)
    assert result.words[-1].end <= result.duration + 0.01


def test_diarized_json_labels_each_segment_with_a_speaker(client: OpenAI, audio: Path):
    with (audio / "dialogue.wav").open("rb") as f:
        result = client.audio.transcriptions.create(model="tiny.en", file=f, response_format="diarized_json")
    assert result.task == "transcribe" and result.duration == pytest.approx(38.9, abs=1)
    assert [s.speaker for s in result.segments][:1] == ["A"] and {s.speaker for s in result.segments} == {"A", "B"}
    assert [s.id for s in result.segments] == [f"seg_{i}" for i in range(len(result.segments))]
    assert all(s.type == "transcript.text.segment" and s.end > s.start for s in result.segments)
    assert "warehouse" in result.text.lower()


def test_a_prompt_is_accepted_and_the_words_still_come_back(client: OpenAI, audio: Path):
    with (audio / "sentence.wav").open("rb") as f:
        result = client.audio.transcriptions.create(
            model="tiny.en", file=f, prompt="Quarterly planning call.", language="en", temperature=0.0
        )
    assert "budget" in words(result.text)


def test_silence_is_an_empty_transcript_not_an_error(url: str, audio: Path):
    with (audio / "silence.wav").open("rb") as f:
        response = httpx.post(f"{url}/v1/audio/transcriptions", files={"file": f}, timeout=60)
    assert response.status_code == 200
    assert response.json()["text"] == ""

    with (audio / "silence.wav").open("rb") as f:
        response = httpx.post(f"{url}/v1/audio/transcribe-with-speakers", files={"file": f}, timeout=60)
    assert response.status_code == 200
    body = response.json()
    assert body["text"] == "" and body["segments"] == [] and body["speakers"] == []


def test_models_lists_the_configured_model(client: OpenAI):
    models = client.models.list()
    assert [m.id for m in models.data] == ["tiny.en"]
    assert models.data[0].owned_by == "whisperx"
