"""Playbook runs as jobs: ansible-runner's async API in a private data directory per job.

Threads: ansible-runner runs each playbook in its own thread (`run_async`). Its callbacks never touch
job state; they hand a small `RunnerEvent` to the event loop with `call_soon_threadsafe` and return
at once, so nothing a client does can slow the runner. All job state lives on the loop thread.

Memory: a job keeps its most recent stream events in a bounded deque; a client further behind reads
the older ones back from the runner's `job_events/` files, so a slow or reconnecting client costs a
cursor, never a copy of the log.

Disk: DATA_DIR/jobs/<job_id>/ is the job's private data directory (ansible-runner's layout:
inventory/, artifacts/<job_id>/{job_events/,stdout,status,rc,command}) plus job.json, the record
spark-control adds. A server that starts finds every job there; one still marked running was cut off
by a dead server and becomes `interrupted` (its orphaned ansible-playbook, if any, is stopped).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from secrets import token_hex
from typing import Any, Literal

import ansible_runner
import psutil

from spark_control.config import Settings, names_a_secret
from spark_control.inventory import build_inventory
from spark_control.runner.events import (
    EventTranslator,
    RunnerEvent,
    StreamEvent,
    read_runner_events,
    translate,
)
from spark_control.runner.phases import final_phase

log = logging.getLogger("spark_control.jobs")

JobState = Literal["running", "successful", "failed", "canceled", "interrupted"]
JobKind = Literal["install", "remove", "status", "service", "rollback"]
FINISHED: tuple[JobState, ...] = ("successful", "failed", "canceled", "interrupted")
JOB_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")

# What the ansible-playbook process inherits from spark-control's environment. Everything else is
# dropped: ansible-runner writes the whole environment to artifacts/<id>/command in clear text.
_ENV_KEEP = {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "SSH_AUTH_SOCK", "VIRTUAL_ENV"}
_ENV_KEEP_PREFIXES = ("ANSIBLE_", "LC_", "RUNNER_", "AWX_", "JOB_")
_RUNNER_STATUS: dict[str, JobState] = {"successful": "successful", "canceled": "canceled"}


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def scrub_runner_env(env: dict[str, str]) -> None:
    """Reduce the runner's environment, in place, to what ansible-playbook needs and no secret."""
    for key in list(env):
        upper = key.upper()
        allowed = upper in _ENV_KEEP or upper.startswith(_ENV_KEEP_PREFIXES)
        if not allowed or names_a_secret(upper):
            del env[key]
    env["PATH"] = _with_own_bin_dir(env.get("PATH", os.defpath))


class JobConflict(Exception):
    """Another job holds the lock (409, with the holder's id: errors.py)."""

    def __init__(self, job: Job):
        what = " ".join(str(p) for p in (job.record.action or job.record.kind, job.record.target) if p)
        super().__init__(f"job {job.id} ({what}) is running")
        self.job = job


@dataclass
class JobRecord:
    """What spark-control remembers about a job (DATA_DIR/jobs/<id>/job.json). No secrets."""

    id: str
    kind: JobKind
    playbook: str
    target: str | None = None
    action: str | None = None
    trigger: str = "api"
    lock: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    state: JobState = "running"
    rc: int | None = None
    phase: str | None = None
    hosts: dict[str, str] = field(default_factory=dict)  # an install's phase on each host
    pid: int | None = None
    result: dict[str, Any] = field(default_factory=dict)
    unreachable: list[str] = field(default_factory=list)
    error: str | None = None
    final_event_id: int | None = None
    extravars: dict[str, Any] = field(default_factory=dict)
    note: str | None = None  # spark-control's own last word in the log (e.g. the rollback after a cancel)


