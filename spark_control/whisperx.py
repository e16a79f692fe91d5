"""WhisperX on its host: install/remove jobs, and a status that answers fast.

The status never waits on SSH. Liveness comes from the service's /health with a hard deadline; the
container's state (installed, running, image) comes from the last playbook that looked at it
(install, remove, status or a service action), cached on disk, and is refreshed by the status
playbook in the background when it is older than SPARK_CONTROL_CONTAINER_STATE_MAX_AGE and the
service does not answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Coroutine
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from secrets import token_hex
from typing import Any

import httpx

from spark_control.config import Settings, write_private
from spark_control.health import HealthProbe, HealthSample, is_whisperx_health, whisperx_alive, whisperx_ready
from spark_control.runner.jobs import Job, JobConflict, JobManager, now
from spark_control.schemas import ContainerInfo, HealthCheckInfo, InstallRequest, JobRef, WhisperxStatus

log = logging.getLogger("spark_control.whisperx")

INSTALL_LOCK = "whisperx"  # install, remove, rollback and actions on the WhisperX container exclude each other
ROLLBACK_PHASES = ("start", "load")  # a cancel from here on may leave the new container in the old one's place
STATUS_LOCK = "whisperx-status"
STATUS_JOBS_KEPT = 10


@dataclass
class ContainerState:
    installed: bool | None = None
    running: bool | None = None
    image: str | None = None
    checked_at: str | None = None
    source: str = "unknown"
    job_id: str | None = None
    error: str | None = None
    host_reachable: bool | None = None


def install_vars(settings: Settings, hf_token_file: Path | None, model: str | None = None) -> dict[str, Any]:
    """The role's variables for an install. The token travels only as a file path."""
    optional = {
        "whisperx_model_bundle": str(settings.whisperx_model_bundle) if settings.whisperx_model_bundle else None,
        "whisperx_base_image": settings.whisperx_base_image,
        "whisperx_gpus": settings.whisperx_gpus,
        "whisperx_memory": settings.whisperx_memory,
        "whisperx_extra_ca_certs": settings.whisperx_extra_ca_certs or None,
        "whisperx_env": settings.whisperx_env or None,
        "whisperx_hf_token_file": str(hf_token_file) if hf_token_file else None,
    }
    return {
        **container_vars(settings),
        "whisperx_model": model or settings.served_model,
        **{k: v for k, v in optional.items() if v is not None},
    }


def container_vars(settings: Settings) -> dict[str, Any]:
    """What every WhisperX playbook is told: the container, its port, where to copy its API key to."""
    return {
        "whisperx_container_name": settings.whisperx_container,
        "whisperx_port": settings.whisperx_port,
        "whisperx_api_key_dest": str(api_key_path(settings)),
    }


def api_key_path(settings: Settings) -> Path:
    """Where the role copies WhisperX's API key (its status report; mode 0600, never in a log)."""
    return settings.secrets_dir / "whisperx-api-key"


def api_key(settings: Settings) -> str | None:
    """WhisperX's API key as the last playbook copied it here, or None (a service without one)."""
    try:
        return api_key_path(settings).read_text().strip() or None
    except OSError:
        return None


def auth_headers(settings: Settings) -> dict[str, str]:
    """The header every request to WhisperX but /health carries (none when it has no key)."""
    key = api_key(settings)
    return {"Authorization": f"Bearer {key}"} if key else {}


