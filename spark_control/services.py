"""The managed services: Parakeet (the legacy ASR), Magpie (TTS) and each WhisperX backend once it is installed
(`whisperx`, or `whisperx@host` each with several GPU hosts: started, restarted and deep-checked on its own).

Actions run `playbooks/service.yml` (service_name, service_action, service_hosts) through the job
manager; health is an HTTP check; a deep check sends real audio through the service and checks
what comes back. What the operator asked for (`intent`), the last action and every watchdog restart
are kept in DATA_DIR/state/services.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import time
import wave
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx

from spark_control.backends import Backend
from spark_control.config import Settings, write_private
from spark_control.errors import ServiceActionFailed
from spark_control.health import HealthProbe, Judge, answers_2xx, whisperx_alive, whisperx_ready
from spark_control.runner.jobs import Job, JobManager, iso, now
from spark_control.schemas import HealthCheckInfo, ServiceActionResult, ServiceView
from spark_control.whisperx import INSTALL_LOCK, WhisperxMonitor

if TYPE_CHECKING:
    from spark_control.watchdog import Watchdog

Action = Literal["start", "stop", "restart"]
ASSETS = Path(__file__).parent / "assets"
DEEP_CHECK_CLIP = ASSETS / "deep_check.wav"
DEEP_CHECK_TEXT = (ASSETS / "deep_check.txt").read_text().strip()
TRANSCRIBE_PATH = "/v1/audio/transcribe-with-speakers"  # WhisperX and the legacy service (CONTRACT section 1)
SYNTHESIZE_PATH = "/v1/audio/synthesize"  # the Magpie TTS NIM's HTTP API
ASR_MATCH_MIN = 0.6
RESTARTS_KEPT = 50


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    title: str
    container: str
    host_group: str
    url: str
    health_path: str
    kind: Literal["asr", "tts"]
    judge: Judge = answers_2xx
    backend: Backend | None = None  # a WhisperX backend: managed once installed, acted on under the install lock

    @property
    def lock(self) -> str:
        return INSTALL_LOCK if self.backend else f"service:{self.name}"


@dataclass
class ServiceRecord:
    intent: Literal["running", "stopped"] = "running"
    state: str = "unknown"
    state_at: str | None = None
    last_action: dict[str, Any] | None = None
    restarts: list[dict[str, Any]] = field(default_factory=list)
    deep_check: dict[str, Any] | None = None
    gave_up_at: str | None = None


def word_match(expected: str, heard: str) -> float:
    """The share of the expected words that were heard (case and punctuation ignored)."""
    words = re.findall(r"[a-z0-9']+", expected.lower())
    got = set(re.findall(r"[a-z0-9']+", heard.lower()))
    return round(sum(w in got for w in words) / len(words), 3) if words else 0.0


class ServiceRegistry:
    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient,
        jobs: JobManager,
        whisperx: WhisperxMonitor,
        probe_http: httpx.AsyncClient,
    ):
        self.settings = settings
        self.http = http
        self.jobs = jobs
        self.whisperx = whisperx
        self._all = {
            "parakeet": ServiceSpec(
                "parakeet",
                "Parakeet + Sortformer (legacy ASR)",
                settings.parakeet_container,
                "spark2",
                settings.legacy_asr_url,
                settings.legacy_asr_health_path,
                "asr",
            ),
            "magpie": ServiceSpec(
                "magpie",
                "Magpie TTS",
                settings.magpie_container,
                "spark2",
                settings.magpie_url,
                settings.magpie_health_path,
                "tts",
            ),
            **{
                backend.name: ServiceSpec(
                    backend.name,
                    backend.address.title,
                    backend.address.container,
                    backend.address.inventory_name,
                    backend.url,
                    "/health",
                    "asr",
                    whisperx_alive,
                    backend,
                )
                for backend in whisperx.backends
            },
        }
        self.probes = {
            name: spec.backend.probe  # one probe, one cache per backend, shared with the proxy and the status
            if spec.backend
            else HealthProbe(
                probe_http,
                f"{spec.url}{spec.health_path}",
                settings.health_timeout_s,
                settings.health_cache_s,
                spec.judge,
            )
            for name, spec in self._all.items()
        }
        self._path = settings.data_dir / "state" / "services.json"
        self.records = self._load()

    # -- the registry -----------------------------------------------------------------------------
    def managed(self) -> dict[str, ServiceSpec]:
        """The services under management now: a WhisperX backend only once it is installed."""
        return {n: s for n, s in self._all.items() if s.backend is None or s.backend.container.installed}

    def spec(self, name: str) -> ServiceSpec | None:
        return self.managed().get(name)

    def known(self, name: str) -> bool:
        return name in self._all

    def record(self, name: str) -> ServiceRecord:
        return self.records.setdefault(name, ServiceRecord())

    # -- actions ----------------------------------------------------------------------------------
    async def start_action(self, name: str, action: Action, trigger: str = "api", reason: str | None = None) -> Job:
        """Start service.yml for one service (JobConflict while another job holds its lock)."""
        spec = self._all[name]
        job = await self.jobs.start(
            "service",
            "service",
            {
                "service_name": spec.container,
                "service_action": action,
                "service_hosts": spec.host_group,
                # service.yml acts only on containers it is told it manages: exactly this registry's.
                "service_allowed_names": sorted(s.container for s in self._all.values()),
            },
            lock=spec.lock,
            target=name,
            action=action,
            trigger=trigger,
            timeout_s=self.settings.action_timeout_s,
        )
        record = self.record(name)
        if trigger == "api":
            record.intent = "stopped" if action == "stop" else "running"
            record.gave_up_at = None
        record.last_action = {
            "action": action,
            "job_id": job.id,
            "state": job.record.state,
            "at": job.record.started_at,
        }
        record.last_action["trigger"] = trigger
        if trigger == "watchdog":
            record.restarts.append(
                {"at": job.record.started_at, "job_id": job.id, "reason": reason, "state": "running"}
            )
            del record.restarts[:-RESTARTS_KEPT]
        self.save()
        return job

    def on_job_finished(self, job: Job) -> None:
        record_ = job.record
        if record_.kind != "service" or not record_.target or not self.known(record_.target):
            return
        record = self.record(record_.target)
        if record.last_action and record.last_action.get("job_id") == record_.id:
            record.last_action["state"] = record_.state
            record.last_action["error"] = record_.error
        for restart in record.restarts:
            if restart.get("job_id") == record_.id:
                restart["state"] = record_.state
        result = record_.result.get("service_result")
        if isinstance(result, dict):
            record.state = str(result.get("state") or ("running" if result.get("running") else "stopped"))
            record.state_at = record_.finished_at
        self.save()

    async def act(self, name: str, action: Action) -> ServiceActionResult:
        """Run an action and wait for it (at most the action timeout): its result, or ServiceActionFailed."""
        job = await self.start_action(name, action)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(job.done.wait()), self.settings.action_timeout_s + 30)
        result = ServiceActionResult(
            name=name,
            action=action,
            job_id=job.id,
            state=job.record.state,
            rc=job.record.rc,
            result=job.record.result.get("service_result"),
            error=job.record.error,
        )
        if job.record.state != "successful":
            raise ServiceActionFailed(result)
        return result

    # -- views ------------------------------------------------------------------------------------
    async def views(self, watchdog: Watchdog) -> list[ServiceView]:
        """Every managed service with its health (probed concurrently, through the short cache)."""
        specs = self.managed()
        samples = await asyncio.gather(*(self.probes[name].check() for name in specs))
        return [
            ServiceView(
                name=name,
                title=spec.title,
                kind=spec.kind,
                container=spec.container,
                host_group=spec.host_group,
                url=spec.url,
                state=self._container_state(spec),
                state_at=self.record(name).state_at or (spec.backend.container.checked_at if spec.backend else None),
                healthy=sample.ok,
                health=HealthCheckInfo.of(sample),
                health_body=sample.body,
                intent=self.record(name).intent,
                last_action=self.record(name).last_action,  # type: ignore[arg-type]  # validated into LastAction
                deep_check=self.record(name).deep_check,  # type: ignore[arg-type]
                watchdog=watchdog.view(name),  # type: ignore[arg-type]
            )
            for (name, spec), sample in zip(specs.items(), samples, strict=True)
        ]

    def _container_state(self, spec: ServiceSpec) -> str:
        """The last action's container state; for WhisperX, what the last playbook that looked at it saw."""
        recorded = self.record(spec.name).state
        running = spec.backend.container.running if spec.backend else None
        if recorded != "unknown" or running is None:
            return recorded
        return "running" if running else "exited"

    # -- deep checks ------------------------------------------------------------------------------
    async def deep_check(self, name: str) -> dict[str, Any]:
        spec = self._all[name]
        started = time.monotonic()
        try:
            if spec.kind == "asr":
                result = await self._asr_check(spec, DEEP_CHECK_CLIP.read_bytes(), DEEP_CHECK_TEXT)
            else:
                result = await self._tts_check(spec)
        except httpx.HTTPError as exc:
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}".rstrip(": ")}
        result = {"service": name, "at": iso(now()), "latency_ms": round((time.monotonic() - started) * 1000), **result}
        self.record(name).deep_check = result
        self.save()
        return result

    async def _asr_check(self, spec: ServiceSpec, audio: bytes, expected: str) -> dict[str, Any]:
        response = await self.http.post(
            f"{spec.url}{TRANSCRIBE_PATH}",
            files={"file": ("deep_check.wav", audio, "audio/wav")},
            headers=spec.backend.auth_headers() if spec.backend else {},
            timeout=httpx.Timeout(300.0, connect=self.settings.health_timeout_s),
        )
        if response.status_code != 200:
            return {"ok": False, "error": f"HTTP {response.status_code}: {response.text[:300]}"}
        try:
            body = response.json()
        except ValueError:
            return {"ok": False, "error": "the answer is not JSON"}
        if not isinstance(body, dict) or not isinstance(body.get("segments"), list):
            return {"ok": False, "error": "the answer has no segments (not a diarized transcript)"}
        heard = str(body.get("text", ""))
        match = word_match(expected, heard)
        ok = match >= ASR_MATCH_MIN
        return {
            "ok": ok,
            "expected": expected,
            "heard": heard.strip(),
            "match": match,
            "speakers": len(body.get("speakers") or []),
            "backend": body.get("backend"),
            "error": None if ok else f"only {match:.0%} of the expected words were heard",
        }

    async def _tts_check(self, spec: ServiceSpec) -> dict[str, Any]:
        response = await self.http.post(
            f"{spec.url}{SYNTHESIZE_PATH}",
            data={
                "text": DEEP_CHECK_TEXT,
                "language": self.settings.magpie_language,
                "voice": self.settings.magpie_voice,
            },
            timeout=httpx.Timeout(120.0, connect=self.settings.health_timeout_s),
        )
        if response.status_code != 200:
            return {"ok": False, "error": f"HTTP {response.status_code}: {response.text[:300]}"}
        try:
            with wave.open(io.BytesIO(response.content)) as clip:
                duration = clip.getnframes() / float(clip.getframerate())
        except (wave.Error, EOFError, ZeroDivisionError):
            return {"ok": False, "error": "the answer is not a WAV file"}
        if duration < 0.5:
            return {"ok": False, "duration_s": round(duration, 2), "error": "the synthesized audio is too short"}
        result: dict[str, Any] = {"ok": True, "duration_s": round(duration, 2), "expected": DEEP_CHECK_TEXT}
        # Round trip: when an ASR answers, it must hear the sentence in the synthesized speech.
        asr = await self._available_asr()
        if asr is None:
            result["roundtrip"] = None
            return result
        heard = await self._asr_check(asr, response.content, DEEP_CHECK_TEXT)
        result["roundtrip"] = {"asr": asr.name, **heard}
        result["ok"] = bool(heard["ok"])
        result["error"] = None if heard["ok"] else f"{asr.name} did not hear the sentence: {heard.get('error')}"
        return result

    async def _available_asr(self) -> ServiceSpec | None:
        """The first ASR that can hear the round trip: a ready WhisperX backend, else Parakeet."""
        candidates = [s for s in self.managed().values() if s.backend] + [self._all["parakeet"]]
        samples = await asyncio.gather(*(self.probes[s.name].check() for s in candidates))
        for spec, sample in zip(candidates, samples, strict=True):
            if whisperx_ready(sample) if spec.backend else sample.ok:
                return spec
        return None

    # -- persistence ------------------------------------------------------------------------------
    def _load(self) -> dict[str, ServiceRecord]:
        try:
            raw = json.loads(self._path.read_text())
            return {name: ServiceRecord(**value) for name, value in raw.items()}
        except (OSError, ValueError, TypeError):
            return {}

    def save(self) -> None:
        write_private(self._path, json.dumps({n: asdict(r) for n, r in self.records.items()}, indent=1))
