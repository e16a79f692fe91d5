"""OpenAI's known speakers: `known_speaker_names[]` and `known_speaker_references[]`, paired by position.

Each reference is a data URL (`data:audio/wav;base64,...`) of 2-10 s of one person speaking, in any
format the service decodes; at most MAX_KNOWN pairs (OpenAI allows 4). A bad pair is a 400 in OpenAI's
error shape naming its index. The clips are decoded here, on a worker thread, with the same ffmpeg
path and limits as an upload; the models embed them on the inference thread (app/inference/pipeline.py).
"""

from __future__ import annotations

import base64
import binascii
import re
import tempfile
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from app.api.errors import bad_request
from app.inference.audio import AudioError, decode
from app.inference.pipeline import KnownSpeaker

MAX_KNOWN = 8
MIN_S, MAX_S = 2.0, 10.0
DATA_URL = re.compile(r"data:(?P<type>[\w.+/-]*)(?:;[\w=.+-]+)*;base64,(?P<data>.*)", re.DOTALL)


async def known_speakers(names: list[str] | None, references: list[str] | None) -> list[KnownSpeaker]:
    names, references = names or [], references or []
    if len(names) != len(references):
        raise bad_request(f"known_speaker_names[] has {len(names)} entries and known_speaker_references[] has"
                          f" {len(references)}: they are paired by position", "invalid_known_speakers")  # fmt: skip
    if len(names) > MAX_KNOWN:
        raise bad_request(f"at most {MAX_KNOWN} known speakers, got {len(names)}", "invalid_known_speakers")
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if not name.strip():
            raise bad_request(f"known_speaker_names[{i}] is empty", "invalid_known_speakers")
        if name.strip() in seen:
            raise bad_request(f"known_speaker_names[{i}] repeats {name.strip()!r} (index {seen[name.strip()]})",
                              "invalid_known_speakers")  # fmt: skip
        seen[name.strip()] = i
    clips = [_data(i, reference) for i, reference in enumerate(references)]
    return await run_in_threadpool(_decode_all, [n.strip() for n in names], clips)


def _data(index: int, reference: str) -> bytes:
    match = DATA_URL.fullmatch(reference.strip())
    if match is None:
        raise bad_request(f"known_speaker_references[{index}] is not a base64 data URL (data:audio/...;base64,...)",
                          "invalid_known_speakers")  # fmt: skip
    try:
        return base64.b64decode(match["data"], validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"known_speaker_references[{index}] is not valid base64", "invalid_known_speakers") from None


def _decode_all(names: list[str], clips: list[bytes]) -> list[KnownSpeaker]:
    out = []
    with tempfile.TemporaryDirectory(prefix="whisperx-voices-") as tmp:
        for i, (name, clip) in enumerate(zip(names, clips, strict=True)):
            source, target = Path(tmp) / f"{i}", Path(tmp) / f"{i}.s16le"
            source.write_bytes(clip)
            try:
                audio = decode(source, target, max_audio_s=MAX_S * 2)
            except AudioError as exc:
                raise bad_request(f"known_speaker_references[{i}]: {exc}", "invalid_known_speakers") from None
            if not MIN_S <= audio.duration <= MAX_S:
                says = f"is {audio.duration:.1f} s long: a reference is {MIN_S:g}-{MAX_S:g} s of one person speaking"
                raise bad_request(f"known_speaker_references[{i}] {says}", "invalid_known_speakers")
            out.append(KnownSpeaker(name, audio.read()))
    return out
