"""WhisperX on its hosts: install/remove jobs, and a status that answers fast.

An install runs the playbook over every backend's host, one host at a time (its `serial`), so the
other backends serve while one is upgraded. The status never waits on SSH. Liveness comes from each
service's /health with a hard deadline; each container's state (installed, running, image) comes
from the last playbook that looked at it (install, remove, status or a service action), cached on
disk, and is refreshed by the status playbook in the background when it is older than
SPARK_CONTROL_CONTAINER_STATE_MAX_AGE and the service does not answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from datetime import datetime
from pathlib import Path
from secrets import token_hex
from typing import Any

import httpx

from spark_control.backends import Backend, BackendAddress, ContainerState
from spark_control.config import Settings, write_private
from spark_control.health import HealthSample, is_whisperx_health, whisperx_ready
from spark_control.inventory import whisperx_backends
from spark_control.runner.jobs import Job, JobConflict, JobManager, JobRecord, now
from spark_control.schemas import BackendStatus, ContainerInfo, HealthCheckInfo, InstallRequest, JobRef, WhisperxStatus

log = logging.getLogger("spark_control.whisperx")

INSTALL_LOCK = "whisperx"  # install, remove, rollback and actions on the WhisperX container exclude each other
ROLLBACK_PHASES = ("start", "load")  # a cancel from here on may leave the new container in the old one's place
STATUS_LOCK = "whisperx-status"
STATUS_JOBS_KEPT = 10


def install_vars(settings: Settings, hf_token_file: Path | None, model: str | None = None) -> dict[str, Any]:
    """The role's variables for an install, the same for every backend (each one's own are its host vars in
    the inventory). The token travels only as a file path."""
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
        "whisperx_model": model or settings.served_model,
        **{k: v for k, v in optional.items() if v is not None},
    }


def api_keys(settings: Settings) -> list[str]:
    """Every backend's API key as the playbooks copied it here (values the logs must never show)."""
    keys = []
    for address in whisperx_backends(settings):
        try:
            keys.append(address.api_key_path.read_text().strip())
        except OSError:
            continue
    return [k for k in keys if k]


