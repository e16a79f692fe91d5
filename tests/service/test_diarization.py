"""Who said what: the scripted dialogue and pyannote's own sample come back with the right speakers."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from scripts.bench.recordings import RATE, read_pcm, write_pcm
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


def test_the_diarizer_s_turns_come_with_the_transcript_and_as_rttm(url: str, audio: Path, dialogue: dict, tmp_path):
    result = transcribe(url, audio / "dialogue.wav")
    turns = result["turns"]
    assert turns and {t["speaker"] for t in turns} == {s["id"] for s in result["speakers"]}
    assert turns == sorted(turns, key=lambda t: (t["start"], t["end"], t["speaker"]))
    # each scripted turn is mostly covered by the turns of one label, a different one for each voice
    covered: dict[str, dict[str, float]] = {}
    for ref in dialogue["turns"]:
        for t in turns:
            overlap = max(0.0, min(ref["end"], t["end"]) - max(ref["start"], t["start"]))
            covered.setdefault(ref["speaker"], {}).setdefault(t["speaker"], 0.0)
            covered[ref["speaker"]][t["speaker"]] += overlap
    label = {who: max(by, key=by.get) for who, by in covered.items()}
    assert label["alice"] != label["bob"]
    speech = sum(r["end"] - r["start"] for r in dialogue["turns"])
    right = sum(covered[who][label[who]] for who in covered)
    # 82 % measured: each scripted turn is a whole espeak clip, its own leading and trailing silence included
    assert right >= 0.75 * speech, (right, speech)
    wrong = sum(sum(by.values()) - by[label[who]] for who, by in covered.items())
    assert wrong <= 0.05 * speech, "hardly any speech under the other voice's label"

    with (audio / "dialogue.wav").open("rb") as f:
        rttm = httpx.post(f"{url}/v1/audio/transcribe-with-speakers", files={"file": ("dialogue.wav", f)},
                          data={"response_format": "rttm"}, timeout=180)  # fmt: skip
    assert rttm.status_code == 200 and rttm.headers["content-type"].startswith("text/plain")
    (tmp_path / "h.rttm").write_text(rttm.text)
    assert [line.split()[1] for line in rttm.text.splitlines()] == ["dialogue"] * len(turns)
    parsed = rttm_turns(tmp_path / "h.rttm")
    expected = [(t["start"], t["end"], t["speaker"]) for t in turns]
    assert [(round(a, 3), round(b, 3), s) for a, b, s in parsed] == expected
    with (audio / "sentence.wav").open("rb") as f:
        bad = httpx.post(f"{url}/v1/audio/transcribe-with-speakers", files={"file": ("s.wav", f)},
                         data={"response_format": "srt"}, timeout=60)  # fmt: skip
    assert bad.status_code == 400 and "use json or rttm" in bad.json()["error"]["message"]


def test_two_people_at_once_come_back_as_overlapping_turns(url: str, audio: Path, dialogue: dict, tmp_path: Path):
    """Bob starts his line 2 s before Alice finishes hers: the turns say both speak then, the words one each."""
    pcm = read_pcm(audio / "dialogue.wav").astype(np.int32)
    alice, bob = (next(t for t in dialogue["turns"] if t["speaker"] == who) for who in ("alice", "bob"))

    def clip(turn: dict) -> np.ndarray:
        return pcm[int(turn["start"] * RATE) : int(turn["end"] * RATE)]

    first, second = clip(alice), clip(bob)
    together_s = 2.0
    start = len(first) - int(together_s * RATE)  # Bob comes in here
    mixed = np.zeros(start + len(second) + RATE, np.int32)
    mixed[: len(first)] += first
    mixed[start : start + len(second)] += second
    write_pcm(tmp_path / "overlap.wav", np.clip(mixed, -32768, 32767).astype("<i2"))
    both = (start / RATE, len(first) / RATE)  # where the two voices sound together

    result = transcribe(url, tmp_path / "overlap.wav")

    assert len(result["speakers"]) == 2, result["speakers"]
    at_once = 0.0
    for a in result["turns"]:
        for b in result["turns"]:
            if a["speaker"] < b["speaker"]:
                at_once += max(0.0, min(a["end"], b["end"], both[1]) - max(a["start"], b["start"], both[0]))
    assert at_once >= 0.5 * together_s, (at_once, result["turns"])
    # words keep going to one person each: Alice's before Bob comes in, Bob's after she stops
    said = [w for seg in result["segments"] for w in seg["words"]]
    before = [w["speaker"] for w in said if w["end"] <= both[0]]
    after = [w["speaker"] for w in said if w["start"] >= both[1]]
    alice_label, bob_label = max(set(before), key=before.count), max(set(after), key=after.count)
    assert alice_label != bob_label
    assert before.count(alice_label) >= 0.8 * len(before) and after.count(bob_label) >= 0.8 * len(after)
