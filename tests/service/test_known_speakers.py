"""Known speakers (OpenAI's known_speaker_names[] / known_speaker_references[]) against the real image: the
dialogue's two espeak voices named from reference clips of other sentences, one reference naming one speaker,
an absent voice naming nobody, every bad reference refused by index, and the job API naming them too."""

from __future__ import annotations

import base64
import io
import json
import time
import wave
from collections import Counter
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from scripts.fixtures import VOICES, speak

pytestmark = pytest.mark.integration
# other sentences than the dialogue's, each 2-10 s in its speaker's voice
SAID = {
    "alice": "The quarterly budget meeting moves to Thursday afternoon, in the small room upstairs.",
    "bob": "Please bring the printed charts and the delivery figures for the whole southern region.",
}
ABSENT = {"voice": "en-us+f2", "pitch": "50", "speed": "170"}  # a voice the dialogue does not have


def data_url(path: Path) -> str:
    return "data:audio/wav;base64," + base64.b64encode(path.read_bytes()).decode()


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("voices")
    out = {}
    for who, settings in [*((w, VOICES[w]) for w in SAID), ("carol", ABSENT)]:
        clip = tmp / f"{who}.wav"
        speak(SAID.get(who, SAID["alice"]), clip, **settings)
        out[who] = data_url(clip)
    return out


@pytest.fixture(scope="module")
def client(url: str) -> OpenAI:
    return OpenAI(base_url=f"{url}/v1", api_key="not-needed", max_retries=0, timeout=180)


def who_said(turns: list[dict], start: float, end: float) -> str:
    """The dialogue's speaker whose turn overlaps [start, end] most."""
    return max(turns, key=lambda t: min(t["end"], end) - max(t["start"], start))["speaker"]


def diarized(client: OpenAI, audio: Path, names: list[str], refs: list[str]):
    with (audio / "dialogue.wav").open("rb") as f:
        return client.audio.transcriptions.create(model="tiny.en", file=f, response_format="diarized_json",
                                                  known_speaker_names=names, known_speaker_references=refs)  # fmt: skip


def test_both_voices_are_named(client: OpenAI, audio: Path, dialogue: dict, references: dict[str, str]):
    result = diarized(client, audio, ["Alice", "Bob"], [references["alice"], references["bob"]])
    said = [(s.speaker, who_said(dialogue["turns"], s.start, s.end)) for s in result.segments]
    assert {speaker for speaker, _ in said} == {"Alice", "Bob"}
    right = sum(1 for speaker, truth in said if speaker.lower() == truth)
    assert right >= 0.9 * len(said), said


def test_one_reference_names_one_speaker_and_the_other_stays_anonymous(
    client: OpenAI, audio: Path, dialogue: dict, references: dict[str, str]
):
    result = diarized(client, audio, ["Bob"], [references["bob"]])
    assert {s.speaker for s in result.segments} == {"Bob", "A"}
    named = [who_said(dialogue["turns"], s.start, s.end) for s in result.segments if s.speaker == "Bob"]
    assert named.count("bob") >= 0.9 * len(named)


def test_an_absent_voice_names_nobody(client: OpenAI, audio: Path, references: dict[str, str]):
    result = diarized(client, audio, ["Carol"], [references["carol"]])
    assert {s.speaker for s in result.segments} == {"A", "B"}


def test_the_diarized_transcript_says_which_reference_matched(url: str, audio: Path, references: dict[str, str]):
    with (audio / "dialogue.wav").open("rb") as f:
        body = httpx.post(f"{url}/v1/audio/transcribe-with-speakers", files={"file": ("dialogue.wav", f)},
                          data={"known_speaker_names[]": ["Carol", "Alice"],
                                "known_speaker_references[]": [references["carol"], references["alice"]]},
                          timeout=180).json()  # fmt: skip
    speakers = {s["id"]: s for s in body["speakers"]}
    assert set(speakers) == {"Alice", "SPEAKER_00"} or set(speakers) == {"Alice", "SPEAKER_01"}, speakers
    alice = speakers.pop("Alice")
    assert alice["name"] == "Alice" and alice["match"]["reference"] == 1 and 0 < alice["match"]["similarity"] <= 1
    (other,) = speakers.values()
    assert other["name"] is None and other["match"] is None, "Carol's reference matched nobody"
    assert {s["speaker"] for s in body["segments"]} == {"Alice", other["id"]}


