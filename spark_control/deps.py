"""FastAPI dependencies: every component comes from app.state, so tests override them per app.

The Annotated aliases below are the only way routers ask for a component.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from spark_control.config import Settings
from spark_control.proxy import AudioProxy
from spark_control.runner.jobs import JobManager
from spark_control.security import AuthDep
from spark_control.services import ServiceRegistry
from spark_control.voices import VoiceLibrary
from spark_control.watchdog import Watchdog
from spark_control.whisperx import WhisperxMonitor


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_jobs(request: Request) -> JobManager:
    return request.app.state.jobs


def get_whisperx(request: Request) -> WhisperxMonitor:
    return request.app.state.whisperx


def get_registry(request: Request) -> ServiceRegistry:
    return request.app.state.registry


def get_watchdog(request: Request) -> Watchdog:
    return request.app.state.watchdog


def get_proxy(request: Request) -> AudioProxy:
    return request.app.state.proxy


def get_voices(request: Request) -> VoiceLibrary:
    return request.app.state.voices


SettingsDep = Annotated[Settings, Depends(get_settings)]
Jobs = Annotated[JobManager, Depends(get_jobs)]
Monitor = Annotated[WhisperxMonitor, Depends(get_whisperx)]
Registry = Annotated[ServiceRegistry, Depends(get_registry)]
WatchdogDep = Annotated[Watchdog, Depends(get_watchdog)]
Proxy = Annotated[AudioProxy, Depends(get_proxy)]
Voices = Annotated[VoiceLibrary, Depends(get_voices)]

__all__ = ["AuthDep", "Jobs", "Monitor", "Proxy", "Registry", "SettingsDep", "Voices", "WatchdogDep"]
