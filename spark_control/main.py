"""The app factory: `uvicorn --factory spark_control.main:create_app` (or `python -m spark_control`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from starlette.middleware.trustedhost import TrustedHostMiddleware

from spark_control import __version__
from spark_control.config import Settings, get_settings
from spark_control.datadir import DataDirLock
from spark_control.errors import install_handlers
from spark_control.proxy import AudioProxy
from spark_control.routers import audio, dashboard, health, jobs, services, session, voices, whisperx
from spark_control.runner.jobs import JobManager
from spark_control.security import Auth, trusted_hosts
from spark_control.services import ServiceRegistry
from spark_control.voices import VoiceLibrary
from spark_control.watchdog import Watchdog
from spark_control.whisperx import WhisperxMonitor, api_keys


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    auth = Auth(settings)

    def known_secrets() -> tuple[str, ...]:
        audio = settings.audio_token.get_secret_value() if settings.audio_token else None
        found = (settings.huggingface_token(), *api_keys(settings), audio)
        return (settings.resolved_api_token(), *(s for s in found if s))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        lock = DataDirLock.acquire(settings.data_dir)  # before any cleanup: a live instance's files are its own
        try:
            async with serving(app):
                yield
        finally:
            lock.release()

    @asynccontextmanager
    async def serving(app: FastAPI) -> AsyncIterator[None]:
        for leftover in settings.secrets_dir.glob("hf_token-*"):
            leftover.unlink(missing_ok=True)  # per-job token copies of jobs a dead server left behind
        # trust_env=False: LAN services are reached directly, never through an HTTP(S)_PROXY from the environment.
        # Health checks have a pool of their own: long proxied transcriptions can never starve them into
        # false failures (and watchdog restarts).
        lan = {"follow_redirects": False, "trust_env": False}
        async with (
            httpx.AsyncClient(**lan, limits=httpx.Limits(max_connections=64)) as http,
            httpx.AsyncClient(**lan, limits=httpx.Limits(max_connections=8)) as probes,
        ):
            job_manager = JobManager(settings, redact=known_secrets)
            job_manager.recover()
            housekeeping = asyncio.create_task(prune_jobs(job_manager, settings.job_retention_days), name="prune")
            monitor = WhisperxMonitor(settings, job_manager, probes)
            registry = ServiceRegistry(settings, http, job_manager, monitor, probes)
            job_manager.listeners += [monitor.on_job_finished, registry.on_job_finished]
            watchdog = Watchdog(settings, registry, job_manager)
            job_manager.listeners.append(watchdog.on_job_finished)
            app.state.jobs = job_manager
            app.state.whisperx = monitor
            app.state.registry = registry
            app.state.watchdog = watchdog
            library = app.state.voices = VoiceLibrary(settings.voices_dir, settings.voices_max)
            app.state.proxy = AudioProxy(settings, http, monitor, library)
            app.state.loop = asyncio.get_running_loop()
            watchdog.start()
            try:
                yield
            finally:
                housekeeping.cancel()
                await watchdog.stop()
                await job_manager.shutdown()

    app = FastAPI(
        title="spark-control",
        version=__version__,
        summary="Installs WhisperX through ansible-runner, proxies audio, watches the Spark services.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.auth = auth
    for router in (
        health.router,
        session.router,
        whisperx.router,
        jobs.install_router,
        jobs.router,
        audio.router,
        services.router,
        voices.router,
        dashboard.router,
    ):
        app.include_router(router)
    install_handlers(app)
    # DNS rebinding: a request under a name this machine does not go by is refused before any route.
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=trusted_hosts(settings), www_redirect=False)
    return app


async def prune_jobs(jobs: JobManager, retention_days: float, every_s: float = 3600.0) -> None:
    """Delete jobs past their retention now and every hour (SPARK_CONTROL_JOB_RETENTION_DAYS)."""
    while True:
        jobs.prune(retention_days)
        await asyncio.sleep(every_s)
