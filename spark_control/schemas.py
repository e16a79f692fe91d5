"""Request and response models: what /docs shows is what the API does."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from spark_control.config import WHISPERX_MODELS

if TYPE_CHECKING:
    from spark_control.health import HealthSample

JobStateName = Literal["running", "successful", "failed", "canceled", "interrupted"]
JobKindName = Literal["install", "remove", "status", "service", "rollback"]
ModelName = Literal[WHISPERX_MODELS]  # type: ignore[valid-type]  # the one list, in config.py


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- jobs ---------------------------------------------------------------------------------------
class JobRef(BaseModel):
    id: str
    state: JobStateName
    phase: str | None = None


class JobStarted(BaseModel):
    job_id: str
    stream_url: str = Field(description="GET it with EventSource: phase, log and done events")


class JobConflictBody(BaseModel):
    detail: str
    job_id: str = Field(description="the job that holds the lock")


class JobView(BaseModel):
    job_id: str
    kind: JobKindName
    state: JobStateName
    phase: str | None
    hosts: dict[str, str] = Field(
        {}, description="an install's phase on each host it reached (one at a time), ready or failed once it ended"
    )
    started_at: str | None
    finished_at: str | None
    elapsed_s: float | None
    rc: int | None
    target: str | None = None
    action: str | None = None
    trigger: str = "api"
    error: str | None = None
    unreachable: list[str] = []
    result: dict[str, Any] = {}
    stream_url: str


# -- whisperx -----------------------------------------------------------------------------------
class InstallRequest(Strict):
    hf_token: SecretStr | None = Field(
        None,
        description="Hugging Face token for the gated pyannote models; stored 0600 for this job only. "
        "Default: HF_TOKEN / HF_TOKEN_FILE of the server",
    )
    model: ModelName | None = Field(
        None, description="override WHISPERX_MODEL (and WHISPERX_BUNDLE_MODEL) for this install"
    )

    @field_validator("hf_token")
    @classmethod
    def _plausible_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        token = value.get_secret_value()
        if not 8 <= len(token) <= 512 or any(c.isspace() for c in token):
            raise ValueError("hf_token must be 8 to 512 characters without spaces (a Hugging Face access token)")
        return value


class PhaseInfo(BaseModel):
    name: str
    title: str
    covers: str = Field(description="what the step does, in a few words")
    doing: str = Field(description="what the dashboard says while it runs")


class WhisperxOptions(BaseModel):
    """What an install can be asked for and how it proceeds (the dashboard's model list and stepper)."""

    models: list[str] = Field(description="the model names an install accepts (InstallRequest.model)")
    default_model: str = Field(description="the model an install without `model` serves (WHISPERX_MODEL)")
    phases: list[PhaseInfo] = Field(description="the install phases, in order (CONTRACT section 2)")
    outcome: PhaseInfo = Field(description="the step a successful install ends in; a failed one ends in `failed`")


class HealthCheckInfo(BaseModel):
    url: str
    ok: bool
    checked_at: str
    latency_ms: float
    age_s: float = Field(description="0 for a probe made for this request; more when served from the short cache")
    error: str | None

    @classmethod
    def of(cls, sample: HealthSample) -> HealthCheckInfo:
        return cls(
            url=sample.url,
            ok=sample.ok,
            checked_at=sample.checked_at.isoformat(),
            latency_ms=sample.latency_ms,
            age_s=round(sample.age_s(), 3),
            error=sample.error,
        )


class ContainerInfo(BaseModel):
    installed: bool | None
    running: bool | None
    image: str | None
    checked_at: str | None
    source: str = Field(description="which playbook run last saw the container; 'unknown' before any")
    job_id: str | None
    error: str | None
    age_s: float | None
    stale: bool
    refreshing: bool = Field(description="the status playbook is running in the background right now")


class BackendStatus(BaseModel):
    """One WhisperX backend (one GPU host of WHISPERX_HOSTS)."""

    name: str = Field(description="`whisperx` when there is one backend, else `whisperx@host` (its managed service)")
    host: str
    port: int
    url: str
    container_name: str
    installed: bool
    running: bool
    healthy: bool = Field(description="ready to diarize: the proxy may send it work")
    health: dict[str, Any] | None = Field(description="its /health (model, device, queue, version) when it answered")
    queue: dict[str, Any] | None = Field(description="running, waiting and limit from its last /health")
    in_flight: int = Field(description="requests spark-control is relaying to it now")
    host_reachable: bool | None
    answered_from: Literal["live", "cache"]
    checks: dict[str, HealthCheckInfo | ContainerInfo]


class WhisperxStatus(BaseModel):
    """The first backend's, or what holds for any backend (installed, running, healthy); each in `backends`."""

    installed: bool
    running: bool
    healthy: bool
    health: dict[str, Any] | None
    url: str
    job: JobRef | None
    host_reachable: bool | None = Field(description="false: neither /health nor SSH reach the host; null: unknown")
    answered_from: Literal["live", "cache"] = Field(
        description="live: /health answered now; cache: installed/running come from the last playbook run"
    )
    checks: dict[str, HealthCheckInfo | ContainerInfo]
    backends: list[BackendStatus] = Field(description="every backend, in WHISPERX_HOSTS order")


# -- services -----------------------------------------------------------------------------------
class LastAction(BaseModel):
    action: str
    job_id: str
    state: JobStateName
    at: str | None
    trigger: str = "api"
    error: str | None = None


class WatchdogRestart(BaseModel):
    at: str | None
    job_id: str
    reason: str | None
    state: JobStateName


class WatchdogView(BaseModel):
    enabled: bool = Field(description="watching: the watchdog is on and the operator did not stop the service")
    checks: int = Field(description="rounds that looked at this service since spark-control started")
    checked_at: str | None
    consecutive_failures: int
    threshold: int
    last_error: str | None
    restarts_last_hour: int
    max_restarts_per_hour: int
    next_restart_not_before: str | None
    start_grace_until: str | None = Field(description="just started: failed checks count once healthy or after this")
    gave_up_at: str | None
    restarts: list[WatchdogRestart] = Field(description="newest first")


class DeepCheckResult(BaseModel):
    model_config = ConfigDict(extra="allow")
    service: str
    ok: bool
    at: str
    latency_ms: float
    error: str | None = None


class ServiceView(BaseModel):
    name: str
    title: str
    kind: Literal["asr", "tts"]
    container: str
    host_group: str
    url: str
    state: str = Field(description="container state reported by the last action: running, exited, ... or unknown")
    state_at: str | None
    healthy: bool
    health: HealthCheckInfo
    health_body: dict[str, Any] | None
    intent: Literal["running", "stopped"]
    last_action: LastAction | None
    deep_check: DeepCheckResult | None
    watchdog: WatchdogView


class ServiceActionResult(BaseModel):
    name: str
    action: Literal["start", "stop", "restart"]
    job_id: str
    state: JobStateName
    rc: int | None
    result: dict[str, Any] | None
    error: str | None


# -- session ------------------------------------------------------------------------------------
class SessionRequest(Strict):
    token: SecretStr = Field(min_length=1, max_length=1024)


class SessionView(BaseModel):
    authenticated: bool
    reads_require_token: bool
