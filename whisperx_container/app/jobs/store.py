"""Jobs on disk: one directory per job on the whisperx-jobs volume (WHISPERX_JOBS_DIR), each write atomic.

    <id>/job.json            the job: status, times, progress, options, its windows (rewritten atomically)
    <id>/upload              the upload as received, until it is decoded
    <id>/audio.s16le         the decoded recording (16 kHz mono PCM), kept while the job can still run
    <id>/windows/NNNNN.json  one checkpoint per finished window: its segments and its diarization
    <id>/windows/NNNNN.work/ the work done so far inside a window not finished yet (Scratch), until it is
    <id>/voices/NN.npy       the known speakers' reference clips (16 kHz float32), named in job.json
    <id>/speakers/NN.wav     each speaker's clearest speech, cut at completion (app/jobs/speakers.py)
    <id>/events.jsonl        every event the job sent, one JSON object a line, numbered from 1
    <id>/result.json         the transcript, once completed

A file is written under a temporary name, flushed to disk, renamed over the old one and its directory
synced, so a crash at any instant leaves either the old or the new version, never half of one. Events are
appended and synced one by one; a torn last line (a crash mid-append) is dropped when the log is read.
The work in progress inside a window is only a head start: written atomically but not synced, and what
cannot be read back is done again.
"""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import shutil
import time
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
STATUSES = ("queued", "running", "completed", "failed", "canceled")
FINISHED = ("completed", "failed", "canceled")


class CorruptJob(Exception):
    """A file of the job cannot be read back (the message says which)."""


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    sync_dir(path.parent)


def sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise CorruptJob(f"{path.name} cannot be read back ({type(exc).__name__})") from None


@dataclass
class Job:
    """A job's record (job.json). Times are Unix seconds (CONTRACT section 1, "Jobs")."""

    id: str
    filename: str
    created_at: int
    status: str = "queued"
    started_at: int | None = None
    finished_at: int | None = None
    duration: float | None = None
    windows: list[list[float]] = field(default_factory=list)  # [start, end] of each window, once decoded
    windows_done: int = 0
    audio_s_done: float = 0.0
    eta_s: int | None = None
    speakers: int | None = None  # how many were found, once completed
    error: dict[str, str] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    response_format: str = "json"
    decoded: bool = False

    def view(self) -> dict[str, Any]:
        """The job object of the API."""
        total = len(self.windows)
        fraction = round(self.audio_s_done / self.duration, 3) if self.duration else 0.0
        return {
            "id": self.id,
            "object": "transcription.job",
            "status": self.status,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "filename": self.filename,
            "duration": self.duration,
            "response_format": self.response_format,
            "speakers": self.speakers,
            "progress": {
                "windows_done": self.windows_done,
                "windows_total": total,
                "audio_s_done": round(self.audio_s_done, 3),
                "fraction": 1.0 if self.status == "completed" else min(fraction, 1.0),
                "eta_s": self.eta_s,
            },
            "error": self.error,
        }


