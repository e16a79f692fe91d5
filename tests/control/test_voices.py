"""The voice library (spark_control/voices.py, routers/voices.py): round trips with real clips, every bad
input refused with nothing half-written, a restart keeps it, and the proxy sending it as known speakers to
WhisperX but never to the legacy service."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from spark_control.services import DEEP_CHECK_CLIP
from spark_control.voices import VoiceLibrary
from tests.control.helpers import AUTH, LiveServer, repeat_wav

TRANSCRIPT = {"task": "transcribe", "text": "hi", "language": "en", "duration": 3.4, "segments": [],
              "backend": "whisperx", "model": "tiny.en", "timings": {"total_s": 0.1}}  # fmt: skip


def add(server: LiveServer, name: str, clip: Path, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/api/voices", data={"name": name}, headers=kwargs.pop("headers", AUTH),
                      files={"file": (clip.name, clip.read_bytes())}, timeout=30, **kwargs)  # fmt: skip


def seconds_of(wav_bytes: bytes) -> tuple[float, int, int]:
    with wave.open(io.BytesIO(wav_bytes)) as w:
        return w.getnframes() / w.getframerate(), w.getframerate(), w.getnchannels()


def cut(source: Path, target: Path, seconds: float) -> Path:
    with wave.open(str(source)) as clip:
        params, frames = clip.getparams(), clip.readframes(int(seconds * clip.getframerate()))
    with wave.open(str(target), "wb") as out:
        out.setparams(params)
        out.writeframes(frames)
    return target


def library_files(data_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(data_dir)) for p in (data_dir / "voices").rglob("*") if p.is_file())


@pytest.fixture
def control(make_settings, serve) -> Callable[..., tuple[LiveServer, Path]]:
    def start(**overrides: Any) -> tuple[LiveServer, Path]:
        settings = make_settings(**overrides)
        return serve(settings), settings.data_dir

    return start


def test_a_voice_round_trips_from_any_readable_format(control, audio: Path):
    server, data_dir = control()
    for name, clip in [("Alice", "sentence.mp3"), ("Bob", "sentence.flac"), ("Carol", "sentence.ogg")]:
        made = add(server, name, audio / clip)
        assert made.status_code == 201, made.text
        body = made.json()
        assert body["name"] == name and body["id"].startswith("voice_")
        assert body["clips"][0]["duration"] == pytest.approx(5.13, abs=0.05)
        assert body["clips"][0]["source"] == {"kind": "upload", "filename": clip}
    listed = httpx.get(f"{server.url}/api/voices").json()
    assert [v["name"] for v in listed["data"]] == ["Alice", "Bob", "Carol"] and listed["sent"] == 8
    alice = listed["data"][0]
    played = httpx.get(f"{server.url}{alice['clips'][0]['url']}", headers=AUTH)
    assert played.status_code == 200 and played.headers["content-type"] == "audio/wav"
    length, rate, channels = seconds_of(played.content)
    assert (rate, channels) == (16000, 1) and length == pytest.approx(5.13, abs=0.05)
    assert httpx.get(f"{server.url}{alice['clips'][0]['url']}").status_code == 401, "a voice plays for the operator"
    assert httpx.delete(f"{server.url}/api/voices/{alice['id']}", headers=AUTH).status_code == 204
    assert [v["name"] for v in httpx.get(f"{server.url}/api/voices").json()["data"]] == ["Bob", "Carol"]
    assert len(library_files(data_dir)) == 3  # library.json and the two clips left
    assert httpx.delete(f"{server.url}/api/voices/{alice['id']}", headers=AUTH).status_code == 404


def test_a_clip_longer_than_a_reference_keeps_its_loudest_ten_seconds(control, audio: Path, tmp_path: Path):
    server, _ = control()
    long = repeat_wav(audio / "sentence.wav", tmp_path / "long.wav", 4)  # 20.5 s
    made = add(server, "Alice", long).json()
    assert made["clips"][0]["duration"] == pytest.approx(20.5, abs=0.1)  # what was uploaded
    clip = httpx.get(f"{server.url}{made['clips'][0]['url']}", headers=AUTH).content
    assert seconds_of(clip)[0] == pytest.approx(10.0)  # what is kept and sent


def test_every_bad_input_is_a_4xx_with_a_message_and_writes_nothing(control, audio: Path, tmp_path: Path):
    server, data_dir = control(voices_max=2)
    assert add(server, "Alice", audio / "sentence.wav").status_code == 201
    before = library_files(data_dir)
    readme = Path(__file__).resolve().parents[2] / "README.md"
    cases = [
        ("Bob", readme, 415, "invalid_audio"),
        ("Bob", audio / "sentence.m4a", 415, "invalid_audio"),  # libsndfile reads no MP4
        ("Bob", cut(audio / "sentence.wav", tmp_path / "short.wav", 1.2), 400, "clip_too_short"),
        ("Bob", repeat_wav(audio / "sentence.wav", tmp_path / "long.wav", 7), 400, "clip_too_long"),  # 36 s
        ("Bob", audio / "silence.wav", 400, "silent_clip"),
        ("alice", audio / "sentence.flac", 409, "duplicate_name"),
        ("   ", audio / "sentence.flac", 400, "invalid_name"),
    ]
    for name, clip, status, code in cases:
        refused = add(server, name, clip)
        assert refused.status_code == status, (clip.name, refused.text)
        assert refused.json()["error"]["code"] == code and refused.json()["error"]["message"]
        assert library_files(data_dir) == before, f"{clip.name} left something behind"
    assert add(server, "Bob", audio / "sentence.ogg").status_code == 201
    full = add(server, "Carol", audio / "sentence.ogg")
    assert full.status_code == 409 and "SPARK_CONTROL_VOICES_MAX" in full.json()["error"]["message"]
    assert add(server, "Carol", audio / "sentence.ogg", headers={}).status_code == 401
    assert [v["name"] for v in httpx.get(f"{server.url}/api/voices").json()["data"]] == ["Alice", "Bob"]


def test_the_library_survives_a_restart_and_a_crash_mid_write(make_settings, serve, audio: Path):
    settings = make_settings()
    first = serve(settings)
    made = add(first, "Alice", audio / "sentence.wav").json()
    first.stop()
    clips = settings.voices_dir / "clips"
    (clips / "voice_0000000000000000-dead.wav").write_bytes(b"RIFF")  # written, never named: a crash
    (clips / ".voice_x-1.wav.tmp").write_bytes(b"RI")  # torn mid-write
    again = serve(settings)
    assert httpx.get(f"{again.url}/api/voices").json()["data"] == [made]
    assert len(list(clips.iterdir())) == 1, "the orphan and the torn file are gone, Alice's clip is kept"
    assert httpx.get(f"{again.url}{made['clips'][0]['url']}", headers=AUTH).status_code == 200


# -- the proxy sends the library to WhisperX --------------------------------------------------------
class RecordingWhisperx:
    """A WhisperX that records every form field it gets (repeated ones too) and names who it is told to."""

    def __init__(self) -> None:
        self.fields: list[list[tuple[str, str]]] = []
        self.files: list[str] = []  # the sha256 of each upload's file
        self.names: list[str] = []  # what its answer calls the speakers
        self.app = FastAPI()

        @self.app.get("/health")
        def health() -> dict[str, Any]:
            return {"status": "ready", "whisper_loaded": True, "diarizer_loaded": True}

        @self.app.post("/v1/audio/transcribe-with-speakers")
        async def transcribe(request: Request) -> JSONResponse:
            form = await request.form()
            self.fields.append([(k, v) for k, v in form.multi_items() if k != "file"])
            self.files.append(hashlib.sha256(await form["file"].read()).hexdigest())  # type: ignore[union-attr]
            speakers = [{"id": n, "duration": 1.0, "name": n, "match": None} for n in self.names]
            return JSONResponse({**TRANSCRIPT, "speakers": speakers})


def post_clip(server: LiveServer, **fields: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/api/audio/transcribe-with-speakers", data=fields, timeout=60,
                      files={"file": ("meeting.wav", DEEP_CHECK_CLIP.read_bytes(), "audio/wav")})  # fmt: skip


def test_whisperx_gets_the_voices_most_recently_used_first_and_the_caller_s_own_win(control, serve, audio: Path):
    fake = RecordingWhisperx()
    server, _ = control(whisperx_url=serve(fake.app).url)
    assert post_clip(server).status_code == 200
    assert fake.fields[-1] == [], "an empty library adds nothing"
    for name in ("Alice", "Bob"):
        assert add(server, name, audio / "sentence.wav").status_code == 201
    fake.names = ["Alice"]  # the transcript names Alice: she goes first from now on
    assert post_clip(server, language="en").json()["speakers"][0]["name"] == "Alice"
    sent = fake.fields[-1]
    assert [v for k, v in sent if k == "known_speaker_names[]"] == ["Bob", "Alice"]  # Bob was added last
    references = [v for k, v in sent if k == "known_speaker_references[]"]
    assert len(references) == 2 and ("language", "en") in sent
    assert seconds_of(base64.b64decode(references[0].split(",", 1)[1]))[0] == pytest.approx(5.13, abs=0.05)
    fake.names = []
    post_clip(server)
    assert [v for k, v in fake.fields[-1] if k == "known_speaker_names[]"] == ["Alice", "Bob"]
    own = post_clip(server, **{"known_speaker_names[]": "Dave", "known_speaker_references[]": "data:audio/wav;base64,"})
    assert own.status_code == 200
    assert [v for k, v in fake.fields[-1] if k == "known_speaker_names[]"] == ["Dave"], "the caller's own, alone"


def test_an_upload_past_a_mebibyte_goes_through_the_disk_with_the_voices_and_leaves_nothing(
    control, serve, audio: Path
):
    """Small uploads stay in memory; a large one is spooled to a file and the voices go in before its end."""
    fake = RecordingWhisperx()
    server, data_dir = control(whisperx_url=serve(fake.app).url)
    assert add(server, "Alice", audio / "sentence.wav").status_code == 201
    recording = DEEP_CHECK_CLIP.read_bytes() + bytes(range(256)) * (3 << 12)  # 3 MiB more: one file on disk
    answer = httpx.post(f"{server.url}/api/audio/transcribe-with-speakers", data={"language": "en"}, timeout=60,
                        files={"file": ("long.wav", recording, "audio/wav")})  # fmt: skip
    assert answer.status_code == 200
    assert fake.files == [hashlib.sha256(recording).hexdigest()], "the recording arrived byte for byte"
    assert ("language", "en") in fake.fields[-1] and ("known_speaker_names[]", "Alice") in fake.fields[-1]
    assert not list((data_dir / "spool").iterdir()), "its spooled file is gone"


def test_the_legacy_service_gets_the_upload_without_voices(control, standin, audio: Path, tmp_path: Path):
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "clip.wav").write_bytes(DEEP_CHECK_CLIP.read_bytes())
    (clips / "clip.txt").write_text("The quick brown fox jumps over the lazy dog.")
    legacy = standin("parakeet", [clips])
    server, _ = control(legacy_asr_url=legacy.url)  # WhisperX: nothing listens
    assert add(server, "Alice", audio / "sentence.wav").status_code == 201
    answered = post_clip(server, language="en")
    assert answered.status_code == 200 and answered.headers["x-asr-backend"] == "legacy"
    assert "quick brown fox" in answered.json()["text"]
    stats = httpx.get(f"{legacy.url}/_standin/stats").json()
    assert stats["fields"] == {"language": "en"}


def test_a_library_opened_again_reads_what_was_written(tmp_path: Path, audio: Path):
    from spark_control.voice_clips import reference_clip

    library = VoiceLibrary(tmp_path / "voices", limit=4)
    clip, seconds = reference_clip(cut(audio / "sentence.wav", tmp_path / "short.wav", 2.5).read_bytes())
    alice = library.create("Alice", clip, seconds, {"kind": "upload", "filename": "a.wav"})
    for _ in range(5):
        library.add(alice, clip, seconds, {"kind": "job", "job_id": "job_1", "speaker": "SPEAKER_00"})
    assert len(alice.clips) == 4  # the oldest went
    again = VoiceLibrary(tmp_path / "voices", limit=4)
    assert again.get(alice.id) == alice
    assert len(list((tmp_path / "voices" / "clips").iterdir())) == 4
    ((name, reference),) = again.references()
    assert name == "Alice"
    # the newest clips joined with 0.2 s between them while they fit in 10 s: three of 2.5 s
    assert seconds_of(base64.b64decode(reference.split(",", 1)[1]))[0] == pytest.approx(3 * 2.5 + 2 * 0.2, abs=0.01)
    assert json.loads((tmp_path / "voices" / "library.json").read_text())["voices"][0]["name"] == "Alice"
