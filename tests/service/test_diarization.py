"""Who said what: the scripted dialogue and pyannote's own sample come back with the right speakers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.bench.scoring import rttm_turns, word_speaker_accuracy, words
from tests.service.conftest import transcribe

pytestmark = pytest.mark.integration


def test_the_dialogue_has_two_speakers_and_most_words_are_theirs(url: str, audio: Path, dialogue: dict):
    result = transcribe(url, audio / "dialogue.wav")

    assert [s["id"] for s in result["speakers"]] == ["SPEAKER_00", "SPEAKER_01"]
    turns = [(t["start"], t["end"], t["speaker"]) for t in dialogue["turns"]]
    assert word_speaker_accuracy(result["segments"], turns) >= 0.9
    heard = words(result["text"])
    for word in ("warehouse", "delivery", "northern", "director", "summary", "friday"):
        assert word in heard
    assert result["backend"] == "whisperx" and result["model"] == "tiny.en" and result["language"] == "en"
    assert set(result["timings"]) == {"decode_s", "vad_s", "transcribe_s", "align_s", "diarize_s", "total_s"}
    for seg in result["segments"]:
        assert seg["type"] == "transcript.text.segment" and seg["words"]
        assert all(w["speaker"] == seg["speaker"] for w in seg["words"])


def test_pyannotes_bundled_sample_has_two_speakers(url: str, pyannote_sample: Path):
    result = transcribe(url, pyannote_sample / "sample.wav")

    assert len(result["speakers"]) == 2, result["speakers"]
    turns = rttm_turns(pyannote_sample / "sample.rttm")
    assert word_speaker_accuracy(result["segments"], turns) >= 0.8
    reference = words(json.dumps((pyannote_sample / "sample.stm").read_text()))
    heard = words(result["text"])
    assert len(set(heard) & set(reference)) >= 0.6 * len(set(heard))


def test_num_speakers_is_obeyed(url: str, audio: Path):
    result = transcribe(url, audio / "dialogue.wav", num_speakers=1)
    assert [s["id"] for s in result["speakers"]] == ["SPEAKER_00"]
    assert {seg["speaker"] for seg in result["segments"]} == {"SPEAKER_00"}


def test_max_speakers_caps_the_speaker_count(url: str, pyannote_sample: Path):
    result = transcribe(url, pyannote_sample / "sample.wav", min_speakers=1, max_speakers=1)
    assert len(result["speakers"]) == 1
