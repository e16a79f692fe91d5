"""Restarts a managed service whose health fails N times in a row, with backoff and a cap.

Skipped: services the operator stopped (intent), and services whose lock a job holds (an install or
an action is changing them anyway). A service that a start or restart (the operator's or the
watchdog's) has just brought up gets START_GRACE to answer healthy before failed checks count again:
a model server booting is not a broken one, and restarting it mid-boot only starts the boot over.
Restart k within the last hour waits BACKOFF * 2**k (at most BACKOFF_MAX) after the previous one;
after MAX_RESTARTS in an hour the watchdog gives up on that service until its health comes back or
the operator acts. Every restart is a job recorded in the service's `restarts`, which GET
/api/services shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from spark_control.config import Settings
from spark_control.runner.jobs import Job, JobConflict, JobManager, iso, now
from spark_control.services import ServiceRegistry

log = logging.getLogger("spark_control.watchdog")


class Watchdog:
    def __init__(
        self,
        settings: Settings,
        registry: ServiceRegistry,
        jobs: JobManager,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.settings = settings
        self.registry = registry
        self.jobs = jobs
        self.clock = clock
        self.failures: dict[str, int] = {}
        self.last_error: dict[str, str | None] = {}
        self._not_before: dict[str, float] = {}
        self._not_before_wall: dict[str, str] = {}
        self._coming_up: dict[str, tuple[float, str]] = {}  # started or restarted, not healthy yet: (deadline, iso)
        self.checks: dict[str, int] = {}  # rounds that looked at each service (skipped ones included)
        self.checked_at: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.settings.watchdog_enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="watchdog")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("watchdog round failed")
            await asyncio.sleep(self.settings.watchdog_interval_s)

    def on_job_finished(self, job: Job) -> None:
        """A service that a start or restart brought up gets its start grace from now on."""
        record = job.record
        if record.kind == "service" and record.action in ("start", "restart") and record.state == "successful":
            grace = self.settings.watchdog_start_grace_s
            self._coming_up[str(record.target)] = (self.clock() + grace, iso(now() + timedelta(seconds=grace)) or "")

    async def tick(self) -> None:
        """One round: check every managed service once (concurrently)."""
        await asyncio.gather(*(self._check(name) for name in self.registry.managed()))

    async def _check(self, name: str) -> None:
        try:
            await self._decide(name)
        finally:  # counted once the round's decision is made, so a reader of `checks` sees its outcome
            self.checks[name] = self.checks.get(name, 0) + 1
            self.checked_at[name] = iso(now()) or ""

    async def _decide(self, name: str) -> None:
        spec = self.registry.managed()[name]
        record = self.registry.record(name)
        holder = self.jobs.holding(spec.lock)
        if record.intent == "stopped" or (holder is not None and not holder.finished):
            self.failures[name] = 0
            return
        sample = await self.registry.probes[name].check(max_age_s=0)
        self.last_error[name] = sample.error
        if sample.ok:
            self.failures[name] = 0
            self._coming_up.pop(name, None)
            if record.gave_up_at:
                record.gave_up_at = None
                self.registry.save()
            return
        if self._in_start_grace(name):
            self.failures[name] = 0
            return
        failures = self.failures[name] = self.failures.get(name, 0) + 1
        if failures < self.settings.watchdog_failures or record.gave_up_at:
            return
        recent = self.restarts_last_hour(name)
        if recent >= self.settings.watchdog_max_restarts:
            record.gave_up_at = iso(now())
            self.registry.save()
            log.error("watchdog gives up on %s: %d restarts in the last hour", name, recent)
            return
        if self.clock() < self._not_before.get(name, 0.0):
            return
        delay = min(self.settings.watchdog_backoff_s * 2**recent, self.settings.watchdog_backoff_max_s)
        reason = f"{failures} failed health checks in a row ({sample.error})"
        try:
            job = await self.registry.start_action(name, "restart", trigger="watchdog", reason=reason)
        except JobConflict:
            return
        log.warning("watchdog restarts %s (job %s): %s", name, job.id, reason)
        self.failures[name] = 0
        self._not_before[name] = self.clock() + delay
        self._not_before_wall[name] = iso(now() + timedelta(seconds=delay)) or ""

    def _in_start_grace(self, name: str) -> bool:
        coming_up = self._coming_up.get(name)
        if coming_up and self.clock() >= coming_up[0]:
            del self._coming_up[name]
            return False
        return coming_up is not None

    def restarts_last_hour(self, name: str) -> int:
        since = now() - timedelta(hours=1)
        return sum(
            1 for r in self.registry.record(name).restarts if r.get("at") and datetime.fromisoformat(r["at"]) >= since
        )

    def view(self, name: str) -> dict[str, Any]:
        record = self.registry.record(name)
        return {
            "enabled": self.settings.watchdog_enabled and record.intent == "running",
            "checks": self.checks.get(name, 0),
            "checked_at": self.checked_at.get(name),
            "consecutive_failures": self.failures.get(name, 0),
            "threshold": self.settings.watchdog_failures,
            "last_error": self.last_error.get(name),
            "restarts_last_hour": self.restarts_last_hour(name),
            "max_restarts_per_hour": self.settings.watchdog_max_restarts,
            "next_restart_not_before": self._not_before_wall.get(name)
            if self.clock() < self._not_before.get(name, 0.0)
            else None,
            "start_grace_until": self._coming_up[name][1] if self._in_start_grace(name) else None,
            "gave_up_at": record.gave_up_at,
            "restarts": list(reversed(record.restarts)),
        }
