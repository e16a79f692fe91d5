"""Prometheus metrics at /metrics: requests, queue depth, seconds per stage, real-time factor."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "whisperx_requests", "Transcription requests by endpoint and HTTP status", ["endpoint", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.queue_running = Gauge("whisperx_queue_running", "Requests being transcribed", registry=self.registry)
        self.queue_waiting = Gauge(
            "whisperx_queue_waiting", "Requests admitted and waiting (decoding or queued)", registry=self.registry
        )
        self.queue_limit = Gauge("whisperx_queue_limit", "Most requests that may wait", registry=self.registry)
        self.stage_seconds = Histogram(
            "whisperx_stage_seconds", "Seconds per pipeline stage", ["stage"], buckets=STAGE_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.rtf = Histogram(
            "whisperx_realtime_factor", "Processing seconds per second of audio", buckets=RTF_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.audio_seconds = Counter("whisperx_audio_seconds", "Seconds of audio transcribed", registry=self.registry)


class RequestMetrics:
    """Counts /v1/audio/* responses by endpoint and status (a pure ASGI middleware: no task groups).

    `endpoints` maps the app's own route paths to their labels; any other path under /v1/audio/ (a
    typo, a 404) is counted as "other", so requests to arbitrary paths cannot create new series.
    """

    def __init__(self, app, metrics: Metrics, endpoints: dict[str, str]):
        self.app = app
        self.metrics = metrics
        self.endpoints = endpoints

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/v1/audio/"):
            return await self.app(scope, receive, send)
        path = scope["path"]
        endpoint = self.endpoints.get(path) or ("jobs" if path.startswith("/v1/audio/jobs") else "other")
        status = 500

        async def counted(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            self.metrics.requests.labels(endpoint, str(status)).inc()