def clip_of(seconds: float, tmp: Path) -> str:
    path = tmp / f"tone-{seconds}.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(16000)
        out.writeframes(b"\x10\x00\xf0\xff" * int(seconds * 8000))
    return data_url(path)


def test_bad_references_are_refused_by_index(url: str, audio: Path, references: dict[str, str], tmp_path: Path):
    good = references["alice"]
    cases = [
        ({"names": ["A"], "refs": ["hello"]}, "known_speaker_references[0] is not a base64 data URL"),
        ({"names": ["A", "B"], "refs": [good, "data:audio/wav;base64,bm90IGF1ZGlv"]}, "known_speaker_references[1]:"),
        ({"names": ["A"], "refs": ["data:audio/wav;base64,!!!"]}, "known_speaker_references[0] is not valid base64"),
        ({"names": ["A", "B"], "refs": [good, clip_of(1.0, tmp_path)]}, "known_speaker_references[1] is 1.0 s long"),
        ({"names": ["A"], "refs": [clip_of(12.0, tmp_path)]}, "known_speaker_references[0] is 12.0 s long"),
        ({"names": ["A", "B"], "refs": [good]}, "are paired by position"),
        ({"names": ["Ann", "Ann"], "refs": [good, good]}, "known_speaker_names[1] repeats 'Ann' (index 0)"),
        ({"names": [""], "refs": [good]}, "known_speaker_names[0] is empty"),
        ({"names": [str(i) for i in range(9)], "refs": [clip_of(2.5, tmp_path)] * 9}, "at most 8 known speakers"),
    ]
    for case, says in cases:
        with (audio / "sentence.wav").open("rb") as f:
            response = httpx.post(f"{url}/v1/audio/transcribe-with-speakers", files={"file": ("s.wav", f)},
                                  data={"known_speaker_names[]": case["names"],
                                        "known_speaker_references[]": case["refs"]}, timeout=60)  # fmt: skip
        assert response.status_code == 400, (says, response.text)
        error = response.json()["error"]
        assert says in error["message"] and error["type"] == "invalid_request_error", (says, error)
    with (audio / "sentence.wav").open("rb") as f:
        plain = httpx.post(
            f"{url}/v1/audio/transcriptions",
            files={"file": ("s.wav", f)},
            data={"known_speaker_names[]": ["A"], "known_speaker_references[]": [good]},
            timeout=60,
        )
    assert plain.status_code == 400 and "response_format=diarized_json" in plain.json()["error"]["message"]


def finished_job(url: str, recording: Path, data: dict | None = None) -> str:
    with recording.open("rb") as f:
        created = httpx.post(f"{url}/v1/audio/jobs", files={"file": (recording.name, f)}, data=data, timeout=60)
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    deadline = time.monotonic() + 300
    while (status := httpx.get(f"{url}/v1/audio/jobs/{job_id}", timeout=30).json()["status"]) in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert status == "completed"
    return job_id


def test_a_job_names_them_too(url: str, audio: Path, references: dict[str, str]):
    job_id = finished_job(url, audio / "dialogue.wav", {"known_speaker_names[]": ["Alice", "Bob"],
                                                        "known_speaker_references[]": [references["alice"],
                                                                                       references["bob"]]})  # fmt: skip
    result = httpx.get(f"{url}/v1/audio/jobs/{job_id}/result", params={"format": "diarized_json"}, timeout=30).json()
    assert {s["speaker"] for s in result["segments"]} == {"Alice", "Bob"}
    srt = httpx.get(f"{url}/v1/audio/jobs/{job_id}/result", params={"format": "srt"}, timeout=30).text
    assert "[Alice]" in srt and "[Bob]" in srt
    httpx.delete(f"{url}/v1/audio/jobs/{job_id}", timeout=30)


