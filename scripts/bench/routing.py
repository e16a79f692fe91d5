"""Routing over two WhisperX backends, for scripts/bench_control.py: the share of a burst that reaches the
less-loaded backend, and the time spark-control adds to a request with one backend and with two.

The backends are fakes served by this process (both on one event loop in a thread). Their /health reports
the requests they hold, counted the way the service counts them (admitted before the upload is read:
running = min(1, held), waiting = held - 1), and a transcription waits while their gate is shut. spark-control
runs as its own process (bench_control.start_control), so it shares no interpreter with the fakes or the client.
"""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

TRANSCRIBE = "/v1/audio/transcribe-with-speakers"
PROXIED = "/api/audio/transcribe-with-speakers"
TRANSCRIPT = {"task": "transcribe", "text": "bench", "language": "en", "duration": 3.4, "segments": [],
              "speakers": [], "backend": "whisperx", "model": "tiny.en", "timings": {"total_s": 0.0}}  # fmt: skip


Upload = tuple[bytes, dict[str, str]]  # a multipart body and its content-type header


def tiny_clip(seconds: float = 0.1) -> Upload:
    """A WAV of `seconds` of 16 kHz mono silence as one multipart `file` field, encoded once so every request
    sends the same bytes (tiny: the per-byte cost of a large upload is the proxy memory section's)."""
    data = bytes(round(seconds * 16000) * 2)
    wav = (
        b"RIFF"
        + struct.pack("<I", 36 + len(data))
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
    )
    wav += b"data" + struct.pack("<I", len(data)) + data
    request = httpx.Request("POST", "http://encode", files={"file": ("tiny.wav", wav, "audio/wav")})
    return request.read(), {"content-type": request.headers["content-type"]}


class QueueBackend:
    """A fake WhisperX whose /health reports the requests it holds; transcriptions wait while its gate is shut."""

    def __init__(self, name: str, port: int, arrivals: list[str], limit: int) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        self.held = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.app = FastAPI()

        @self.app.get("/health")
        async def health() -> dict[str, Any]:
            queue = {"running": min(1, self.held), "waiting": max(0, self.held - 1), "limit": limit}
            return {"status": "ready", "whisper_loaded": True, "diarizer_loaded": True, "queue": queue}

        @self.app.post(TRANSCRIBE)
        async def transcribe(request: Request) -> JSONResponse:
            if self.held >= limit + 1:  # the service's own rule: one running, `limit` waiting
                return JSONResponse({"error": {"message": "full", "type": "rate_limit_error", "code": "queue_full"}},
                                    429, headers={"Retry-After": "1"})  # fmt: skip
            self.held += 1
            arrivals.append(self.name)  # the one loop serves both backends: this is the order they were reached
            try:
                await request.body()
                await self.gate.wait()
                return JSONResponse(TRANSCRIPT)
            finally:
                self.held -= 1


