"""HTTP health checks with a hard deadline and a short cache, shared by status, proxy and watchdog.

The cache only spares the service a probe per reader; it never outlives evidence. A caller that sees
the service fail (the proxy's upload cut off mid-request) drops the cached sample, so no reader is
told "ready" on the strength of a probe made before the failure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx


@dataclass(frozen=True)
class HealthSample:
    url: str
    ok: bool
    status_code: int | None
    body: dict[str, Any] | None
    error: str | None
    checked_at: datetime
    latency_ms: float
    monotonic: float

    def age_s(self) -> float:
        return time.monotonic() - self.monotonic


Judge = Callable[[int, dict[str, Any] | None], bool]


def answers_2xx(status: int, body: dict[str, Any] | None) -> bool:
    return 200 <= status < 300


def is_whisperx_health(body: dict[str, Any] | None) -> bool:
    """A /health body from the WhisperX service itself (not some other server on that port)."""
    return isinstance(body, dict) and "status" in body and "diarizer_loaded" in body


def whisperx_alive(status: int, body: dict[str, Any] | None) -> bool:
    """The process answers and its models are loading, ready or released while idle (an error is not alive)."""
    return status == 200 and is_whisperx_health(body) and body.get("status") in ("loading", "ready", "unloaded")  # type: ignore[union-attr]


def whisperx_unready(sample: HealthSample) -> str | None:
    """Why WhisperX cannot take a transcription now, or None when it can: the one "WhisperX is ready".

    Ready is alive, its models loaded (status "ready") and its diarizer loaded, or its models released
    after an idle spell (status "unloaded": the next request waits while they load again); the proxy,
    the services' round trip and the status route all ask this.
    """
    if not sample.ok:
        return f"whisperx health: {sample.error}"
    body = sample.body or {}
    if body.get("status") == "unloaded":
        return None
    if body.get("status") != "ready" or body.get("diarizer_loaded") is not True:
        return "whisperx diarizer not loaded"
    return None


def whisperx_ready(sample: HealthSample) -> bool:
    return whisperx_unready(sample) is None


class HealthProbe:
    """GET <url> within `timeout_s` (connect + answer); concurrent callers share one probe."""

    def __init__(self, http: httpx.AsyncClient, url: str, timeout_s: float, cache_s: float, judge: Judge = answers_2xx):
        self.http = http
        self.url = url
        self.timeout_s = timeout_s
        self.cache_s = cache_s
        self.judge = judge
        self.last: HealthSample | None = None
        self._lock = asyncio.Lock()
        self._generation = 0  # bumped by forget(): a probe sent before it must not refill the cache

    async def check(self, max_age_s: float | None = None) -> HealthSample:
        max_age = self.cache_s if max_age_s is None else max_age_s
        if self.last and self.last.age_s() <= max_age:
            return self.last
        async with self._lock:
            if self.last and self.last.age_s() <= max_age:
                return self.last
            generation = self._generation
            sample = await self._probe()
            if generation == self._generation:
                self.last = sample
            return sample

    def forget(self) -> None:
        """Drop the cached sample: a caller saw the service fail, so the next reader probes afresh."""
        self.last = None
        self._generation += 1

    async def _probe(self) -> HealthSample:
        started = time.monotonic()
        status = None
        body = None
        error = None
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await self.http.get(self.url, timeout=self.timeout_s)
            status = response.status_code
            try:
                parsed = response.json()
                body = parsed if isinstance(parsed, dict) else {"value": parsed}
            except ValueError:
                body = None
        except TimeoutError:
            error = f"no answer within {self.timeout_s:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        ok = status is not None and self.judge(status, body)
        if status is not None and not ok and error is None:
            error = f"unhealthy answer: HTTP {status}"
        return HealthSample(
            url=self.url,
            ok=ok,
            status_code=status,
            body=body,
            error=error,
            checked_at=datetime.now(UTC),
            latency_ms=round((time.monotonic() - started) * 1000, 1),
            monotonic=started,  # its age counts from when it was asked, not from when the answer came
        )
