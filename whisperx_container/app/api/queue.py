"""One bounded queue in front of one inference thread: the event loop never runs a model.

A request is admitted before its upload is read (admission.py: a ticket, counted as arriving) and
takes its slot before the upload is decoded (so decoding is bounded too); with one request running
and WHISPERX_QUEUE_LIMIT waiting or arriving, the next gets 429 with a Retry-After estimate. A slot
whose caller went away is cancelled: waiting, it leaves the queue at once; running, the pipeline
stops at its next window (service.py).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from app.api.metrics import Metrics


class QueueFull(Exception):
    def __init__(self, retry_after: int):
        super().__init__("queue full")
        self.retry_after = retry_after


class InferenceQueue:
    def __init__(self, limit: int, metrics: Metrics):
        self.limit = limit
        self.metrics = metrics
        self.running = 0
        self.waiting = 0
        self.arriving = 0  # admitted, upload still being received
        self.mean_job_s = 10.0  # moving average of job durations, for Retry-After
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        metrics.queue_limit.set(limit)

    def retry_after(self) -> int:
        return max(1, min(600, math.ceil(self.mean_job_s * (self.queued + 1))))

    @property
    def queued(self) -> int:
        """Requests waiting for the inference thread, uploads still arriving included."""
        return self.waiting + self.arriving

    def admit(self, force: bool = False) -> Ticket:
        """A place for a request whose upload has not been read yet (QueueFull when there is none).

        `force` takes one beyond the limit: the jobs a restart finds queued or running were admitted before."""
        with self._lock:
            if not force and self.running + self.queued >= self.limit + 1:  # one running, `limit` waiting behind
                raise QueueFull(self.retry_after())
            self.arriving += 1
            self._publish()
        return Ticket(self)

    def reserve(self, force: bool = False) -> Slot:
        """A slot for a request that was not admitted in advance (QueueFull when there is none)."""
        return self.admit(force).reserve()

    def _publish(self) -> None:
        self.metrics.queue_running.set(self.running)
        self.metrics.queue_waiting.set(self.queued)

    def _started(self) -> None:
        with self._lock:
            self.waiting -= 1
            self.running += 1
            self._publish()

    def _finished(self, seconds: float | None, was_running: bool) -> None:
        with self._lock:
            if was_running:
                self.running -= 1
            else:
                self.waiting -= 1
            if seconds is not None:
                self.mean_job_s = 0.7 * self.mean_job_s + 0.3 * seconds
            self._publish()


class Ticket:
    """An admitted request, before its slot: `reserve()` turns it into one, `drop()` gives it back."""

    def __init__(self, queue: InferenceQueue):
        self.queue = queue
        self.open = True

    def reserve(self) -> Slot:
        with self.queue._lock:
            if self.open:
                self.open = False
                self.queue.arriving -= 1
            self.queue.waiting += 1
            self.queue._publish()
        return Slot(self.queue)

    def drop(self) -> None:
        with self.queue._lock:
            if self.open:
                self.open = False
                self.queue.arriving -= 1
                self.queue._publish()


class Slot:
    """A place in the queue: `await run(fn)` executes fn on the inference thread.

    `release(cleanup)` frees the slot and runs cleanup (e.g. deleting the request's temporary files)
    once nothing uses them: immediately, or when the job ends if the caller went away mid-job.
    """

    def __init__(self, queue: InferenceQueue):
        self.queue = queue
        self.started = False
        self.seconds: float | None = None
        self.future: Future | None = None
        self.released = False

    async def run(self, fn, *args):
        def job():
            self.queue._started()
            self.started = True
            began = time.perf_counter()
            try:
                return fn(*args)
            finally:
                self.seconds = time.perf_counter() - began

        self.future = self.queue._executor.submit(job)
        return await asyncio.wrap_future(self.future)

    def cancel(self) -> bool:
        """Leave the queue if the job has not started: True when it will never run."""
        return self.future is not None and self.future.cancel()

    def release(self, cleanup=None) -> None:
        if self.released:
            return
        self.released = True

        def done(_=None) -> None:
            try:
                if cleanup is not None:
                    cleanup()
            finally:
                self.queue._finished(self.seconds, self.started)

        if self.future is not None and not self.future.done():
            self.future.add_done_callback(done)
        else:
            done()