class Job:
    def __init__(self, record: JobRecord, directory: Path, buffer: int, redact: tuple[str, ...] = ()):
        self.record = record
        self.dir = directory
        self._buffer = buffer
        self._redact = redact
        self._translator = self._new_translator()
        self._recent: deque[StreamEvent] = deque(maxlen=buffer)
        self._evicted_upto = 0  # highest id dropped from _recent; older events come from disk
        self._live = False
        self._changed = asyncio.Event()
        self.done = asyncio.Event()
        self.cancel_requested = False  # read by the runner thread's cancel_callback
        self.interrupting = False
        self.temp_files: tuple[Path, ...] = ()
        if record.state in FINISHED:
            self.done.set()

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def artifact_dir(self) -> Path:
        return self.dir / "artifacts" / self.id

    @property
    def finished(self) -> bool:
        return self.record.state in FINISHED

    def elapsed_s(self) -> float | None:
        if not self.record.started_at:
            return None
        end = datetime.fromisoformat(self.record.finished_at) if self.record.finished_at else now()
        return round((end - datetime.fromisoformat(self.record.started_at)).total_seconds(), 3)

    def _new_translator(self) -> EventTranslator:
        return EventTranslator(track_phases=self.record.kind == "install", redact=self._redact)

    # -- the loop thread's side of the runner callbacks -------------------------------------------
    def on_runner_event(self, event: RunnerEvent) -> None:
        self._live = True
        had_pid = self._translator.pid
        out = self._translator.feed(event)
        if self._translator.pid and not had_pid:
            self.record.pid = self._translator.pid
            self.save()
        if self._translator.hosts != self.record.hosts:
            self.record.hosts = dict(self._translator.hosts)
        if out is None:
            return
        if out.event == "phase":
            self.record.phase = out.data["phase"]
        self._append(out)

    def finish(self, state: JobState, rc: int | None, error: str | None = None, note: str | None = None) -> None:
        if self.finished:
            return
        self.record.note = note
        self.record.state = state
        self.record.rc = rc
        self.record.finished_at = iso(now())
        stats = self._translator.stats or {}
        self.record.result = stats.get("artifact_data") or {}
        self.record.unreachable = sorted(set(stats.get("unreachable") or []) | self._translator.unreachable)
        self.record.error = error or (self._translator.last_failure if state != "successful" else None)
        for event in self._translator.finish(state, rc, self.record.finished_at, note):
            if event.event == "phase":
                self.record.phase = event.data["phase"]
                self.record.hosts = dict(self._translator.hosts)
            self._append(event)
            self.record.final_event_id = event.id
        self.save()
        self.done.set()

    def _append(self, event: StreamEvent) -> None:
        if len(self._recent) == self._recent.maxlen:
            self._evicted_upto = self._recent[0].id
        self._recent.append(event)
        self._changed.set()
        self._changed = asyncio.Event()

    # -- readers ----------------------------------------------------------------------------------
    def in_memory(self, cursor: int) -> bool:
        """Whether every event after `cursor` is still in the buffer (no disk read needed)."""
        return self._live and cursor >= self._evicted_upto

    def final_id(self) -> int:
        """The id of the `done` event (finished jobs only)."""
        if self.record.final_event_id is None:
            events = self.events_after(0)
            self.record.final_event_id = events[-1].id if events else 0
        return self.record.final_event_id

    def events_after(self, cursor: int) -> list[StreamEvent]:
        """Stream events with an id above `cursor` that exist now: from memory, or replayed from disk."""
        if self.in_memory(cursor):
            return [e for e in self._recent if e.id > cursor]
        translator = self._new_translator()
        events = translate(read_runner_events(self.artifact_dir), translator)
        if self.finished:
            events += translator.finish(self.record.state, self.record.rc, self.record.finished_at, self.record.note)
        return [e for e in events if e.id > cursor]

    async def wait_for_change(self, within_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), within_s)

    def save(self) -> None:
        path = self.dir / "job.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.record), indent=1))
        tmp.replace(path)