class WhisperxMonitor:
    def __init__(self, settings: Settings, jobs: JobManager, http: httpx.AsyncClient):
        self.settings = settings
        self.jobs = jobs
        self.probe = HealthProbe(
            http, f"{settings.whisperx_url}/health", settings.health_timeout_s, settings.health_cache_s, whisperx_alive
        )
        self._path = settings.data_dir / "state" / "whisperx.json"
        self.container = self._load()
        self._tasks: set[asyncio.Task[None]] = set()
        self._rollback_after: set[str] = set()  # canceled installs whose rollback starts once they are finished
        jobs.closing_notes.append(self.closing_note)

    # -- a cancel after the container was replaced -------------------------------------------------
    def closing_note(self, job: Job, state: str) -> str | None:
        """An install canceled in start or load may have replaced the running container with the new, unproven
        one: the note says so in its log, and on_job_finished starts the rollback job."""
        record = job.record
        if record.kind != "install" or state != "canceled" or record.phase not in ROLLBACK_PHASES:
            return None
        self._rollback_after.add(record.id)
        return (
            f"canceled during the {record.phase} phase, when the new container may already have replaced the "
            "previous one: a rollback job puts the previous container back"
        )

    async def _roll_back(self, canceled: Job) -> None:
        try:
            rollback = await self.jobs.start(
                "rollback",
                "whisperx_rollback",
                container_vars(self.settings),
                lock=INSTALL_LOCK,
                target="whisperx",
                action="rollback",
                trigger="cancel",
                timeout_s=self.settings.install_timeout_s,
            )
        except JobConflict as exc:  # another install already started: it replaces the container anyway
            log.info("no rollback after %s: job %s holds the lock", canceled.id, exc.job.id)
            return
        canceled.record.error = (
            f"canceled by the operator during the {canceled.record.phase or 'start'} phase; "
            f"rollback job {rollback.id} puts the previous container back"
        )
        canceled.save()

    # -- what the playbooks told us ---------------------------------------------------------------
    def on_job_finished(self, job: Job) -> None:
        record = job.record
        if record.id in self._rollback_after:
            self._rollback_after.discard(record.id)
            self._spawn(self._roll_back(job))
        concerns_us = record.kind in ("install", "remove", "status", "rollback") or (
            record.kind == "service" and record.target == "whisperx"
        )
        if not concerns_us or record.state == "interrupted":
            return
        state = self.container
        reported = record.result.get("whisperx_status")
        action = record.result.get("service_result")
        if isinstance(reported, dict):
            state.installed = bool(reported.get("installed"))
            state.running = bool(reported.get("running"))
            state.image = reported.get("image")
            state.error = None
        elif isinstance(action, dict):
            state.running = bool(action.get("running"))
            state.installed = True if state.running else state.installed
            state.error = None
        elif record.state == "successful" and record.kind in ("install", "remove"):
            # The role is health-gated: a successful install leaves it running, a removal leaves nothing.
            state.installed = state.running = record.kind == "install"
            state.error = None
        elif record.unreachable:
            state.error = f"host unreachable over SSH: {record.error or ', '.join(record.unreachable)}"
        elif record.state != "successful":
            state.error = record.error or f"{record.kind} job {record.state}"
            if record.kind in ("install", "remove"):
                self._refresh_soon()  # a failed install rolled back to something: look at what is there
        else:
            return
        state.host_reachable = not record.unreachable
        state.checked_at = record.finished_at
        state.source = f"{record.kind} job"
        state.job_id = record.id
        self._save()

    def _refresh_soon(self) -> None:
        self._spawn(self._refresh())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refresh(self) -> None:
        if self.jobs.holding(STATUS_LOCK) or self.jobs.holding(INSTALL_LOCK):
            return
        await self.jobs.start(
            "status",
            "whisperx_status",
            container_vars(self.settings),
            lock=STATUS_LOCK,
            target="whisperx",
            trigger="status",
            timeout_s=max(30, self.settings.ssh_connect_timeout_s * 6),
        )
        self.jobs.forget("status", STATUS_JOBS_KEPT)

    def installed(self) -> bool:
        return bool(self.container.installed)

    # -- install and remove -----------------------------------------------------------------------
    async def install(self, request: InstallRequest) -> Job:
        """Start the install playbook (JobConflict while another install or removal runs).

        The Hugging Face token reaches the role only as a file: the server's HF_TOKEN_FILE as it is, or a
        0600 copy for this job alone (of the request's token or HF_TOKEN), deleted when the job ends.
        """
        settings = self.settings
        holder = self.jobs.holding(INSTALL_LOCK)
        if holder is not None and not holder.finished:
            raise JobConflict(holder)  # before a token file is written for nothing
        token = request.hf_token.get_secret_value() if request.hf_token else settings.huggingface_token()
        token_file: Path | None = None
        temporary: tuple[Path, ...] = ()
        if request.hf_token is None and settings.hf_token_file and settings.hf_token_file.is_file():
            token_file = settings.hf_token_file  # already a file on this machine: the role reads it there
        elif token:
            token_file = settings.secrets_dir / f"hf_token-{token_hex(8)}"
            write_private(token_file, token)
            temporary = (token_file,)
        return await self.jobs.start(
            "install",
            "whisperx",
            install_vars(settings, token_file, request.model),
            lock=INSTALL_LOCK,
            target="whisperx",
            action="install",
            timeout_s=settings.install_timeout_s,
            secrets=(token,) if token else (),
            temp_files=temporary,
        )

    async def remove(self) -> Job:
        return await self.jobs.start(
            "remove",
            "whisperx_remove",
            container_vars(self.settings),
            lock=INSTALL_LOCK,
            target="whisperx",
            action="remove",
        )

    # -- status -----------------------------------------------------------------------------------
    async def health(self, max_age_s: float | None = None) -> HealthSample:
        return await self.probe.check(max_age_s)

    async def status(self) -> WhisperxStatus:
        """What GET /api/whisperx/status answers: live from /health when it answers, else the cached state."""
        settings = self.settings
        sample = await self.health()
        refreshing = await self.refresh_if_stale(sample)
        container = self.container
        live = is_whisperx_health(sample.body)  # the service itself answered: it is installed and running
        body = sample.body if live else None
        reachable = True if live else container.host_reachable
        last = next(iter(self.jobs.list(("install", "remove", "rollback"))), None)  # the newest of them
        age = self.container_age_s()
        return WhisperxStatus(
            installed=live or bool(container.installed),
            running=live or bool(container.running),
            healthy=live and whisperx_ready(sample),
            health=body,
            url=settings.whisperx_url,
            job=JobRef(id=last.id, state=last.record.state, phase=last.record.phase) if last else None,
            host_reachable=reachable,
            answered_from="live" if live else "cache",
            checks={
                "health": HealthCheckInfo.of(sample),
                "container": ContainerInfo(
                    **{k: v for k, v in vars(container).items() if k != "host_reachable"},
                    age_s=round(age, 1) if age is not None else None,
                    stale=age is None or age > settings.container_state_max_age_s,
                    refreshing=refreshing,
                ),
            },
        )

    def container_age_s(self) -> float | None:
        if not self.container.checked_at:
            return None
        return (now() - datetime.fromisoformat(self.container.checked_at)).total_seconds()

    async def refresh_if_stale(self, sample: HealthSample) -> bool:
        """Start the status playbook in the background when the cached state is old and /health is silent."""
        age = self.container_age_s()
        stale = age is None or age > self.settings.container_state_max_age_s
        busy = self.jobs.holding(INSTALL_LOCK) or self.jobs.holding(STATUS_LOCK)
        if sample.ok or not stale or busy:
            return bool(self.jobs.holding(STATUS_LOCK))
        await self._refresh()
        return True

    # -- persistence ------------------------------------------------------------------------------
    def _load(self) -> ContainerState:
        try:
            return ContainerState(**json.loads(self._path.read_text()))
        except (OSError, ValueError, TypeError):
            return ContainerState()

    def _save(self) -> None:
        write_private(self._path, json.dumps(asdict(self.container), indent=1))
