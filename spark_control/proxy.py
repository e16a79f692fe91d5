"""The audio proxy: one endpoint, WhisperX when it can diarize, the legacy service otherwise.

With several WhisperX backends (WHISPERX_HOSTS) each request goes to the ready one with the fewest
requests running plus waiting (backends.py), the next one when it fails, and only then to the legacy
service; `X-ASR-Backend` names the backend that answered. A job stays with the backend that took it.

The multipart body is never parsed: past 1 MiB it is spooled to disk in bounded chunks (so a 1 GB
upload costs a file, not memory; a smaller one stays in memory), and either way it can be sent a
second time; it is streamed to the chosen backend with the client's own Content-Type (boundary
included), so both backends see exactly the request the client made and answer in their common shape.
When WhisperX did not take the request or lost it (refused, reset or dropped connection, a 5xx
answer) the same body goes to the next backend, or the legacy service once; after a read timeout it
does not (WhisperX may still be working on it: the caller gets a 504).

The voice library's voices (spark_control/voices.py) go to WhisperX as known speakers: their parts are
appended to the spooled body before its closing boundary, unless the caller sent known speakers of its
own; the legacy service gets the body as the caller sent it.

What a flood costs is bounded: SPARK_CONTROL_PROXY_MAX_CONCURRENT uploads at once (429 beyond, before
any byte is spooled), and a caller that goes away while its answer is pending has its upstream
request closed, so abandoned uploads do not hold WhisperX's queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
from anyio import AsyncFile
from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.requests import ClientDisconnect

from spark_control.backends import Backend, ready_in_order
from spark_control.config import Settings, write_private
from spark_control.health import whisperx_unready
from spark_control.services import TRANSCRIBE_PATH
from spark_control.voices import VoiceLibrary
from spark_control.whisperx import WhisperxMonitor

log = logging.getLogger("spark_control.proxy")

CHUNK = 1 << 20  # spool writes and upstream reads, 1 MiB at a time; a smaller upload never touches the disk
TAIL = 4096  # the end of an upload kept in memory: its closing boundary is there
PASSED_HEADERS = ("content-type", "content-length", "content-encoding", "retry-after", "cache-control")
JOBS_PATH = "/v1/audio/jobs"  # WhisperX's job API (CONTRACT section 1, "Jobs")
BUSY_RETRY_AFTER_S = 5
KNOWN_FIELD = b'name="known_speaker_'  # a caller that names its own known speakers gets no library voices
BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
TEED_MAX = 32 << 20  # a JSON answer up to this size is read for the voices it named
JOB_ID = re.compile(r"job_[0-9a-f]{16}")  # the service's job ids
LIST_PAGE_MAX = 100  # the service's largest page of jobs
LIST_PAGES_PER_BACKEND = 10  # a merged list reads at most this many pages of one backend


@dataclass
class Upload:
    """A multipart body, kept in memory while under CHUNK and spooled to disk beyond (`path`), and what the
    proxy learnt of it on the way: its size, its last bytes (where the closing boundary is), known speakers."""

    content_type: str
    size: int = 0
    body: bytes = b""  # the whole body when it stayed small (no file)
    path: Path | None = None
    tail: bytes = b""
    has_known: bool = False

    def close_at(self, boundary: bytes) -> int | None:
        """Where its closing boundary (CRLF--boundary--) starts, or None when it has none to find."""
        at = self.tail.rfind(b"\r\n--" + boundary + b"--")
        return None if at < 0 else self.size - len(self.tail) + at

    def with_fields(self, fields: list[tuple[str, str]]) -> tuple[bytes, int | None]:
        """The parts for `fields` and where they go (None: nowhere to put them, send the body as it is)."""
        match = BOUNDARY.search(self.content_type)
        at = self.close_at(match[1].encode()) if fields and match else None
        if at is None or match is None:
            return b"", None
        boundary = match[1].encode()
        parts = b"".join(
            b"\r\n--" + boundary + b'\r\nContent-Disposition: form-data; name="' + name.encode() + b'"\r\n\r\n'
            + value.encode()
            for name, value in fields
        )  # fmt: skip
        return parts, at


Forward = Callable[[Upload], Awaitable[Response]]


@dataclass
class Taken:
    """What the WhisperX backends made of an upload: the answer to relay and its backend, or why none took it."""

    response: httpx.Response | None
    backend: Backend | None
    reason: str | None
    sent_at: float | None = None  # what backend.sending() gave: it counts there until released or relayed


def openai_error(status: int, message: str, type_: str, code: str, headers: dict[str, str] | None = None) -> Response:
    """Errors in the OpenAI shape the ASR services use, so a client handles one format."""
    return JSONResponse({"error": {"message": message, "type": type_, "code": code}}, status, headers=headers)


class UploadTooLarge(Exception):
    pass


class AudioProxy:
    def __init__(self, settings: Settings, http: httpx.AsyncClient, whisperx: WhisperxMonitor, voices: VoiceLibrary):
        self.settings = settings
        self.voices = voices
        self.http = http
        self.whisperx = whisperx
        self.max_bytes = settings.proxy_max_upload_mb << 20
        self.timeout = httpx.Timeout(connect=5.0, read=settings.proxy_read_timeout_s, write=600.0, pool=30.0)
        self.active = 0  # uploads being spooled or forwarded now (SPARK_CONTROL_PROXY_MAX_CONCURRENT at most)
        self.job_backends = JobBackends(settings.data_dir / "state" / "audio-jobs.json")
        settings.spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for leftover in settings.spool_dir.glob("upload-*"):
            leftover.unlink(missing_ok=True)

    async def transcribe(self, request: Request) -> Response:
        """POST /api/audio/transcribe-with-speakers: WhisperX, or the legacy service in the same shape."""
        return await self._take_upload(request, self._forward)

    async def _take_upload(self, request: Request, forward: Forward) -> Response:
        """Check, spool and hand on one multipart upload; `forward` sends the spooled body upstream."""
        content_type = request.headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
            return openai_error(
                415,
                "send the audio as multipart/form-data with a `file` field (and optional language, num_speakers, "
                "min_speakers, max_speakers, prompt)",
                "invalid_request_error",
                "unsupported_media_type",
            )
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            return self._too_large()
        if self.active >= self.settings.proxy_max_concurrent:  # refused before a byte reaches the disk
            return openai_error(
                429,
                f"spark-control is already taking {self.active} uploads (SPARK_CONTROL_PROXY_MAX_CONCURRENT): "
                "retry shortly",
                "rate_limit_error",
                "too_many_uploads",
                headers={"Retry-After": str(BUSY_RETRY_AFTER_S)},
            )
        self.active += 1
        upload = Upload(content_type)
        try:
            await self._spool(request, upload)
            if upload.size == 0:
                return openai_error(400, "the request body is empty", "invalid_request_error", "empty_body")
            return await _unless_client_leaves(request, forward(upload))
        except UploadTooLarge:
            return self._too_large()
        except ClientDisconnect:
            return Response(status_code=499)
        finally:
            self.active -= 1
            if upload.path:  # sent already: upstream answers after the body
                await anyio.Path(upload.path).unlink(missing_ok=True)

    def _too_large(self) -> Response:
        return openai_error(
            413,
            f"the upload exceeds {self.settings.proxy_max_upload_mb} MB (SPARK_CONTROL_PROXY_MAX_UPLOAD_MB)",
            "invalid_request_error",
            "file_too_large",
        )

    async def _spool(self, request: Request, upload: Upload) -> None:
        """Read the body into `upload`: in memory until it reaches CHUNK, then to a file in CHUNK-sized writes."""
        pending = bytearray()
        spool: AsyncFile[bytes] | None = None
        try:
            async for chunk in request.stream():
                upload.size += len(chunk)
                if upload.size > self.max_bytes:
                    raise UploadTooLarge
                # The tail of what came before, so a field name split across two chunks is still seen.
                upload.has_known = upload.has_known or KNOWN_FIELD in upload.tail[-len(KNOWN_FIELD) :] + chunk
                upload.tail = (upload.tail + chunk)[-TAIL:]
                pending += chunk
                if len(pending) >= CHUNK:
                    if spool is None:
                        upload.path = await anyio.to_thread.run_sync(self._new_spool_file)
                        spool = await anyio.open_file(upload.path, "wb")
                    await spool.write(bytes(pending))
                    pending.clear()
            if spool is None:
                upload.body = bytes(pending)
            elif pending:
                await spool.write(bytes(pending))
        finally:
            if spool is not None:
                await spool.aclose()

    def _new_spool_file(self) -> Path:
        fd, name = tempfile.mkstemp(prefix="upload-", dir=self.settings.spool_dir)
        os.close(fd)
        return Path(name)

    def _known_speakers(self, upload: Upload) -> list[tuple[str, str]]:
        """The library's voices as form fields, unless the caller sent known speakers of its own."""
        if upload.has_known:
            return []
        pairs = self.voices.references()
        return [(field, value) for name, ref in pairs
                for field, value in (("known_speaker_names[]", name), ("known_speaker_references[]", ref))]  # fmt: skip

    def _note_names(self, body: bytes) -> None:
        """A diarized transcript's named speakers count as used voices (sent first from now on)."""
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            names = {s["name"] for s in json.loads(body).get("speakers", []) if s.get("name")}
            if names:
                self.voices.used(names)

    async def _forward(self, upload: Upload) -> Response:
        """The least-loaded ready WhisperX backend, the next one when it fails, then the legacy service."""
        backends, reason = await ready_in_order(self.whisperx.backends)
        voices = self._known_speakers(upload) if backends else []
        outcome = await self._first_taker(backends, upload, TRANSCRIBE_PATH, voices)
        if isinstance(outcome, Response):
            return outcome
        if outcome.response is not None:
            return self._relay(outcome.response, outcome.backend, None, self._note_names if voices else None,
                               outcome.sent_at)  # fmt: skip
        reason = outcome.reason or reason
        if backends:
            log.warning("retrying on the legacy service: %s", reason)
        try:
            response = await self._send(self.settings.legacy_asr_url, upload)  # as the caller sent it: no voices
        except httpx.TransportError as exc:
            return openai_error(
                502,
                f"no ASR backend answered (legacy: {type(exc).__name__}; {reason})",
                "server_error",
                "backend_unavailable",
                headers={"X-ASR-Backend": "legacy"},
            )
        return self._relay(response, None, reason)

    async def _first_taker(
        self, backends: list[Backend], upload: Upload, path: str, fields: list[tuple[str, str]]
    ) -> Taken | Response:
        """Send the upload to each backend in turn until one takes it.

        Moves on after a refused, reset or dropped connection, a 5xx (the backend is not working on it) and a
        401/403 (spark-control's copy of its API key is stale: the status playbook fetches it again); a refusal
        for want of room (429, 507) is kept and relayed when no other backend takes the work. A read timeout
        ends it with a 504: the backend may still be working, and must not get a twin. Whatever is not handed
        back (an answer not relayed, a caller gone) stops counting on its backend here.
        """
        refusal: Taken | None = None
        reason = None
        try:
            for backend in backends:
                sent_at = backend.sending()
                try:
                    response = await self._send(backend.url, upload, backend.auth_headers(), path, fields)
                except BaseException as exc:  # a failure, or the task canceled because the caller left
                    backend.finished(sent_at)
                    if isinstance(exc, httpx.ReadTimeout):
                        return openai_error(
                            504,
                            f"WhisperX did not answer within {self.settings.proxy_read_timeout_s:g} s "
                            "(SPARK_CONTROL_PROXY_READ_TIMEOUT); it may still be transcribing",
                            "server_error",
                            "upstream_timeout",
                            headers={"X-ASR-Backend": backend.name},
                        )
                    if not isinstance(exc, httpx.TransportError):
                        raise
                    reason = f"{backend.name} failed: {type(exc).__name__}"
                    backend.probe.forget()  # its last "ready" predates this failure
                    continue
                status = response.status_code
                if status < 500 and status not in (401, 403, 429):
                    return Taken(response, backend, None, sent_at)
                reason = f"{backend.name} answered HTTP {status}"
                if status in (429, 507) and refusal is None:
                    refusal = Taken(response, backend, reason, sent_at)
                    continue
                await self._release(Taken(response, backend, reason, sent_at))
                if status == 503:
                    backend.probe.forget()
                elif status in (401, 403):
                    self.whisperx.refresh_soon()
            kept, refusal = refusal, None
            return kept or Taken(None, None, reason)
        finally:
            if refusal is not None:  # another backend took it, or no one will hear of it
                await self._release(refusal)

    @staticmethod
    async def _release(taken: Taken) -> None:
        """Close an answer that will not be relayed; its request no longer counts on its backend."""
        if taken.backend is not None and taken.sent_at is not None:
            taken.backend.finished(taken.sent_at)
        if taken.response is not None:
            await taken.response.aclose()

    async def _send(
        self,
        base_url: str,
        upload: Upload,
        auth: dict[str, str] | None = None,
        path: str = TRANSCRIBE_PATH,
        fields: list[tuple[str, str]] | None = None,
    ) -> httpx.Response:
        """POST the spooled body, plus `fields` as parts of it; the caller's own headers (its Authorization
        included) never go upstream."""
        extra, at = upload.with_fields(fields or [])
        length = str(upload.size + len(extra))
        request = self.http.build_request(
            "POST",
            f"{base_url}{path}",
            content=_read_chunks(upload, at, extra),
            headers={"content-type": upload.content_type, "content-length": length, **(auth or {})},
            timeout=self.timeout,
        )
        return await self.http.send(request, stream=True)

    # -- the job API (WhisperX only: the legacy service has no jobs) --------------------------------------
    async def submit_job(self, request: Request) -> Response:
        """POST /api/audio/jobs: the upload spooled like a transcription's, then sent to WhisperX's job API."""
        ready, why = await ready_in_order(self.whisperx.backends)
        if not ready:  # refused before a byte is spooled
            return self._jobs_down(why or "no WhisperX backend")
        return await self._take_upload(request, self._forward_job)

    async def _forward_job(self, upload: Upload) -> Response:
        backends, reason = await ready_in_order(self.whisperx.backends)
        if not backends:
            return self._jobs_down(reason or "no WhisperX backend")
        outcome = await self._first_taker(backends, upload, JOBS_PATH, self._known_speakers(upload))
        if isinstance(outcome, Response):
            return outcome
        if outcome.response is None or outcome.backend is None:
            return self._jobs_down(outcome.reason or "no backend took it")
        response, backend = outcome.response, outcome.backend
        if response.status_code == 202:  # the job's id, kept with the backend that holds it
            try:
                body = await response.aread()
            finally:
                await self._release(outcome)
            with contextlib.suppress(ValueError, KeyError, TypeError):
                self.job_backends.remember(json.loads(body)["id"], backend.url)
            return Response(body, 202, media_type="application/json", headers={"X-ASR-Backend": backend.name})
        return self._relay(response, backend, None, sent_at=outcome.sent_at)

    async def _holder(self, job_id: str) -> Backend:
        """The backend that holds a job: where spark-control sent or listed it, else the first that knows it."""
        backends = self.whisperx.backends
        known = self.whisperx.backend_at(self.job_backends.backend(job_id, ""))
        if known is not None or len(backends) == 1:
            return known or backends[0]
        for backend in backends:
            with contextlib.suppress(httpx.HTTPError):
                answer = await self.http.get(
                    f"{backend.url}{JOBS_PATH}/{job_id}", headers=backend.auth_headers(), timeout=10.0
                )
                if answer.status_code == 200:
                    self.job_backends.remember(job_id, backend.url)
                    return backend
        return backends[0]

    async def job_request(self, request: Request, method: str, path: str) -> Response:
        """One read or delete of the job API, streamed back as the backend holding the job answers it (events
        included); the list merges every backend's."""
        if not path and len(self.whisperx.backends) > 1:
            return await self._list_jobs(request)
        backend = await self._holder(path.strip("/").split("/", 1)[0]) if path else self.whisperx.backends[0]
        if refusal := await self._jobs_unavailable(backend):
            return refusal
        headers = {**backend.auth_headers(), "accept": request.headers.get("accept", "*/*")}
        if last := request.headers.get("last-event-id"):
            headers["last-event-id"] = last
        upstream = self.http.build_request(
            method,
            f"{backend.url}{JOBS_PATH}{path}",
            params=request.query_params,
            headers=headers,
            timeout=httpx.Timeout(30.0, read=None if path.endswith("/events") else 120.0),
        )
        try:
            response = await self.http.send(upstream, stream=True)
        except httpx.TransportError as exc:
            backend.probe.forget()
            return self._jobs_down(f"{backend.name}: {type(exc).__name__}")
        teed = path.endswith("/result") and request.query_params.get("format", "json") == "json"
        return self._relay(response, backend, None, self._note_names if teed else None)

    async def _list_jobs(self, request: Request) -> Response:
        """GET /api/audio/jobs with several backends: their lists merged, newest first, `after` and `has_more`
        meaning what they mean on one backend."""
        backends = self.whisperx.backends
        limit = request.query_params.get("limit", "20")
        if not limit.isdigit() or not 1 <= int(limit) <= LIST_PAGE_MAX:
            return openai_error(
                400, f"limit must be a whole number from 1 to {LIST_PAGE_MAX}", "invalid_request_error", "invalid_limit"
            )
        wanted, after = int(limit), request.query_params.get("after")
        if after is not None and not JOB_ID.fullmatch(after):
            return openai_error(400, "after must be a job id (job_ and 16 hex digits)", "invalid_request_error",
                                "invalid_after")  # fmt: skip
        samples = await asyncio.gather(*(b.probe.check() for b in backends))
        alive = [b for b, sample in zip(backends, samples, strict=True) if whisperx_unready(sample) is None]
        if not alive:
            return self._jobs_down("no WhisperX backend is ready")
        before: tuple[Any, str] | None = None  # (created_at, id) of the `after` job: the list goes on below it
        if after:
            answer = await self.job_call("GET", after, "")
            if isinstance(answer, Response):
                return answer
            if answer.status_code != 200:
                return Response(answer.content, answer.status_code, media_type="application/json")
            before = (answer.json().get("created_at", 0), after)

        def order(job: dict[str, Any]) -> tuple[Any, str]:
            return job.get("created_at", 0), str(job.get("id", ""))

        async def older(backend: Backend) -> tuple[list[dict[str, Any]], bool]:
            """Up to `wanted` + 1 of its jobs below `before`, newest first, and whether it holds more."""
            found: list[dict[str, Any]] = []
            cursor = None
            for _ in range(LIST_PAGES_PER_BACKEND):
                params = {"limit": str(LIST_PAGE_MAX), **({"after": cursor} if cursor else {})}
                try:
                    answer = await self.http.get(
                        f"{backend.url}{JOBS_PATH}", params=params, headers=backend.auth_headers(), timeout=30.0
                    )
                    body = answer.json() if answer.status_code == 200 else {}
                except (httpx.HTTPError, ValueError):
                    return found, False
                page = [j for j in body.get("data", []) if isinstance(j, dict)]
                found += [j for j in page if before is None or order(j) < before]
                more = bool(body.get("has_more"))
                if len(found) > wanted or not more or not page:
                    return found[: wanted + 1], more or len(found) > wanted
                cursor = str(page[-1].get("id", ""))
            return found[: wanted + 1], True

        pages = await asyncio.gather(*(older(b) for b in alive))
        merged = sorted((j for jobs, _ in pages for j in jobs), key=order, reverse=True)
        self.job_backends.remember_all(
            [(str(j["id"]), b.url) for b, (jobs, _) in zip(alive, pages, strict=True) for j in jobs if "id" in j]
        )
        more = len(merged) > wanted or any(more for _, more in pages)
        names = ",".join(b.name for b in alive)
        return JSONResponse(
            {"object": "list", "data": merged[:wanted], "has_more": more}, headers={"X-ASR-Backend": names}
        )

    async def job_call(
        self, method: str, job_id: str, path: str, body: dict | None = None, backend: Backend | None = None
    ) -> httpx.Response | Response:
        """One small call on a job, read whole (a clip, a rename); the 503 refusal when its backend is not there."""
        backend = backend or await self._holder(job_id)
        if refusal := await self._jobs_unavailable(backend):
            return refusal
        url = f"{backend.url}{JOBS_PATH}/{job_id}{path}"
        try:
            return await self.http.request(method, url, json=body, headers=backend.auth_headers(), timeout=30.0)
        except httpx.TransportError as exc:
            backend.probe.forget()
            return self._jobs_down(f"{backend.name}: {type(exc).__name__}")

    async def _jobs_unavailable(self, backend: Backend) -> Response | None:
        why = whisperx_unready(await backend.probe.check())
        return self._jobs_down(why if len(self.whisperx.backends) == 1 else f"{backend.name}: {why}") if why else None

    @staticmethod
    def _jobs_down(why: str) -> Response:
        return openai_error(
            503,
            f"transcription jobs need WhisperX, which is not available now ({why}); the legacy service has no jobs: "
            "install or start WhisperX, or use POST /api/audio/transcribe-with-speakers",
            "server_error",
            "backend_unavailable",
            headers={"Retry-After": "30"},
        )

    @staticmethod
    def _relay(
        response: httpx.Response,
        backend: Backend | None,
        reason: str | None,
        on_json: Callable[[bytes], None] | None = None,
        sent_at: float | None = None,
    ) -> Response:
        """Stream `response` back from `backend` (None: the legacy service); `on_json` gets the whole body too
        when it is a JSON success (TEED_MAX). A request the sender counted on its backend (`sent_at`) counts
        until the last byte is relayed."""
        headers = {k: v for k, v in response.headers.items() if k.lower() in PASSED_HEADERS}
        headers["X-ASR-Backend"] = backend.name if backend else "legacy"
        if reason:
            headers["X-ASR-Fallback-Reason"] = reason[:200].encode("ascii", "replace").decode()
        kind, packed = response.headers.get("content-type", ""), "content-encoding" in response.headers
        json_ok = response.status_code == 200 and kind.startswith("application/json") and not packed
        teed: bytearray | None = bytearray() if on_json and json_ok else None

        async def body() -> AsyncIterator[bytes]:
            nonlocal teed
            async for chunk in response.aiter_raw():
                if teed is not None and len(teed) + len(chunk) > TEED_MAX:
                    teed = None
                elif teed is not None:
                    teed += chunk
                yield chunk
            if teed is not None and on_json:
                on_json(bytes(teed))

        async def close() -> None:
            if backend is not None and sent_at is not None:
                backend.finished(sent_at)
            with contextlib.suppress(Exception):
                await response.aclose()

        return RelayedResponse(body(), close, status_code=response.status_code, headers=headers)


