"""A stand-in for the services already running on Spark 2, which this project does not own.

STANDIN_ROLE=parakeet: the legacy Parakeet + Sortformer ASR. POST /v1/audio/transcribe-with-speakers
    answers in the diarized-transcript shape of CONTRACT section 1 with `backend: "legacy"`. It does
    not run a model: it recognises the clips it was given (STANDIN_CLIPS: directories of X.wav + X.txt,
    matched by sha256) and answers their text, the way a recorded fake replays an external system.
STANDIN_ROLE=magpie: the Magpie TTS NIM's HTTP API. POST /v1/audio/synthesize (form: text, language,
    voice) answers a WAV synthesised with espeak-ng; GET /v1/health/ready.

Both: GET /health, and POST /_standin/fault {"health": "ok"|"500"|"hang", "transcribe": "ok"|"500"}
to break them on purpose (reset by a restart, like a real crash), GET /_standin/stats for what they
received. Runs with Debian bookworm's python3-fastapi (0.92) and with the project's venv.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import tempfile
import time
import wave
from pathlib import Path

from fastapi import FastAPI, Form, Request
from fastapi.responses import JSONResponse, Response

ROLE = os.environ.get("STANDIN_ROLE", "parakeet")
STARTED = time.time()
faults = {"health": "ok", "transcribe": "ok"}
stats = {"transcriptions": 0, "bytes": 0, "fields": {}, "syntheses": 0}


def load_clips() -> dict[str, str]:
    clips = {}
    for directory in filter(None, os.environ.get("STANDIN_CLIPS", "").split(":")):
        for audio in Path(directory).glob("*.wav"):
            text = audio.with_suffix(".txt")
            if text.is_file():
                clips[hashlib.sha256(audio.read_bytes()).hexdigest()] = text.read_text().strip()
    return clips


CLIPS = load_clips()
app = FastAPI(title=f"spark2 stand-in ({ROLE})")


async def health_answer() -> Response:
    if faults["health"] == "hang":
        await asyncio.sleep(3600)
    if faults["health"] == "500":
        return JSONResponse({"status": "error", "error": "injected fault"}, status_code=500)
    return JSONResponse({"status": "ok", "role": ROLE, "uptime_s": round(time.time() - STARTED, 1)})


@app.get("/health")
async def health() -> Response:
    return await health_answer()


@app.get("/v1/health/ready")
async def ready() -> Response:
    return await health_answer()


@app.post("/_standin/fault")
async def set_fault(request: Request) -> dict:
    faults.update({k: str(v) for k, v in (await request.json()).items() if k in faults})
    return faults


@app.get("/_standin/stats")
async def get_stats() -> dict:
    return {**stats, "faults": faults, "role": ROLE, "clips": len(CLIPS)}


def wav_duration(path: str) -> float | None:
    try:
        with wave.open(path) as clip:
            return clip.getnframes() / float(clip.getframerate())
    except (wave.Error, EOFError, ZeroDivisionError):
        return None


@app.post("/v1/audio/transcribe-with-speakers")
async def transcribe(request: Request) -> Response:
    if faults["transcribe"] == "500":
        return JSONResponse({"error": {"message": "injected fault", "type": "server_error", "code": "fault"}}, 500)
    form = await request.form()
    upload = form.get("file")
    if upload is None or not hasattr(upload, "read"):
        return JSONResponse(
            {"error": {"message": "`file` is required", "type": "invalid_request_error", "code": "missing_file"}}, 400
        )
    digest = hashlib.sha256()
    size = 0
    with tempfile.NamedTemporaryFile(suffix=".audio") as copy:
        while chunk := await upload.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
            copy.write(chunk)
        copy.flush()
        duration = wav_duration(copy.name)
    stats["transcriptions"] += 1
    stats["bytes"] += size
    stats["fields"] = {k: str(v) for k, v in form.items() if k != "file"}
    if size == 0:
        return JSONResponse(
            {"error": {"message": "the audio is empty", "type": "invalid_request_error", "code": "empty_audio"}}, 400
        )
    duration = round(duration if duration is not None else size / 32000.0, 2)
    text = CLIPS.get(digest.hexdigest(), "")
    words = text.split()
    step = duration / max(len(words), 1)
    segments = []
    if text:
        segments.append(
            {
                "id": 0,
                "type": "transcript.text.segment",
                "start": 0.0,
                "end": duration,
                "speaker": "SPEAKER_00",
                "text": text,
                "words": [
                    {
                        "word": w,
                        "start": round(i * step, 2),
                        "end": round((i + 1) * step, 2),
                        "probability": 0.9,
                        "speaker": "SPEAKER_00",
                    }
                    for i, w in enumerate(words)
                ],
            }
        )
    return JSONResponse(
        {
            "task": "transcribe",
            "text": text,
            "language": str(form.get("language") or "en"),
            "duration": duration,
            "segments": segments,
            "speakers": [{"id": "SPEAKER_00", "duration": duration}] if text else [],
            "backend": "legacy",
            "model": "parakeet-tdt-0.6b-v2+sortformer",
            "timings": {"total_s": 0.01},
        }
    )


@app.post("/v1/audio/synthesize")
def synthesize(text: str = Form(...), language: str = Form("en-US"), voice: str = Form("")) -> Response:
    if not text.strip():
        return JSONResponse({"error": "text is empty"}, status_code=400)
    with tempfile.NamedTemporaryFile(suffix=".wav") as out:
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", out.name, text], check=True, capture_output=True)
        audio = Path(out.name).read_bytes()
    stats["syntheses"] += 1
    return Response(audio, media_type="audio/wav")


if __name__ == "__main__":
    import uvicorn

    host = os.environ.get("STANDIN_HOST", "0.0.0.0")  # noqa: S104 - a container listens on all interfaces
    uvicorn.run(app, host=host, port=int(os.environ.get("STANDIN_PORT", "8000")))