class FakeBackends:
    """Backends `a` and `b` served on one event loop in a thread, for as long as the `with` block lasts."""

    def __init__(self, ports: tuple[int, int], limit: int) -> None:
        self.arrivals: list[str] = []
        self.a, self.b = (
            QueueBackend(name, port, self.arrivals, limit) for name, port in zip("ab", ports, strict=True)
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._servers = [
            uvicorn.Server(uvicorn.Config(b.app, host="127.0.0.1", port=b.port, log_level="warning", lifespan="off"))
            for b in (self.a, self.b)
        ]

    def __enter__(self) -> FakeBackends:
        self._thread.start()
        self._serving = [asyncio.run_coroutine_threadsafe(s.serve(), self._loop) for s in self._servers]
        deadline = time.monotonic() + 20
        while not all(s.started for s in self._servers):
            if time.monotonic() > deadline:
                raise RuntimeError("the fake backends did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.shut(False)
        for server in self._servers:
            server.should_exit = True
        for serving in self._serving:
            serving.result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)

    def shut(self, shut: bool) -> None:
        """Hold (True) or answer (False) every transcription, the ones already waiting included."""

        async def apply() -> None:
            for backend in (self.a, self.b):
                if shut:
                    backend.gate.clear()
                else:
                    backend.gate.set()

        asyncio.run_coroutine_threadsafe(apply(), self._loop).result(timeout=10)  # in effect before the next request


async def _until(predicate: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + 30
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not within 30 s: {what}")
        await asyncio.sleep(0.01)


async def _status_until(client: httpx.AsyncClient, proxy: str, check: Callable[[list[dict]], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not check((await client.get(f"{proxy}/api/whisperx/status")).json()["backends"]):
        if time.monotonic() > deadline:
            raise RuntimeError(f"spark-control's status did not show it within 30 s: {what}")
        await asyncio.sleep(0.05)


def _taken(view: dict) -> int:
    queue = view.get("queue") or {}
    return queue.get("running", 0) + queue.get("waiting", 0)


def _fresh(view: dict) -> bool:
    """Its sample was probed just now, so it outlives the burst under a 2 s cache."""
    return view["checks"]["health"]["age_s"] < 0.25


@dataclass
class Burst:
    """One burst through spark-control with backend a holding `preload` requests sent to it directly."""

    cache_s: float
    preload: int
    size: int
    seen: bool  # spark-control's health sample showed the pre-load when the burst began
    to_b: int = 0  # by X-ASR-Backend
    to_a: int = 0
    other: Counter = field(default_factory=Counter)  # anything else: legacy, errors
    in_arrival_order: int = 0  # requests that reached the backend holding no more than the other at that moment

    @property
    def ideal_b(self) -> int:
        """What b gets when the burst evens the queues out (all of it while it is no larger than the pre-load)."""
        return min(self.size, (self.preload + self.size + 1) // 2)

    @property
    def by_split(self) -> int:
        """Requests within the ideal split: those an order of sending could have sent each to the less-loaded."""
        return min(self.to_b, self.ideal_b) + min(self.to_a, self.size - self.ideal_b)


async def burst(
    fakes: FakeBackends, proxy: str, upload: Upload, cache_s: float, preload: int, size: int, seen: bool
) -> Burst:
    """Pre-load a with `preload` held requests, then send `size` concurrent requests through spark-control.

    `seen`: wait until spark-control's sample of a shows the pre-load (a young sample, so one sample serves the
    whole burst under a 2 s cache); otherwise take a young sample of the empty queues just before the pre-load,
    so the burst is routed on a sample that predates it (what a 2 s cache does after a queue builds quickly).
    """
    body, headers = upload
    a_name = "whisperx@127.0.0.1"  # a is on WHISPERX_PORT; b carries its port in its name
    limits = httpx.Limits(max_connections=preload + size + 8)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        await _status_until(client, proxy, lambda vs: [v["in_flight"] for v in vs] == [0, 0], "nothing in flight")
        if not seen:
            await _status_until(client, proxy, lambda vs: _taken(vs[0]) == 0 and _fresh(vs[0]), "a's empty queue")
        fakes.shut(True)

        def post(url: str) -> asyncio.Task[httpx.Response]:
            return asyncio.create_task(client.post(url, content=body, headers=headers))

        held = [post(f"{fakes.a.url}{TRANSCRIBE}") for _ in range(preload)]
        await _until(lambda: fakes.a.held == preload, f"a holds the {preload} pre-loaded requests")
        if seen:
            await _status_until(client, proxy, lambda vs: _taken(vs[0]) == preload and _fresh(vs[0]), "the pre-load")
        fakes.arrivals.clear()
        sent = [post(f"{proxy}{PROXIED}") for _ in range(size)]
        await _until(
            lambda: fakes.a.held + fakes.b.held == preload + size or any(t.done() for t in sent),
            "every request of the burst reached a backend",
        )
        fakes.shut(False)
        answers = await asyncio.gather(*sent)
        await asyncio.gather(*held)
    result = Burst(cache_s, preload, size, seen)
    for answer in answers:
        backend = answer.headers.get("x-asr-backend", "none")
        if answer.status_code != 200:
            result.other[f"HTTP {answer.status_code} {backend}"] += 1
        elif backend == a_name:
            result.to_a += 1
        elif backend.startswith(f"{a_name}_"):
            result.to_b += 1
        else:
            result.other[backend] += 1
    load = {"a": preload, "b": 0}  # what each holds, by arrival: the other backend's load when one was reached
    for name in fakes.arrivals:
        other = "b" if name == "a" else "a"
        result.in_arrival_order += load[name] <= load[other]  # a tie: either was least loaded
        load[name] += 1
    return result


def round_trips(
    fakes: FakeBackends, one: str, two: str, upload: Upload, rounds: int, warmup: int
) -> dict[str, list[float]]:
    """Milliseconds of sequential requests, in rounds of: the clip straight to a (`direct`), through spark-control
    with one backend, a (`one`), through spark-control with two, a and b, both idle, so a by order (`two`), and
    the one-backend spark-control's GET /healthz, its HTTP layer alone (`healthz`); the order rotates each round,
    so a round's requests share the machine's state of the moment."""
    body, headers = upload
    targets = {
        "direct": ("POST", f"{fakes.a.url}{TRANSCRIBE}", None),
        "one": ("POST", f"{one}{PROXIED}", "whisperx"),
        "two": ("POST", f"{two}{PROXIED}", "whisperx@127.0.0.1"),
        "healthz": ("GET", f"{one}/healthz", None),
    }
    times: dict[str, list[float]] = {name: [] for name in targets}
    names = list(targets)
    with httpx.Client(timeout=30) as client:
        for index in range(warmup + rounds):
            turn = names[index % len(names) :] + names[: index % len(names)]
            for name in turn:
                method, url, expected = targets[name]
                began = time.perf_counter()
                response = client.request(
                    method, url, **({"content": body, "headers": headers} if method == "POST" else {})
                )
                elapsed = (time.perf_counter() - began) * 1000
                if response.status_code != 200 or response.headers.get("x-asr-backend") != expected:
                    raise RuntimeError(
                        f"{name}: HTTP {response.status_code} from {response.headers.get('x-asr-backend')}"
                    )
                if index >= warmup:
                    times[name].append(elapsed)
    return times