class RelayedResponse(StreamingResponse):
    """A streamed answer that runs `on_close` once it is over, however it ends: sent whole, cut off by the
    caller, or never started (a caller gone between the upstream answer and the first byte)."""

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], Awaitable[None]], **kwargs: Any):
        super().__init__(content, **kwargs)
        self.on_close = on_close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.on_close()


class JobBackends:
    """Which WhisperX backend holds each job spark-control submitted (DATA_DIR/state/audio-jobs.json).

    A job stays where it was submitted: later reads of it go there, whatever backend new work goes to."""

    KEPT = 1000

    def __init__(self, path: Path):
        self.path = path
        try:
            self._where: dict[str, str] = dict(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            self._where = {}

    def remember(self, job_id: str, backend: str) -> None:
        self.remember_all([(job_id, backend)])

    def remember_all(self, found: list[tuple[str, str]]) -> None:
        changed = [(job_id, backend) for job_id, backend in found if self._where.get(job_id) != backend]
        if not changed:
            return
        self._where.update(changed)
        while len(self._where) > self.KEPT:
            del self._where[next(iter(self._where))]
        write_private(self.path, json.dumps(self._where))

    def backend(self, job_id: str, default: str) -> str:
        return self._where.get(job_id, default)


async def _unless_client_leaves(request: Request, work: Coroutine[Any, Any, Response]) -> Response:
    """Run `work`; when the caller disconnects first, cancel it, which closes its upstream request too.

    The body has been read by now, so the next ASGI message can only be the client going away.
    """

    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    forward, left = asyncio.create_task(work), asyncio.create_task(gone())
    try:
        await asyncio.wait((forward, left), return_when=asyncio.FIRST_COMPLETED)
    finally:
        left.cancel()
    if forward.done():
        return forward.result()
    forward.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await forward
    log.info("the caller left before the answer; its upstream request was closed")
    return Response(status_code=499)


async def _read_chunks(upload: Upload, insert_at: int | None = None, extra: bytes = b"") -> AsyncIterator[bytes]:
    """The body, from memory or in CHUNK-sized reads of its file, with `extra` put in at byte `insert_at`."""
    if upload.path is None:
        at = len(upload.body) if insert_at is None else insert_at
        for part in (upload.body[:at], extra, upload.body[at:]):
            if part:
                yield part
        return
    async with await anyio.open_file(upload.path, "rb") as spool:
        if insert_at is not None:
            left = insert_at
            while left and (chunk := await spool.read(min(CHUNK, left))):
                left -= len(chunk)
                yield chunk
            yield extra
        while chunk := await spool.read(CHUNK):
            yield chunk
