"""`stream=true` on /v1/audio/transcriptions: OpenAI's transcription events as Server-Sent Events.

The pipeline announces each finished window (its segments, speakers as far as known); the window's
text becomes one `transcript.text.delta` (and, for `diarized_json`, each segment a
`transcript.text.segment`, speakers lettered A, B, ... as they first speak), and the end one
`transcript.text.done` with the whole text and the usage, all as bare `data:` lines, the way OpenAI
sends them, so the official client iterates them unmodified. What can fail before the first window
(not ready, queue full, bad audio) is still a plain HTTP error: the response starts once the upload
is decoded and the request has its slot. A caller that goes away cancels the run at its next window.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

from fastapi import Request, UploadFile
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.api.errors import APIError
from app.api.formats import letter
from app.api.service import Service
from app.inference.pipeline import Options, WindowResult

log = logging.getLogger(__name__)


async def stream_transcription(
    request: Request, service: Service, upload: UploadFile, options: Options, diarized: bool
) -> EventSourceResponse:
    loop = asyncio.get_running_loop()
    windows: asyncio.Queue[list[dict] | None] = asyncio.Queue()
    started: asyncio.Future[None] = loop.create_future()

    def on_window(_: WindowResult, labelled: list[dict]) -> None:  # on the inference thread
        loop.call_soon_threadsafe(windows.put_nowait, labelled)

    task = asyncio.create_task(service.transcribe(request, upload, options, on_window=on_window, started=started))
    task.add_done_callback(lambda _: windows.put_nowait(None))
    await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # failed before the pipeline ran: the usual HTTP error
    names = {known.name for known in options.known_speakers}
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return EventSourceResponse(_events(task, windows, diarized, names), ping=15, headers=headers)


async def _events(
    task: asyncio.Task, windows: asyncio.Queue, diarized: bool, names: set[str]
) -> AsyncIterator[ServerSentEvent]:
    letters: dict[str, str] = {}
    said, count = False, 0
    try:
        while (segments := await windows.get()) is not None:
            spoken = [seg for seg in segments if seg["text"].strip()]
            if spoken:
                text = " ".join(seg["text"].strip() for seg in spoken)
                yield _event({"type": "transcript.text.delta", "delta": (" " if said else "") + text})
                said = True
            for seg in spoken if diarized else ():
                label = seg.get("speaker") or ""
                speaker = label if label in names else letters.setdefault(label, letter(len(letters)))
                yield _event({"type": "transcript.text.segment", "id": f"seg_{count}", "start": seg["start"],
                              "end": seg["end"], "speaker": speaker, "text": seg["text"].strip()})  # fmt: skip
                count += 1
        try:
            transcript, _ = task.result()
        except APIError as exc:
            yield _event({"error": {"message": exc.message, "type": exc.type, "code": exc.code}})
            return
        except Exception as exc:
            log.exception("a streamed transcription failed")
            error = {"message": f"the transcription failed: {type(exc).__name__}", "type": "server_error",
                     "code": "internal_error"}  # fmt: skip
            yield _event({"error": error})
            return
        usage = {"type": "duration", "seconds": transcript.duration}
        yield _event({"type": "transcript.text.done", "text": transcript.text, "usage": usage})
    finally:
        if not task.done():
            task.cancel()  # the caller went away: the run stops at its next window
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # its 499 has nobody to go to


def _event(data: dict) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps(data))
