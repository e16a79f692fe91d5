"""Durable transcription jobs: run in the service's one queue, checkpointed per window, resumed after a restart.

A job depends on no connection. Its upload is on disk before the 202; it waits for the inference thread
in the same bounded queue as the synchronous requests; while it runs, every finished window is written
down (its segments and its diarization: `WindowResult`) and announced as a `progress` event. When the
service starts, every job that was queued or running is taken up again: the finished windows are read
back and replayed into the pipeline, which goes on from the first unfinished one. Inside a window the
work done so far is kept too (its segmentation, each batch of speaker embeddings and of Whisper, its
diarization: `store.Scratch`), so a resumed run redoes at most one batch of each. A job whose files
cannot be read back fails with a message; the service stays up.

Retention: finished jobs go WHISPERX_JOBS_RETENTION_H after they ended; the store is capped at
WHISPERX_JOBS_MAX_GB, the oldest finished jobs evicted first, and a job that still does not fit is a 507.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from app.api.errors import APIError
from app.api.queue import InferenceQueue, QueueFull, Slot, Ticket
from app.config import Settings
from app.inference.audio import AudioError, PcmAudio, decode
from app.inference.loader import ModelError, ModelLoader
from app.inference.pipeline import Cancelled, KnownSpeaker, Options, StageTimer, WindowResult
from app.inference.state import ServiceState
from app.inference.transcript import Transcript
from app.jobs import speakers
from app.jobs.store import FINISHED, CorruptJob, Job, JobStore, Scratch

log = logging.getLogger(__name__)
GB = 1 << 30


class JobRunner:
    def __init__(self, settings: Settings, state: ServiceState, queue: InferenceQueue, loader: ModelLoader):
        self.settings = settings
        self.state = state
        self.queue = queue
        self.loader = loader
        self.store = JobStore(settings.whisperx_jobs_dir)
        self._cancel: dict[str, threading.Event] = {}
        self._slots: dict[str, Slot] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._changed: dict[str, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._housekeeping: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Take up every job a stopped service left queued or running; start the retention sweep."""
        self._loop = asyncio.get_running_loop()
        for job_id in reversed(self.store.ids()):  # oldest first: they queue in the order they came
            try:
                job = self.store.load(job_id)
            except CorruptJob as exc:
                log.error("job %s cannot be read back: %s", job_id, exc)
                continue
            if job.status in ("queued", "running"):
                log.info("taking up job %s again (%s, %d of %d windows done)", job.id, job.status,
                         job.windows_done, len(job.windows))  # fmt: skip
                self._schedule(job, self.queue.reserve(force=True))
        self._housekeeping = asyncio.create_task(self._sweep_every(3600), name="jobs-retention")

    async def stop(self) -> None:
        if self._housekeeping:
            self._housekeeping.cancel()

    # -- the API's side ---------------------------------------------------------------------------
    def submit(self, ticket: Ticket | None, upload: Path, filename: str, options: dict[str, Any], fmt: str,
               known: list[KnownSpeaker] = ()) -> Job:  # fmt: skip
        """A new job for an upload already on disk (moved into the job's directory): queued now. The known
        speakers' names go in its options, their clips beside it."""
        self._make_room(upload.stat().st_size)
        try:
            slot = ticket.reserve() if ticket else self.queue.reserve()
        except QueueFull as full:
            raise APIError(429, "too many requests are queued; retry later", "rate_limit_error", "queue_full",
                           {"Retry-After": str(full.retry_after)}) from None  # fmt: skip
        if known:
            options = {**options, "known_speaker_names": [k.name for k in known]}
        job = self.store.create(filename, options, fmt)
        self.store.save_voices(job.id, [k.samples for k in known])
        shutil.move(upload, self.store.upload(job.id))
        self._event(job, "status", {"status": "queued"})
        self._schedule(job, slot)
        return job

    def get(self, job_id: str) -> Job:
        if not job_id.startswith("job_") or not self.store.dir(job_id).is_dir():
            raise APIError(404, f"no such job: {job_id}", code="not_found")
        try:
            return self.store.load(job_id)
        except CorruptJob as exc:
            raise APIError(500, f"job {job_id} cannot be read back: {exc}", "server_error", "corrupt_job") from None

    def list(self, limit: int, after: str | None) -> tuple[list[Job], bool]:
        ids = self.store.ids()
        if after:
            ids = ids[ids.index(after) + 1 :] if after in ids else []
        jobs = []
        for job_id in ids[: limit + 1]:
            try:
                jobs.append(self.store.load(job_id))
            except CorruptJob:
                continue
        return jobs[:limit], len(jobs) > limit

    def transcript(self, job: Job) -> Transcript:
        if job.status != "completed":
            raise APIError(409, f"job {job.id} is {job.status}, not completed", code="job_not_completed")
        try:
            saved = self.store.result(job.id)
            transcript = Transcript.model_validate(saved["transcript"])
        except (CorruptJob, KeyError, ValueError) as exc:
            raise APIError(500, f"the result of job {job.id} cannot be read back: {exc}", "server_error",
                           "corrupt_job") from None  # fmt: skip
        for segment, logprob in zip(transcript.segments, saved.get("avg_logprob", []), strict=False):
            segment.avg_logprob = logprob
        return transcript

    def speaker_clip(self, job: Job, label: str) -> Path:
        """The WAV of speaker `label`'s clearest speech (app/jobs/speakers.py)."""
        self.transcript(job)  # 409 unless completed
        saved = self.store.result(job.id)
        if not any(s["id"] == label for s in saved["transcript"]["speakers"]):
            raise APIError(404, f"job {job.id} has no speaker {label!r}", code="unknown_speaker")
        name = saved.get("clips", {}).get(label)
        if name is None:
            raise APIError(409, f"{label} has less than {speakers.MIN_S:g} s of speech no one else talks over in "
                           f"job {job.id}: no clip of it was kept", code="no_clear_speech")  # fmt: skip
        return self.store.clip(job.id, name)

    def rename_speaker(self, job: Job, label: str, name: str) -> dict[str, Any]:
        """Call speaker `label` `name` in the job's transcript (every format of its result); that speaker."""
        self.transcript(job)
        saved, speaker = speakers.rename(self.store.result(job.id), label, name)
        self.store.save_result(job.id, saved)
        return speaker

    async def delete(self, job_id: str) -> None:
        """Cancel a queued or running job (it stops within one window) and delete its files."""
        self.get(job_id)
        if (cancel := self._cancel.get(job_id)) is not None:
            cancel.set()
            if slot := self._slots.get(job_id):
                slot.cancel()
            if task := self._tasks.get(job_id):
                await asyncio.wait({task})
        self.store.delete(job_id)
        self._changed.pop(job_id, None)

    async def events(self, job_id: str, after: int) -> AsyncIterator[dict[str, Any]]:
        """The job's events after id `after`, then each new one as it comes, until `done`."""
        self.get(job_id)
        while True:
            changed = self._changed.setdefault(job_id, asyncio.Event())
            for event in self.store.events(job_id):
                if event["id"] > after:
                    after = event["id"]
                    yield event
                    if event["event"] == "done":
                        return
            if not self.store.dir(job_id).is_dir():
                return  # deleted meanwhile
            try:
                await asyncio.wait_for(changed.wait(), 15)
            except TimeoutError:
                continue
            finally:
                changed.clear()

    # -- running ----------------------------------------------------------------------------------
    def _schedule(self, job: Job, slot: Slot) -> None:
        self._cancel[job.id] = threading.Event()
        self._slots[job.id] = slot
        self._tasks[job.id] = asyncio.create_task(self._run(job, slot), name=f"job-{job.id}")

    async def _run(self, job: Job, slot: Slot) -> None:
        cancel = self._cancel[job.id]
        try:
            await asyncio.to_thread(self.state.settled.wait)  # a job taken up at start waits for the models
            if self.state.status not in ("ready", "unloaded"):
                raise APIError(503, f"the models failed to load: {self.state.error}", "server_error",
                               "model_unavailable")  # fmt: skip
            await slot.run(self._execute, job, cancel)
        except (Cancelled, asyncio.CancelledError):
            if cancel.is_set():
                self._finish(job, "canceled")
        except APIError as exc:
            self._finish(job, "failed", {"message": exc.message, "type": exc.type, "code": exc.code})
        except CorruptJob as exc:
            log.error("job %s failed: %s", job.id, exc)
            self._finish(job, "failed", {"message": str(exc), "type": "server_error", "code": "corrupt_job"})
        except Exception as exc:
            log.exception("job %s failed", job.id)
            message = f"the transcription failed: {type(exc).__name__}: {exc}"
            self._finish(job, "failed", {"message": message, "type": "server_error", "code": "internal_error"})
        finally:
            slot.release()
            self._cancel.pop(job.id, None)
            self._slots.pop(job.id, None)
            self._tasks.pop(job.id, None)

    def _execute(self, job: Job, cancel: threading.Event) -> None:
        """On the inference thread: decode once, then the windows not done yet, each one checkpointed."""
        job.status = "running"
        job.started_at = job.started_at or int(time.time())
        self.store.save(job)
        self._event_threadsafe(job, "status", {"status": "running"})
        started = time.perf_counter()
        audio = self._audio(job)
        decode_s = time.perf_counter() - started
        self.state.used_at = time.monotonic()
        try:
            self.loader.ensure_loaded()  # back after an idle unload
        except ModelError as exc:
            raise APIError(503, str(exc), "server_error", "model_unavailable") from None
        pipeline = self.state.pipeline
        if not job.windows:
            job.windows = [list(w) for w in pipeline.windows(audio)]
            self.store.save(job)
        done = [WindowResult.from_json(w) for w in self.store.windows(job.id)]
        settings = dict(job.options)
        names = settings.pop("known_speaker_names", [])
        known = [KnownSpeaker(n, clip) for n, clip in zip(names, self.store.voices(job.id, len(names)), strict=True)]
        options = Options(**settings, known_speakers=known, cancel=cancel)
        began, audio_before = time.monotonic(), job.audio_s_done

        def finished(result: WindowResult, labelled: list[dict]) -> None:
            self.store.save_window(job.id, result.index, result.to_json())
            job.windows_done, job.audio_s_done = result.index + 1, result.end
            rate = (time.monotonic() - began) / max(result.end - audio_before, 1e-6)
            job.eta_s = round(rate * (audio.duration - result.end))
            self.store.save(job)
            self._event_threadsafe(job, "progress", {"progress": job.view()["progress"], "segments": labelled})

        timer = StageTimer()
        windows = [tuple(w) for w in job.windows]
        transcript = pipeline.run(audio, options, timer, windows=windows, done=done, on_window=finished,
                                  scratch=Scratch(self.store, job.id))  # fmt: skip
        stages = {f"{name}_s": timer.seconds.get(name, 0.0) for name in ("vad", "transcribe", "align", "diarize")}
        timings = {"decode_s": decode_s, **stages, "total_s": time.perf_counter() - started}  # this run's
        clips = self.store.save_clips(job.id, speakers.clips(transcript, audio))  # before the audio goes
        self.store.save_result(job.id, {
            "transcript": transcript.model_dump(mode="json"),
            "avg_logprob": [s.avg_logprob for s in transcript.segments],
            "timings": {name: round(s, 3) for name, s in timings.items()},
            "windows_run": len(job.windows) - len(done),
            "replayed": dict(timer.replayed),  # work inside the unfinished windows an earlier run had kept
            "clips": clips,
        })  # fmt: skip
        job.audio_s_done, job.eta_s, job.speakers = audio.duration, 0, len(transcript.speakers)
        self.state.used_at = time.monotonic()
        self._finish_threadsafe(job, "completed")

    def _audio(self, job: Job) -> PcmAudio:
        target = self.store.audio(job.id)
        if job.decoded:
            if not target.is_file():
                raise CorruptJob("its decoded audio is gone from the job store")
            return PcmAudio(target, target.stat().st_size // 2)
        source = self.store.upload(job.id)
        if not source.is_file():
            raise CorruptJob("its upload is gone from the job store")
        try:
            audio = decode(source, target, self.settings.whisperx_max_audio_s)
        except AudioError as exc:
            target.unlink(missing_ok=True)
            raise APIError(400, str(exc), code="invalid_audio") from None
        source.unlink()
        job.decoded, job.duration = True, round(audio.duration, 3)
        self.store.save(job)
        return audio

    # -- endings and events -----------------------------------------------------------------------
    def _finish(self, job: Job, status: str, error: dict[str, str] | None = None) -> None:
        if not self.store.dir(job.id).is_dir():
            return  # deleted while it ran
        job.status, job.finished_at, job.error = status, int(time.time()), error
        if status == "completed":
            job.windows_done = len(job.windows)
        self.store.drop_audio(job.id)
        self.store.save(job)
        self._event(job, "status", {"status": status})
        self._event(job, "done", {"status": status, "error": error})

    def _finish_threadsafe(self, job: Job, status: str) -> None:
        self._call(self._finish, job, status)

    def _event(self, job: Job, name: str, data: dict[str, Any]) -> None:
        if not self.store.dir(job.id).is_dir():
            return
        events = self.store.events(job.id)
        self.store.append_event(job.id, {"id": events[-1]["id"] + 1 if events else 1, "event": name, "data": data})
        if changed := self._changed.get(job.id):
            changed.set()

    def _event_threadsafe(self, job: Job, name: str, data: dict[str, Any]) -> None:
        self._call(self._event, job, name, data)

    def _call(self, fn, *args) -> None:
        """Run `fn` on the event loop and wait for it: events are numbered and written by one thread only."""
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(_run_sync(fn, *args), self._loop).result()

    # -- retention --------------------------------------------------------------------------------
    async def _sweep_every(self, every_s: float) -> None:
        while True:
            self.sweep()
            await asyncio.sleep(every_s)

    def sweep(self) -> list[str]:
        """Delete the finished jobs past WHISPERX_JOBS_RETENTION_H."""
        cutoff = time.time() - self.settings.whisperx_jobs_retention_h * 3600
        gone = []
        for job_id in self.store.ids():
            try:
                job = self.store.load(job_id)
            except CorruptJob:
                continue
            if job.status in FINISHED and (job.finished_at or 0) < cutoff:
                self.store.delete(job_id)
                gone.append(job_id)
        if gone:
            log.info("deleted %d jobs past their retention", len(gone))
        return gone

    def _make_room(self, incoming: int) -> None:
        """Evict the oldest finished jobs until `incoming` bytes (and their decoded audio) fit under the cap."""
        cap = self.settings.whisperx_jobs_max_gb * GB
        need = incoming * 2  # the upload, then the decoded audio beside it for a moment
        used = self.store.size()
        for job_id in reversed(self.store.ids()):
            if used + need <= cap:
                break
            try:
                job = self.store.load(job_id)
            except CorruptJob:
                continue
            if job.status in FINISHED:
                used -= self.store.size(job_id)
                self.store.delete(job_id)
                log.info("evicted job %s to make room (WHISPERX_JOBS_MAX_GB)", job_id)
        if used + need > cap:
            raise APIError(507, f"the job store is full: this upload does not fit under WHISPERX_JOBS_MAX_GB "
                                f"({self.settings.whisperx_jobs_max_gb:g} GB) beside the jobs still queued or running",
                           "server_error", "insufficient_storage")  # fmt: skip


async def _run_sync(fn, *args) -> None:
    fn(*args)
