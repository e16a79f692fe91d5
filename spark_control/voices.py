"""The voice library: named people, each one or more reference clips, sent as known speakers with every
transcription spark-control hands WhisperX, so transcripts name the people in them.

On disk, one directory an operator backs up with the rest of the data directory:

    DATA_DIR/voices/library.json      the voices: id, name, times, their clips (rewritten atomically)
    DATA_DIR/voices/clips/<file>.wav  each clip, 16 kHz mono WAV of 2-10 s (spark_control/voice_clips.py)

A clip is written (temporary name, fsync, rename) before library.json names it, and library.json drops a
clip before its file is deleted, so a crash at any point leaves a library that reads back whole; a clip no
voice names (the crash came between the two) is deleted when the library is next opened.

What is sent: the voices used most recently first (named a speaker in a transcript, or were added to),
at most SENT (the service's limit on known speakers); a voice's reference is its clips joined, newest
first, up to 10 s. The clips leave spark-control only as those references, to the configured WhisperX.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spark_control.voice_clips import RATE, REFERENCE_S, ClipError, pcm, wav

SENT = 8  # known speakers the service takes per request (whisperx_container/app/api/voices.py)
CLIPS_PER_VOICE = 4  # a fifth replaces the oldest
NAME_MAX = 64
JOIN_S = 0.2


@dataclass
class Clip:
    file: str
    duration: float
    added_at: int
    source: dict[str, str]  # {"kind": "upload", "filename"} or {"kind": "job", "job_id", "speaker"}


@dataclass
class Voice:
    id: str
    name: str
    created_at: int
    used_at: float  # Unix seconds to the millisecond: what orders the voices sent
    clips: list[Clip] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        clips = [
            {"index": i, "duration": c.duration, "added_at": c.added_at, "source": c.source,
             "url": f"/api/voices/{self.id}/clips/{i}"}
            for i, c in enumerate(self.clips)
        ]  # fmt: skip
        return {"id": self.id, "object": "voice", "name": self.name, "created_at": self.created_at,
                "used_at": self.used_at, "clips": clips}  # fmt: skip


def clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not name or len(name) > NAME_MAX or any(not c.isprintable() for c in name):
        raise ClipError(f"a voice's name is 1-{NAME_MAX} printable characters", code="invalid_name")
    return name


class VoiceLibrary:
    def __init__(self, root: Path, limit: int):
        self.root = root
        self.clips_dir = root / "clips"
        self.limit = limit
        self._lock = threading.Lock()
        self.clips_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._voices = self._load()
        self._references: list[tuple[str, str]] | None = None  # (name, data URL), until the library changes

    # -- reading ------------------------------------------------------------------------------------
    def list(self) -> list[Voice]:
        return sorted(self._voices.values(), key=lambda v: v.name.casefold())

    def get(self, voice_id: str) -> Voice | None:
        return self._voices.get(voice_id)

    def named(self, name: str) -> Voice | None:
        wanted = name.casefold()
        return next((v for v in self._voices.values() if v.name.casefold() == wanted), None)

    def clip_path(self, voice: Voice, index: int) -> Path | None:
        return self.clips_dir / voice.clips[index].file if 0 <= index < len(voice.clips) else None

    def references(self) -> list[tuple[str, str]]:
        """(name, data URL) of the voices to send, most recently used first, SENT at most."""
        with self._lock:
            if self._references is None:
                chosen = sorted(self._voices.values(), key=lambda v: (-v.used_at, v.name))[:SENT]
                self._references = [(v.name, self._reference(v)) for v in chosen if v.clips]
            return list(self._references)

    def _reference(self, voice: Voice) -> str:
        pieces, total = [], 0.0
        gap = np.zeros(int(JOIN_S * RATE), np.float32)
        for clip in reversed(voice.clips):  # newest first
            samples = pcm((self.clips_dir / clip.file).read_bytes())
            length = len(samples) / RATE + (JOIN_S if pieces else 0.0)
            if total + length > REFERENCE_S:
                break
            pieces += [gap, samples] if pieces else [samples]
            total += length
        return "data:audio/wav;base64," + base64.b64encode(wav(np.concatenate(pieces))).decode()

    # -- changing -----------------------------------------------------------------------------------
    def check_room(self, name: str) -> None:
        """ClipError (409) when a new voice called `name` would be one over the limit."""
        if self.named(name) is None and len(self._voices) >= self.limit:
            raise ClipError(f"the library holds {self.limit} voices (SPARK_CONTROL_VOICES_MAX): delete one first",
                            409, "library_full")  # fmt: skip

    def create(self, name: str, clip: bytes, duration: float, source: dict[str, str]) -> Voice:
        """A new voice (ClipError 409 when the name is taken or the library is full)."""
        name = clean_name(name)
        with self._lock:
            if (taken := self.named(name)) is not None:
                raise ClipError(f"there is already a voice called {taken.name!r} ({taken.id}): add a clip to it "
                                "or choose another name", 409, "duplicate_name")  # fmt: skip
            self.check_room(name)
            voice = Voice(f"voice_{secrets.token_hex(8)}", name, int(time.time()), now())
            self._add_clip(voice, clip, duration, source)
            self._voices[voice.id] = voice
            self._save()
            return voice

    def add(self, voice: Voice, clip: bytes, duration: float, source: dict[str, str]) -> Voice:
        """One more clip for `voice` (its oldest goes when it has CLIPS_PER_VOICE); it counts as used."""
        with self._lock:
            dropped = self._add_clip(voice, clip, duration, source)
            voice.used_at = now()
            self._save()
            for old in dropped:
                (self.clips_dir / old.file).unlink(missing_ok=True)
            return voice

    def delete(self, voice: Voice) -> None:
        with self._lock:
            del self._voices[voice.id]
            self._save()
            for clip in voice.clips:
                (self.clips_dir / clip.file).unlink(missing_ok=True)

    def used(self, names: set[str]) -> None:
        """The voices a transcript named: sent first from now on."""
        wanted = {n.casefold() for n in names}
        with self._lock:
            hits = [v for v in self._voices.values() if v.name.casefold() in wanted]
            if hits:
                for voice in hits:
                    voice.used_at = now()
                self._save()

    def _add_clip(self, voice: Voice, clip: bytes, duration: float, source: dict[str, str]) -> list[Clip]:
        name = f"{voice.id}-{secrets.token_hex(4)}.wav"
        write_synced(self.clips_dir / name, clip)
        voice.clips.append(Clip(name, duration, int(time.time()), source))
        dropped, voice.clips = voice.clips[:-CLIPS_PER_VOICE], voice.clips[-CLIPS_PER_VOICE:]
        return dropped

    def _save(self) -> None:
        self._references = None
        body = {"voices": [asdict(v) for v in self._voices.values()]}
        write_synced(self.root / "library.json", json.dumps(body, indent=1).encode())

    def _load(self) -> dict[str, Voice]:
        for leftover in self.root.glob("**/.*.tmp"):
            leftover.unlink(missing_ok=True)
        try:
            saved = json.loads((self.root / "library.json").read_bytes())
        except FileNotFoundError:
            saved = {"voices": []}
        voices = {}
        for entry in saved["voices"]:
            clips = [Clip(**c) for c in entry.pop("clips")]
            voice = Voice(**entry, clips=[c for c in clips if (self.clips_dir / c.file).is_file()])
            voices[voice.id] = voice
        named = {c.file for v in voices.values() for c in v.clips}
        for orphan in self.clips_dir.glob("*.wav"):
            if orphan.name not in named:  # written, then the process died before library.json named it
                orphan.unlink()
        return voices


def now() -> float:
    return round(time.time(), 3)


def write_synced(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