class JobStore:
    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    # -- paths --------------------------------------------------------------------------------------
    def dir(self, job_id: str) -> Path:
        return self.root / job_id

    def upload(self, job_id: str) -> Path:
        return self.dir(job_id) / "upload"

    def audio(self, job_id: str) -> Path:
        return self.dir(job_id) / "audio.s16le"

    def _windows(self, job_id: str) -> Path:
        return self.dir(job_id) / "windows"

    # -- records ------------------------------------------------------------------------------------
    def create(self, filename: str, options: dict[str, Any], response_format: str) -> Job:
        job = Job(
            id=f"job_{secrets.token_hex(8)}",
            filename=filename,
            created_at=int(time.time()),
            options=options,
            response_format=response_format,
        )
        (self.dir(job.id) / "windows").mkdir(parents=True)
        self.save(job)
        return job

    def save(self, job: Job) -> None:
        write_atomic(self.dir(job.id) / "job.json", json.dumps(asdict(job)).encode())

    def load(self, job_id: str) -> Job:
        data = read_json(self.dir(job_id) / "job.json")
        try:
            return Job(**data)
        except TypeError:
            raise CorruptJob("job.json has fields this service does not know") from None

    def ids(self) -> list[str]:
        """Every job on disk, newest first (by creation time, then id)."""
        found = []
        for path in self.root.glob("job_*/job.json"):
            try:
                found.append((path.stat().st_mtime, path.parent.name))
            except OSError:
                continue
        jobs = []
        for _, job_id in found:
            try:
                jobs.append((self.load(job_id).created_at, job_id))
            except CorruptJob:
                jobs.append((0, job_id))
        return [job_id for _, job_id in sorted(jobs, reverse=True)]

    def delete(self, job_id: str) -> None:
        shutil.rmtree(self.dir(job_id), ignore_errors=True)

    # -- checkpoints ------------------------------------------------------------------------------
    def save_window(self, job_id: str, index: int, result: dict[str, Any]) -> None:
        """The window's checkpoint; the work in progress that led to it goes."""
        write_atomic(self._windows(job_id) / f"{index:05d}.json", json.dumps(result, default=_scalar).encode())
        shutil.rmtree(self.work(job_id, index), ignore_errors=True)

    def work(self, job_id: str, index: int) -> Path:
        return self._windows(job_id) / f"{index:05d}.work"

    def windows(self, job_id: str) -> list[dict[str, Any]]:
        """The checkpoints of the windows finished so far, in order (CorruptJob if one cannot be read)."""
        paths = sorted(self._windows(job_id).glob("[0-9]*.json"))
        results = [read_json(p) for p in paths]
        if [r.get("index") for r in results] != list(range(len(results))):
            raise CorruptJob("the window checkpoints are not the windows 0, 1, 2, ... in order")
        return results

    # -- known speakers ---------------------------------------------------------------------------
    def save_voices(self, job_id: str, clips: list[np.ndarray]) -> None:
        (self.dir(job_id) / "voices").mkdir(exist_ok=True)
        for i, samples in enumerate(clips):
            buffer = io.BytesIO()
            np.save(buffer, np.asarray(samples, dtype=np.float32), allow_pickle=False)
            write_atomic(self.dir(job_id) / "voices" / f"{i:02d}.npy", buffer.getvalue())

    def voices(self, job_id: str, count: int) -> list[np.ndarray]:
        """The job's `count` reference clips (CorruptJob if one cannot be read)."""
        clips = []
        for i in range(count):
            path = self.dir(job_id) / "voices" / f"{i:02d}.npy"
            try:
                clips.append(np.load(path, allow_pickle=False))
            except (OSError, ValueError, EOFError):
                raise CorruptJob(f"its known speaker reference {path.name} cannot be read back") from None
        return clips

    # -- the result -------------------------------------------------------------------------------
    def save_result(self, job_id: str, result: dict[str, Any]) -> None:
        write_atomic(self.dir(job_id) / "result.json", json.dumps(result).encode())

    def result(self, job_id: str) -> dict[str, Any]:
        return read_json(self.dir(job_id) / "result.json")

    def save_clips(self, job_id: str, clips: dict[str, bytes]) -> dict[str, str]:
        """Each speaker's clip (WAV bytes) as speakers/NN.wav; the file name per speaker, for result.json."""
        (self.dir(job_id) / "speakers").mkdir(exist_ok=True)
        names = {}
        for i, (label, data) in enumerate(clips.items()):
            names[label] = f"{i:02d}.wav"
            write_atomic(self.dir(job_id) / "speakers" / names[label], data)
        return names

    def clip(self, job_id: str, name: str) -> Path:
        return self.dir(job_id) / "speakers" / Path(name).name

    # -- events -----------------------------------------------------------------------------------
    def append_event(self, job_id: str, event: dict[str, Any]) -> None:
        with open(self.dir(job_id) / "events.jsonl", "ab") as log:
            log.write(json.dumps(event, default=_scalar).encode() + b"\n")
            log.flush()
            os.fsync(log.fileno())

    def events(self, job_id: str) -> list[dict[str, Any]]:
        try:
            raw = (self.dir(job_id) / "events.jsonl").read_bytes()
        except OSError:
            return []
        events = []
        for line in raw.splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                break  # a torn last line: the crash came mid-append
        return events

    # -- space ------------------------------------------------------------------------------------
    def size(self, job_id: str | None = None) -> int:
        """Bytes the jobs take (one job's, or all of them); uploads still arriving are not jobs yet."""
        top = self.dir(job_id) if job_id else self.root
        return sum(p.stat().st_size for p in walk(top) if not p.name.startswith(".incoming-"))

    def drop_audio(self, job_id: str) -> None:
        """A finished job needs its transcript, not its recording."""
        for path in (self.upload(job_id), self.audio(job_id)):
            path.unlink(missing_ok=True)


class Scratch:
    """A job's work in progress inside its unfinished windows (app.inference.pipeline.Scratch), as files in
    windows/NNNNN.work/: `.npy` an array, `.npz` a dict of arrays, `.json` JSON. Written to a temporary name
    and renamed, not synced: a file a crash tore or lost is None to `get`, and that work is done again."""

    def __init__(self, store: JobStore, job_id: str):
        self.store = store
        self.job_id = job_id

    def get(self, index: int, name: str) -> Any:
        path = self.store.work(self.job_id, index) / name
        try:
            if name.endswith(".json"):
                return json.loads(path.read_bytes())
            if name.endswith(".npz"):
                with np.load(path, allow_pickle=False) as kept:
                    return dict(kept)
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            return None

    def put(self, index: int, name: str, value: Any) -> None:
        directory = self.store.work(self.job_id, index)
        tmp = directory / f".{name}.tmp"
        try:
            directory.mkdir(exist_ok=True)
            with open(tmp, "wb") as out:
                if name.endswith(".json"):
                    out.write(json.dumps(value, default=_scalar).encode())
                elif name.endswith(".npz"):
                    np.savez(out, **value)
                else:
                    np.save(out, value, allow_pickle=False)
            os.replace(tmp, directory / name)
        except OSError as exc:  # a full disk, or the job deleted meanwhile: the checkpoints proper will say
            log.warning("job %s: window %d's %s not kept: %s", self.job_id, index, name, exc)


def _scalar(value: Any) -> Any:
    """numpy scalars (a model's probabilities) as the plain numbers JSON holds."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def walk(top: Path) -> Iterator[Path]:
    for directory, _, files in os.walk(top):
        for name in files:
            path = Path(directory) / name
            if not path.is_symlink():
                yield path