class WhisperxMonitor:
    """The WhisperX backends (one per GPU host), the jobs that install, remove and look at them, and their status."""

    def __init__(self, settings: Settings, jobs: JobManager, http: httpx.AsyncClient):
        self.settings = settings
        self.jobs = jobs
        addresses = whisperx_backends(settings)
        _adopt_single_backend_files(settings, addresses)
        self.backends = [Backend(address, http, settings) for address in addresses]
        self._by_inventory_name = {b.address.inventory_name: b for b in self.backends}
        self._tasks: set[asyncio.Task[None]] = set()
        self._rollback_after: set[str] = set()  # canceled installs whose rollback starts once they are finished
        jobs.closing_notes.append(self.closing_note)

    def backend(self, name: str) -> Backend | None:
        return next((b for b in self.backends if b.name == name), None)

    def backend_at(self, url: str) -> Backend | None:
        return next((b for b in self.backends if b.url == url), None)

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
                {},
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
        if record.state == "interrupted":
            return
        if record.kind == "service":
            backend = self.backend(record.target or "")
            if backend is not None:
                self._note(backend, record, None, record.result.get("service_result"))
        elif record.kind in ("install", "remove", "status", "rollback"):
            by_host = record.result.get("whisperx_status_by_host")
            by_host = by_host if isinstance(by_host, dict) else {}
            single = record.result.get("whisperx_status")
            for backend in self.backends:
                here = backend.address.inventory_name
                reported = by_host.get(here, single if len(self.backends) == 1 else None)
                reached = here in record.hosts or here in by_host or here in record.unreachable
                if record.kind == "install" and len(self.backends) > 1 and not reached:
                    continue  # a rollout that stopped before this host: nothing was learnt of it
                self._note(backend, record, reported, None)

    def _note(self, backend: Backend, record: JobRecord, reported: Any, action: Any) -> None:
        """Fold what one job said about one backend's container into its cached state."""
        state = backend.container
        here = backend.address.inventory_name
        unreachable = here in record.unreachable or (len(self.backends) == 1 and bool(record.unreachable))
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
        elif unreachable:
            state.error = f"host unreachable over SSH: {record.error or here}"
        elif record.state != "successful":
            state.error = record.error or f"{record.kind} job {record.state}"
            if record.kind in ("install", "remove"):
                self.refresh_soon()  # a failed install rolled back to something: look at what is there
        else:
            return
        state.host_reachable = not unreachable
        state.checked_at = record.finished_at
        state.source = f"{record.kind} job"
        state.job_id = record.id
        backend.save()

    def refresh_soon(self) -> None:
        """Look at the containers again (the status playbook, in the background), unless a job already is."""
        if not any(t.get_name() == "whisperx-refresh" for t in self._tasks):
            self._spawn(self._refresh(), "whisperx-refresh")

    def _spawn(self, work: Coroutine[Any, Any, None], name: str | None = None) -> None:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refresh(self) -> None:
        if self.jobs.holding(STATUS_LOCK) or self.jobs.holding(INSTALL_LOCK):
            return
        await self.jobs.start(
            "status",
            "whisperx_status",
            {},
            lock=STATUS_LOCK,
            target="whisperx",
            trigger="status",
            timeout_s=max(30, self.settings.ssh_connect_timeout_s * 6),
        )
        self.jobs.forget("status", STATUS_JOBS_KEPT)

    def installed(self) -> bool:
        return any(b.container.installed for b in self.backends)

    # -- install and remove -----------------------------------------------------------------------
    async def install(self, request: InstallRequest) -> Job:
        """Start the install playbook on every backend's host, one at a time (JobConflict while another install
        or removal runs).

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
            timeout_s=settings.install_timeout_s * len(self.backends),
            secrets=(token,) if token else (),
            temp_files=temporary,
        )

    async def remove(self) -> Job:
        return await self.jobs.start("remove", "whisperx_remove", {}, lock=INSTALL_LOCK, target="whisperx",
                                     action="remove")  # fmt: skip

    # -- status -----------------------------------------------------------------------------------
    async def status(self) -> WhisperxStatus:
        """What GET /api/whisperx/status answers: each backend live from /health when it answers, else from the
        cached state; the top-level fields are the first backend's, or what holds for any of them."""
        samples = await asyncio.gather(*(b.probe.check() for b in self.backends))
        refreshing = await self.refresh_if_stale(samples)
        views = [self._view(b, sample, refreshing) for b, sample in zip(self.backends, samples, strict=True)]
        last = next(iter(self.jobs.list(("install", "remove", "rollback"))), None)  # the newest of them
        first = views[0]
        live = next((v for v in views if v.answered_from == "live"), first)
        reachable = [v.host_reachable for v in views]
        return WhisperxStatus(
            installed=any(v.installed for v in views),
            running=any(v.running for v in views),
            healthy=any(v.healthy for v in views),
            health=live.health,
            url=first.url,
            job=JobRef(id=last.id, state=last.record.state, phase=last.record.phase) if last else None,
            host_reachable=True if True in reachable else (False if False in reachable else None),
            answered_from=live.answered_from,
            checks=first.checks,
            backends=views,
        )

    def _view(self, backend: Backend, sample: HealthSample, refreshing: bool) -> BackendStatus:
        container = backend.container
        live = is_whisperx_health(sample.body)  # the service itself answered: it is installed and running
        age = _age_s(container)
        queue = (sample.body or {}).get("queue") if live else None
        return BackendStatus(
            name=backend.name,
            host=backend.address.host,
            port=backend.address.port,
            url=backend.url,
            container_name=backend.address.container,
            installed=live or bool(container.installed),
            running=live or bool(container.running),
            healthy=live and whisperx_ready(sample),
            health=sample.body if live else None,
            queue=queue if isinstance(queue, dict) else None,
            in_flight=backend.in_flight,
            host_reachable=True if live else container.host_reachable,
            answered_from="live" if live else "cache",
            checks={
                "health": HealthCheckInfo.of(sample),
                "container": ContainerInfo(
                    **{k: v for k, v in vars(container).items() if k != "host_reachable"},
                    age_s=round(age, 1) if age is not None else None,
                    stale=age is None or age > self.settings.container_state_max_age_s,
                    refreshing=refreshing,
                ),
            },
        )

    async def refresh_if_stale(self, samples: list[HealthSample]) -> bool:
        """Start the status playbook in the background when a backend's cached state is old and its /health is
        silent (one run looks at every backend)."""
        busy = self.jobs.holding(INSTALL_LOCK) or self.jobs.holding(STATUS_LOCK)
        max_age = self.settings.container_state_max_age_s
        stale = any(
            not sample.ok and ((age := _age_s(b.container)) is None or age > max_age)
            for b, sample in zip(self.backends, samples, strict=True)
        )
        if not stale or busy:
            return bool(self.jobs.holding(STATUS_LOCK))
        await self._refresh()
        return True


def _adopt_single_backend_files(settings: Settings, addresses: list[BackendAddress]) -> None:
    """From one backend to several: the one at WHISPERX_HOST:WHISPERX_PORT keeps the API key copy and the container
    state the single backend had, so requests to it carry its key before any playbook has run again."""
    if len(addresses) < 2:
        return
    key, state = settings.secrets_dir / "whisperx-api-key", settings.data_dir / "state" / "whisperx.json"
    for address in addresses:
        if (address.host, address.port) != (settings.whisperx_host, settings.whisperx_port):
            continue
        for old, new in ((key, address.api_key_path), (state, address.state_path)):
            if old.is_file() and not new.exists():
                write_private(new, old.read_text())


def _age_s(container: ContainerState) -> float | None:
    if not container.checked_at:
        return None
    return (now() - datetime.fromisoformat(container.checked_at)).total_seconds()