def test_a_job_s_speaker_gives_a_clip_that_names_them_in_another_recording_and_can_be_renamed(
    url: str, audio: Path, dialogue: dict
):
    job_id = finished_job(url, audio / "dialogue.wav")
    jobs = f"{url}/v1/audio/jobs/{job_id}"
    result = httpx.get(f"{jobs}/result", timeout=30).json()
    said = Counter((s["speaker"], who_said(dialogue["turns"], s["start"], s["end"])) for s in result["segments"])
    alice, bob = (max({label for label, _ in said}, key=lambda label: said[label, who]) for who in ("alice", "bob"))
    assert alice != bob, said

    clip = httpx.get(f"{jobs}/speakers/{alice}/clip", timeout=30)
    assert clip.status_code == 200 and clip.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(clip.content)) as w:
        assert (w.getframerate(), w.getnchannels()) == (16000, 1)
        assert 2.0 <= w.getnframes() / w.getframerate() <= 10.0
    followup = json.loads((audio / "followup.json").read_text())
    reference = "data:audio/wav;base64," + base64.b64encode(clip.content).decode()
    with (audio / "followup.wav").open("rb") as f:
        named = httpx.post(f"{url}/v1/audio/transcribe-with-speakers", files={"file": ("followup.wav", f)},
                           data={"known_speaker_names[]": ["Alice"], "known_speaker_references[]": [reference]},
                           timeout=180).json()  # fmt: skip
    said = [(s["speaker"], who_said(followup["turns"], s["start"], s["end"])) for s in named["segments"]]
    assert {who for speaker, who in said if speaker == "Alice"} == {"alice"}, said
    assert sum(1 for speaker, who in said if who == "alice" and speaker == "Alice") >= 0.9 * sum(
        1 for _, who in said if who == "alice"
    ), said

    renamed = httpx.patch(f"{jobs}/speakers/{alice}", json={"name": "Alice"}, timeout=30)
    assert renamed.status_code == 200 and renamed.json()["id"] == renamed.json()["name"] == "Alice"
    srt = httpx.get(f"{jobs}/result", params={"format": "srt"}, timeout=30).text
    vtt = httpx.get(f"{jobs}/result", params={"format": "vtt"}, timeout=30).text
    text = httpx.get(f"{jobs}/result", params={"format": "text"}, timeout=30).text
    assert "[Alice] Good morning" in srt and f"[{alice}]" not in srt and f"[{bob}]" in srt
    assert "<v Alice>" in vtt and text.startswith("Alice: Good morning")
    rttm = httpx.get(f"{jobs}/result", params={"format": "rttm"}, timeout=30).text.splitlines()
    assert rttm and {line.split()[1] for line in rttm} == {"dialogue"}
    assert {line.split()[7] for line in rttm} == {"Alice", bob}, "the turns are renamed too"
    assert {s["id"] for s in httpx.get(f"{jobs}/result", timeout=30).json()["speakers"]} == {"Alice", bob}
    assert httpx.get(f"{jobs}/speakers/Alice/clip", timeout=30).content == clip.content, "the clip keeps up"

    for label, name, status in [(alice, "Carol", 404), (bob, "Alice", 409), (bob, " ", 400)]:
        refused = httpx.patch(f"{jobs}/speakers/{label}", json={"name": name}, timeout=30)
        assert refused.status_code == status and refused.json()["error"]["message"], (label, name, refused.text)
    assert httpx.get(f"{jobs}/speakers/SPEAKER_09/clip", timeout=30).status_code == 404
    httpx.delete(jobs, timeout=30)
