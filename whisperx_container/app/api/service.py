"""The service: settings, model state, the queue and metrics, and one request's path through them."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path

from fastapi import Request, UploadFile
from starlette.concurrency import run_in_threadpool

from app.api.errors import APIError
from app.api.metrics import Metrics
from app.api.queue import InferenceQueue, QueueFull, Slot
from app.api.schemas import Timings
from app.config import Settings
from app.inference.audio import AudioError, PcmAudio, decode
from app.inference.loader import ModelError, ModelLoader
from app.inference.pipeline import Cancelled, Options, StageTimer, WindowDone
from app.inference.state import ServiceState
from app.inference.transcript import Transcript

log = logging.getLogger(__name__)
UPLOAD_DIR_PREFIX = "whisperx-request-"


class Service:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.state = ServiceState(compute_type=settings.whisperx_compute_type)
        self.loader = ModelLoader(settings, self.state)
        self.metrics = Metrics()
        self.queue = InferenceQueue(settings.whisperx_queue_limit, self.metrics)
        self.started = int(time.time())

    def require_ready(self) -> None:
        if self.state.status == "loading":
            raise APIError(503, "the models are still loading; retry shortly", "server_error", "model_loading",
                           {"Retry-After": "10"})  # fmt: skip
        if self.state.status == "error":
            raise APIError(503, f"the models failed to load: {self.state.error}", "server_error", "model_unavailable")

    async def transcribe(
        self,
        request: Request,
        upload: UploadFile,
        options: Options,
        on_window: WindowDone | None = None,
        started: asyncio.Future[None] | None = None,
    ) -> tuple[Transcript, Timings]:
        """Run one upload through the pipeline: its transcript, and the seconds each stage took.

        The request was admitted before its body was read (admission.py); its ticket becomes a slot here.
        A caller that goes away is noticed at once: waiting, its slot leaves the queue; running,
        the pipeline stops at its next window. Either way the answer is a 499 nobody reads. A cancelled
        call stops the pipeline the same way. `started` is set once the upload is decoded and handed to
        the queue; `on_window` hears of each finished window (a streamed response).
        """
        self.require_ready()
        ticket = getattr(request.state, "ticket", None)
        try:
            slot = ticket.reserve() if ticket else self.queue.reserve()
        except QueueFull as full:
            raise APIError(429, "too many requests are queued; retry later", "rate_limit_error", "queue_full",
                           {"Retry-After": str(full.retry_after)}) from None  # fmt: skip
        options.cancel = threading.Event()
        watcher = asyncio.create_task(self._watch_caller(request, slot, options.cancel))
        workdir = Path(tempfile.mkdtemp(prefix=UPLOAD_DIR_PREFIX))
        try:
            began = time.perf_counter()
            audio = await run_in_threadpool(self._decode, upload, workdir)
            decode_s = time.perf_counter() - began
            timer = StageTimer()
            if started is not None:
                started.set_result(None)
            transcript = await slot.run(self._run, audio, options, timer, on_window)
        except (Cancelled, asyncio.CancelledError):
            if not options.cancel.is_set():
                options.cancel.set()  # this call was cancelled (a stream's caller left): stop at the next window
                slot.cancel()
                log.info("the call was cancelled: its transcription was dropped")
                raise
            log.info("the caller went away: its transcription was dropped")
            raise APIError(499, "the client closed the request", code="client_closed") from None
        finally:
            watcher.cancel()
            slot.release(lambda: shutil.rmtree(workdir, ignore_errors=True))
        total_s = time.perf_counter() - began
        stages = {
            "decode_s": decode_s,
            "vad_s": timer.seconds.get("vad", 0.0),
            "transcribe_s": timer.seconds.get("transcribe", 0.0),
            "align_s": timer.seconds.get("align", 0.0),
            "diarize_s": timer.seconds.get("diarize", 0.0),
            "total_s": total_s,
        }
        for name, seconds in stages.items():
            self.metrics.stage_seconds.labels(name.removesuffix("_s")).observe(seconds)
        if audio.duration > 0:
            self.metrics.rtf.observe(total_s / audio.duration)
            self.metrics.audio_seconds.inc(audio.duration)
        return transcript, Timings(**{k: round(v, 3) for k, v in stages.items()})

    def _run(self, audio: PcmAudio, options: Options, timer: StageTimer, on_window: WindowDone | None) -> Transcript:
        """On the inference thread: the models (back after an idle unload), then the pipeline."""
        self.state.used_at = time.monotonic()
        try:
            try:
                self.loader.ensure_loaded()
            except ModelError as exc:
                raise APIError(503, str(exc), "server_error", "model_unavailable") from None
            return self.state.pipeline.run(audio, options, timer, on_window=on_window)
        finally:
            self.state.used_at = time.monotonic()

    async def unload_when_idle(self) -> None:
        """Release the models once nothing used them for WHISPERX_IDLE_UNLOAD_S (a task for the app's life)."""
        idle_s = self.settings.whisperx_idle_unload_s
        while True:
            await asyncio.sleep(min(30.0, max(idle_s / 4, 0.25)))
            queue = self.queue
            idle = queue.running + queue.queued == 0 and time.monotonic() - self.state.used_at >= idle_s
            if self.state.status == "ready" and idle:  # checked again on the inference thread
                await asyncio.wrap_future(queue._executor.submit(self.loader.unload, idle_s))

    @staticmethod
    async def _watch_caller(request: Request, slot: Slot, cancel: threading.Event) -> None:
        # The body was read by now: the next ASGI message can only be the caller going away.
        while (await request.receive())["type"] != "http.disconnect":
            pass
        cancel.set()
        slot.cancel()  # still waiting: out of the queue now

    def _decode(self, upload: UploadFile, workdir: Path) -> PcmAudio:
        source = workdir / "upload"
        with source.open("wb") as out:
            upload.file.seek(0)
            shutil.copyfileobj(upload.file, out, 1 << 20)
        if source.stat().st_size == 0:
            raise APIError(400, "the uploaded file is empty", code="empty_file")
        try:
            return decode(source, workdir / "audio.s16le", self.settings.whisperx_max_audio_s)
        except AudioError as exc:
            raise APIError(400, str(exc), code="invalid_audio") from None
        finally:
            source.unlink(missing_ok=True)


def get_service(request: Request) -> Service:
    return request.app.state.service


def remove_leftovers() -> None:
    """Delete the request directories a killed process left in the temporary directory."""
    for leftover in Path(tempfile.gettempdir()).glob(f"{UPLOAD_DIR_PREFIX}*"):
        shutil.rmtree(leftover, ignore_errors=True)
        log.info("removed %s, left by a request the previous process did not finish", leftover)