class JobManager:
    """Starts, tracks, cancels and recovers playbook jobs; one job per lock at a time."""

    def __init__(self, settings: Settings, redact: Callable[[], tuple[str, ...]] = tuple):
        self.settings = settings
        self._redact = redact
        self._jobs: dict[str, Job] = {}
        self._locks: dict[str, str] = {}
        self._threads: dict[str, threading.Thread] = {}
        self.listeners: list[Callable[[Job], None]] = []  # called on the loop when a job finishes
        # Asked as a playbook ends, before the job is finished: a note for its log (first one given wins).
        self.closing_notes: list[Callable[[Job, JobState], str | None]] = []
        settings.jobs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    # -- lifecycle --------------------------------------------------------------------------------
    def recover(self) -> list[Job]:
        """Load every job on disk; the ones a dead server left running become interrupted."""
        interrupted = []
        for path in sorted(self.settings.jobs_dir.glob("*/job.json")):
            try:
                record = JobRecord(**json.loads(path.read_text()))
            except (OSError, ValueError, TypeError) as exc:
                log.warning("skipping unreadable job record %s: %s", path, exc)
                continue
            job = Job(record, path.parent, self.settings.stream_buffer_events, self._redact())
            if record.state == "running":
                _stop_orphan(record.pid, job.dir)
                last = read_runner_events(job.artifact_dir)
                record.finished_at = (last[-1].created if last and last[-1].created else None) or iso(now())
                status, rc = _runner_outcome(job.artifact_dir)
                if status:  # the runner finished; only spark-control's own bookkeeping was cut short
                    record.state = _RUNNER_STATUS.get(status, "failed")
                    record.rc = rc
                    translator = job._new_translator()
                    translate(last, translator)
                    record.result = (translator.stats or {}).get("artifact_data") or {}
                else:
                    record.state = "interrupted"
                    record.error = "spark-control stopped while this job was running"
                if record.kind == "install":
                    record.phase = final_phase(record.state)
                job.final_id()
                job.save()
                job.done.set()
                interrupted.append(job)
            self._jobs[record.id] = job
        return interrupted

    async def shutdown(self, grace_s: float = 10.0) -> None:
        """Stop running playbooks; they are recorded as interrupted."""
        running = [j for j in self._jobs.values() if not j.finished]
        for job in running:
            job.interrupting = True
            job.cancel_requested = True
        for job in running:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(job.done.wait(), grace_s)

    # -- queries ----------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id) if JOB_ID.match(job_id) else None

    def list(self, kinds: tuple[str, ...] | None = None, target: str | None = None) -> list[Job]:
        jobs = [
            j
            for j in self._jobs.values()
            if (kinds is None or j.record.kind in kinds) and (target is None or j.record.target == target)
        ]
        return sorted(jobs, key=lambda j: j.id, reverse=True)

    def holding(self, lock: str) -> Job | None:
        job_id = self._locks.get(lock)
        return self._jobs.get(job_id) if job_id else None

    def latest(self, kind: str, target: str | None = None, finished_only: bool = False) -> Job | None:
        for job in self.list((kind,), target):
            if job.finished or not finished_only:
                return job
        return None

    # -- actions ----------------------------------------------------------------------------------
    async def start(
        self,
        kind: JobKind,
        playbook: str,
        extravars: dict[str, Any],
        *,
        lock: str,
        target: str | None = None,
        action: str | None = None,
        trigger: str = "api",
        timeout_s: int | None = None,
        secrets: tuple[str, ...] = (),
        temp_files: tuple[Path, ...] = (),
    ) -> Job:
        """Start a playbook as a job; JobConflict when `lock` is held by a running job.

        `secrets` are values this job's log lines must never show (redacted as a last line of defence);
        `temp_files` are deleted when the job ends, however it ends.
        """
        holder = self.holding(lock)
        if holder is not None and not holder.finished:
            for path in temp_files:
                path.unlink(missing_ok=True)
            raise JobConflict(holder)
        job_id = f"{now():%Y%m%d-%H%M%S}-{token_hex(3)}"
        directory = self.settings.jobs_dir / job_id
        directory.mkdir(mode=0o700)
        record = JobRecord(
            id=job_id,
            kind=kind,
            playbook=self.settings.playbook(playbook),
            target=target,
            action=action,
            trigger=trigger,
            lock=lock,
            created_at=iso(now()),
            started_at=iso(now()),
            extravars=extravars,
        )
        job = Job(record, directory, self.settings.stream_buffer_events, self._redact() + secrets)
        job.temp_files = temp_files
        job.save()
        self._jobs[job_id] = job
        self._locks[lock] = job_id  # taken before the first await: a second start sees it
        try:
            loop = asyncio.get_running_loop()
            await asyncio.to_thread(self._launch, job, timeout_s or self.settings.action_timeout_s, loop)
        except Exception as exc:
            log.exception("job %s did not start", job_id)
            job.finish("failed", None, f"the playbook did not start: {exc}")
            self._release(job)
            self._announce(job)
        return job

    def cancel(self, job: Job) -> None:
        if not job.finished:
            job.cancel_requested = True

    def prune(self, older_than_days: float) -> list[str]:
        """Delete finished jobs (their logs and artifacts) that ended more than `older_than_days` ago."""
        cutoff = now() - timedelta(days=older_than_days)
        old = [
            j
            for j in self._jobs.values()
            if j.finished and j.record.finished_at and datetime.fromisoformat(j.record.finished_at) < cutoff
        ]
        for job in old:
            self._jobs.pop(job.id, None)
            shutil.rmtree(job.dir, ignore_errors=True)
        if old:
            log.info("deleted %d jobs that ended over %g days ago", len(old), older_than_days)
        return [j.id for j in old]

    def forget(self, kind: str, keep: int) -> None:
        """Delete the oldest finished jobs of a kind beyond the newest `keep` (status polls pile up)."""
        for job in [j for j in self.list((kind,)) if j.finished][keep:]:
            self._jobs.pop(job.id, None)
            shutil.rmtree(job.dir, ignore_errors=True)

    # -- the runner thread ------------------------------------------------------------------------
    def _launch(self, job: Job, timeout_s: int, loop: asyncio.AbstractEventLoop) -> None:
        """Runs in a worker thread: prepares the private data directory and starts ansible-runner."""
        settings = self.settings

        def to_loop(callback: Callable[..., None], *args: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: the server is exiting
                loop.call_soon_threadsafe(callback, *args)

        def event_handler(raw: dict[str, Any]) -> bool:
            try:
                event = RunnerEvent.from_runner(raw)
            except (KeyError, TypeError, ValueError):
                return True
            to_loop(job.on_runner_event, event)
            return True  # ansible-runner still writes job_events/<counter>-<uuid>.json

        def status_handler(data: dict[str, Any], runner_config: Any) -> None:
            if data.get("status") == "starting":
                # Called before ansible-runner writes artifacts/<id>/command and spawns the process.
                scrub_runner_env(runner_config.env)

        thread, runner = ansible_runner.run_async(
            private_data_dir=str(job.dir),
            ident=job.id,
            playbook=job.record.playbook,
            inventory=build_inventory(settings),
            extravars=job.record.extravars,
            envvars={
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_TIMEOUT": str(settings.ssh_connect_timeout_s),
                "ANSIBLE_FORCE_COLOR": "0",
            },
            settings={"pexpect_timeout": 0.5, "suppress_ansible_output": True},
            suppress_env_files=True,
            quiet=True,
            timeout=timeout_s,
            event_handler=event_handler,
            status_handler=status_handler,
            cancel_callback=lambda: job.cancel_requested,
        )
        self._threads[job.id] = thread

        def wait_for_runner() -> None:
            thread.join()
            to_loop(self._on_runner_exit, job, runner.status, runner.rc)

        threading.Thread(target=wait_for_runner, name=f"job-{job.id}-waiter", daemon=True).start()

    def _on_runner_exit(self, job: Job, status: str, rc: int | None) -> None:
        state: JobState = "interrupted" if job.interrupting else _RUNNER_STATUS.get(status, "failed")
        error = f"the playbook exceeded its time limit ({status})" if status == "timeout" else None
        try:
            job.finish(state, rc, error, self._closing_note(job, state))
        except Exception:  # a full disk, say: the job still ends, its lock and its token file still go
            log.exception("job %s ended but its record could not be written", job.id)
            job.done.set()
        finally:
            self._threads.pop(job.id, None)
            self._release(job)
            self._announce(job)

    def _closing_note(self, job: Job, state: JobState) -> str | None:
        for ask in self.closing_notes:
            try:
                if note := ask(job, state):
                    return note
            except Exception:
                log.exception("closing note failed for %s", job.id)
        return None

    def _announce(self, job: Job) -> None:
        for path in job.temp_files:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        for listener in self.listeners:
            try:
                listener(job)
            except Exception:
                log.exception("job listener failed for %s", job.id)

    def _release(self, job: Job) -> None:
        if job.record.lock and self._locks.get(job.record.lock) == job.id:
            del self._locks[job.record.lock]


def _with_own_bin_dir(path: str) -> str:
    """PATH with spark-control's own bin directory first: a venv install finds its ansible-playbook."""
    own = str(Path(sys.executable).parent)
    return os.pathsep.join([own, *(p for p in path.split(os.pathsep) if p and p != own)])


def _runner_outcome(artifact_dir: Path) -> tuple[str | None, int | None]:
    """ansible-runner's own status and rc files, written when the playbook ended."""
    try:
        status = (artifact_dir / "status").read_text().strip()
        rc_text = (artifact_dir / "rc").read_text().strip()
    except OSError:
        return None, None
    return status or None, int(rc_text) if rc_text.lstrip("-").isdigit() else None


def _stop_orphan(pid: int | None, job_dir: Path) -> None:
    """Stop an ansible-playbook a dead server left behind (pexpect starts it in its own session)."""
    if not pid:
        return
    try:
        process = psutil.Process(pid)
        if str(job_dir) not in " ".join(process.cmdline()):
            return  # the pid was reused by something else
        os.killpg(os.getpgid(pid), signal.SIGTERM)
        log.warning("stopped orphaned ansible-playbook %s of job %s", pid, job_dir.name)
    except (psutil.Error, OSError):
        pass
