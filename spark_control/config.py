"""spark-control's settings: the only place that reads the environment.

The Ansible inventory, the runner's environment and every URL the app talks to are derived from this
one object (see `inventory.py`), so a test builds a `Settings(...)` and gets a fully isolated app.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, AliasGenerator, Field, SecretStr, computed_field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The models the role and the service accept by name (CONTRACT section 1 and 2).
WHISPERX_MODELS = ("tiny", "base", "small", "medium", "large-v3")
# An environment variable whose name holds one of these carries a secret: it never reaches the runner's
# environment (runner/jobs.py) nor WHISPERX_ENV, both written in clear text to the job's directory.
SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL")
MIN_TOKEN_LENGTH = 24  # SPARK_CONTROL_API_TOKEN: too long to guess, with POST /api/session throttled


# A value shaped like a credential: a known token prefix (Hugging Face, NVIDIA NGC, OpenAI, GitHub, Slack,
# AWS), or a long unbroken run of letters and digits such as a generated key.
_SECRET_VALUE = re.compile(
    r"(hf_|nvapi-|sk-|ghp_|gho_|github_pat_|xox[abp]-|AKIA)[A-Za-z0-9_\-]{8,}"
    r"|(?=.*[0-9])(?=.*[A-Za-z])[A-Za-z0-9+=_\-]{32,}"
)


def names_a_secret(name: str) -> bool:
    return any(word in name.upper() for word in SECRET_WORDS)


def looks_like_a_secret(value: str) -> bool:
    return bool(_SECRET_VALUE.fullmatch(value.strip()))


def _env(*names: str) -> Any:
    """The environment name of a field whose name differs from it (SPARK_CONTROL_PORT for `port`)."""
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Configuration from the environment (names in CONTRACT section 3, the rest prefixed SPARK_CONTROL_)."""

    # hide_input_in_errors: a refused value (WHISPERX_ENV with a token in it) is never echoed in the error.
    # The environment name of a field is its own name in capitals (WHISPERX_PORT for `whisperx_port`), so
    # errors name the variable to set; a field whose variable is named otherwise says so with _env(...).
    model_config = SettingsConfigDict(
        case_sensitive=False,
        extra="ignore",
        populate_by_name=True,
        hide_input_in_errors=True,
        alias_generator=AliasGenerator(validation_alias=str.upper),
    )

    # -- the hosts, as Ansible reaches them over SSH -----------------------------------------------
    spark2_host: str = Field(description="Spark 2: Parakeet, Magpie")
    spark2_user: str | None = Field(None, description="SSH login on Spark 2")
    spark2_ssh_port: int = Field(22, ge=1, le=65535)
    whisperx_host: str | None = Field(None, description="default SPARK2_HOST")
    whisperx_user: str | None = Field(None, description="default SPARK2_USER")
    whisperx_ssh_port: int | None = Field(None, ge=1, le=65535)
    whisperx_hosts: Annotated[list[tuple[str, int | None]], NoDecode] = Field(
        default_factory=list,
        description="several GPU hosts, one WhisperX backend each: comma-separated host[:port] (the port WhisperX "
        "answers on, default WHISPERX_PORT; SSH as WHISPERX_USER on WHISPERX_SSH_PORT); default WHISPERX_HOST",
    )
    ssh_key: Path | None = Field(
        None,
        validation_alias=_env("SPARK_CONTROL_SSH_KEY"),
        description="private key file for both hosts (its path goes into the inventory, never its contents)",
    )
    ssh_connect_timeout_s: int = Field(5, ge=1, le=120, validation_alias=_env("SPARK_CONTROL_SSH_CONNECT_TIMEOUT"))

    # -- the WhisperX service, as the role installs it -----------------------------------------------
    whisperx_container: str = Field("whisperx-asr")
    whisperx_port: int = Field(8002, ge=1, le=65535)
    whisperx_model: str = Field("medium")
    whisperx_model_bundle: Path | None = Field(
        None,
        description="offline model bundle on this machine; the role ships it and the service never downloads",
    )
    whisperx_bundle_model: str | None = Field(
        None,
        description="a model inside WHISPERX_MODEL_BUNDLE served instead of WHISPERX_MODEL (e.g. tiny.en in CI)",
    )
    whisperx_base_image: str | None = Field(None)
    whisperx_gpus: str | None = Field(None, description="role default: all")
    whisperx_memory: str | None = Field(None, description="role: 40g")
    # NoDecode: these arrive as a plain string (space-separated paths, a JSON object) that the
    # validators below parse, so a malformed value gets their message instead of a JSON decode error.
    whisperx_extra_ca_certs: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="CA certificate files/dirs trusted by the image build (space-separated)",
    )
    whisperx_env: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="extra container environment, a JSON object; no secrets (names with TOKEN, SECRET, PASSWORD, ...)",
    )
    whisperx_url_setting: str | None = Field(
        None, validation_alias=_env("WHISPERX_URL", "whisperx_url"), description="see whisperx_url"
    )
    hf_token: SecretStr | None = Field(None)
    hf_token_file: Path | None = Field(None)

    # -- the services already on Spark 2 (external systems) -------------------------------------------
    legacy_asr_url_setting: str | None = Field(
        None, validation_alias=_env("LEGACY_ASR_URL", "legacy_asr_url"), description="see legacy_asr_url"
    )
    legacy_asr_health_path: str = Field("/health")
    parakeet_container: str = Field("parakeet-asr")
    magpie_url_setting: str | None = Field(
        None, validation_alias=_env("MAGPIE_URL", "magpie_url"), description="see magpie_url"
    )
    magpie_health_path: str = Field("/v1/health/ready")
    magpie_container: str = Field("magpie-tts")
    magpie_voice: str = Field("Magpie-Multilingual.EN-US.Aria")
    magpie_language: str = Field("en-US")

    # -- spark-control itself ---------------------------------------------------------------------
    api_token: SecretStr | None = Field(
        None,
        validation_alias=_env("SPARK_CONTROL_API_TOKEN"),
        description="token for mutating endpoints; when unset one is generated into DATA_DIR/api_token",
    )
    api_token_file: Path | None = Field(
        None,
        validation_alias=_env("SPARK_CONTROL_API_TOKEN_FILE"),
        description="a file holding the API token (a mounted secret) instead of SPARK_CONTROL_API_TOKEN",
    )
    audio_token: SecretStr | None = Field(
        None,
        validation_alias=_env("SPARK_CONTROL_AUDIO_TOKEN"),
        description="when set, the audio endpoints need it (or the API token, or a dashboard session) as a "
        "Bearer token; unset, they are open to the LAN like the services behind them",
    )
    data_dir: Path = Field(
        Path.home() / ".local/share/spark-control",
        validation_alias=_env("SPARK_CONTROL_DATA_DIR"),
        description="jobs (runner artifacts), secrets, upload spool, the voice library (voices/)",
    )
    playbooks_dir: Path | None = Field(
        None,
        validation_alias=_env("SPARK_CONTROL_PLAYBOOKS_DIR"),
        description="run <dir>/<name>.yml instead of the collection's spark.inference.<name>",
    )
    host: str = Field("127.0.0.1", validation_alias=_env("SPARK_CONTROL_HOST"))
    port: int = Field(8080, ge=1, le=65535, validation_alias=_env("SPARK_CONTROL_PORT"))
    reads_require_token: bool = Field(
        False, validation_alias=_env("SPARK_CONTROL_READS_REQUIRE_TOKEN"), description="also protect GET endpoints"
    )
    session_max_age_s: int = Field(
        12 * 3600,
        ge=60,
        validation_alias=_env("SPARK_CONTROL_SESSION_MAX_AGE"),
        description="a dashboard sign-in (the session cookie) is refused after this many seconds",
    )

    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=_env("SPARK_CONTROL_ALLOWED_HOSTS"),
        description="Host names the API answers to besides this machine's own names and addresses "
        "(comma-separated; * for any, which gives up the DNS-rebinding protection)",
    )
    login_attempts_per_minute: int = Field(
        10, ge=1, validation_alias=_env("SPARK_CONTROL_LOGIN_ATTEMPTS"), description="wrong tokens per client"
    )

    voices_max: int = Field(
        32,
        ge=1,
        le=1000,
        validation_alias=_env("SPARK_CONTROL_VOICES_MAX"),
        description="voices the library holds at most (the most recently used 8 are sent with each transcription)",
    )
    job_retention_days: float = Field(
        30.0,
        gt=0,
        validation_alias=_env("SPARK_CONTROL_JOB_RETENTION_DAYS"),
        description="finished jobs (their logs and runner artifacts) are deleted this long after they ended",
    )

    install_timeout_s: int = Field(7200, ge=60, validation_alias=_env("SPARK_CONTROL_INSTALL_TIMEOUT"))
    action_timeout_s: int = Field(300, ge=10, validation_alias=_env("SPARK_CONTROL_ACTION_TIMEOUT"))
    health_timeout_s: float = Field(2.0, gt=0, le=30, validation_alias=_env("SPARK_CONTROL_HEALTH_TIMEOUT"))
    health_cache_s: float = Field(2.0, ge=0, le=60, validation_alias=_env("SPARK_CONTROL_HEALTH_CACHE"))
    container_state_max_age_s: float = Field(
        60.0, ge=0, validation_alias=_env("SPARK_CONTROL_CONTAINER_STATE_MAX_AGE"), description="refresh after this"
    )
    stream_buffer_events: int = Field(
        1000, ge=10, validation_alias=_env("SPARK_CONTROL_STREAM_BUFFER"), description="recent events kept in memory"
    )
    stream_ping_s: float = Field(10.0, gt=0, validation_alias=_env("SPARK_CONTROL_STREAM_PING"))
    stream_send_timeout_s: float = Field(
        30.0, gt=0, validation_alias=_env("SPARK_CONTROL_STREAM_SEND_TIMEOUT"), description="drop a stalled client"
    )

    proxy_read_timeout_s: float = Field(
        7200.0, gt=0, validation_alias=_env("SPARK_CONTROL_PROXY_READ_TIMEOUT"), description="90-minute files"
    )
    proxy_max_upload_mb: int = Field(2048, ge=1, validation_alias=_env("SPARK_CONTROL_PROXY_MAX_UPLOAD_MB"))
    proxy_max_concurrent: int = Field(
        8,
        ge=1,
        validation_alias=_env("SPARK_CONTROL_PROXY_MAX_CONCURRENT"),
        description="uploads spooled or forwarded at once (each can be 2 GB on disk); 429 beyond",
    )

    watchdog_enabled: bool = Field(True, validation_alias=_env("SPARK_CONTROL_WATCHDOG"))
    watchdog_interval_s: float = Field(30.0, gt=0, validation_alias=_env("SPARK_CONTROL_WATCHDOG_INTERVAL"))
    watchdog_failures: int = Field(3, ge=1, validation_alias=_env("SPARK_CONTROL_WATCHDOG_FAILURES"))
    watchdog_backoff_s: float = Field(60.0, ge=0, validation_alias=_env("SPARK_CONTROL_WATCHDOG_BACKOFF"))
    watchdog_backoff_max_s: float = Field(1800.0, ge=0, validation_alias=_env("SPARK_CONTROL_WATCHDOG_BACKOFF_MAX"))
    watchdog_start_grace_s: float = Field(
        300.0,
        ge=0,
        validation_alias=_env("SPARK_CONTROL_WATCHDOG_START_GRACE"),
        description="after a start or restart, failed checks count once the service answered healthy or after this",
    )
    watchdog_max_restarts: int = Field(
        5, ge=1, validation_alias=_env("SPARK_CONTROL_WATCHDOG_MAX_RESTARTS"), description="per hour, then give up"
    )

    @field_validator("whisperx_model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in WHISPERX_MODELS:
            raise ValueError(
                f"WHISPERX_MODEL must be one of {', '.join(WHISPERX_MODELS)} (got {value!r}); "
                "for an offline bundle model such as tiny.en set WHISPERX_MODEL_BUNDLE and WHISPERX_BUNDLE_MODEL"
            )
        return value

    @field_validator("api_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_TOKEN_LENGTH:
            raise ValueError(
                f"SPARK_CONTROL_API_TOKEN must have at least {MIN_TOKEN_LENGTH} characters (it guards every change "
                "to the lab): generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`, "
                "or leave it unset to have one generated into DATA_DIR/api_token"
            )
        return value

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        return [h.strip() for h in value.split(",") if h.strip()] if isinstance(value, str) else value

    @field_validator("whisperx_hosts", mode="before")
    @classmethod
    def _split_backends(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        return [parse_host_port(entry.strip()) for entry in value.split(",") if entry.strip()]

    @field_validator("whisperx_extra_ca_certs", mode="before")
    @classmethod
    def _split_paths(cls, value: Any) -> Any:
        return value.split() if isinstance(value, str) else value

    @field_validator("whisperx_env", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except ValueError as exc:
                raise ValueError(f"WHISPERX_ENV must be a JSON object: {exc}") from None
        if isinstance(value, dict):
            secret = sorted(
                str(name) for name, v in value.items() if names_a_secret(str(name)) or looks_like_a_secret(str(v))
            )
            if secret:
                raise ValueError(
                    f"WHISPERX_ENV must not carry secrets ({', '.join(secret)}): it is written in clear text to "
                    "every install job's files. Give the Hugging Face token as HF_TOKEN or HF_TOKEN_FILE "
                    "(or in the install request); it reaches the container as a file"
                )
        return value

    @model_validator(mode="after")
    def _token_from_file(self) -> Settings:
        if self.api_token is None and self.api_token_file is not None:
            try:
                token = self.api_token_file.read_text().strip()
            except OSError as exc:
                raise ValueError(
                    f"SPARK_CONTROL_API_TOKEN_FILE {self.api_token_file} cannot be read: {exc.strerror}"
                ) from None
            self.api_token = self._long_enough(SecretStr(token))
        return self

    @model_validator(mode="after")
    def _derive_defaults(self) -> Settings:
        self.whisperx_host = self.whisperx_host or self.spark2_host
        self.whisperx_user = self.whisperx_user or self.spark2_user
        self.whisperx_ssh_port = self.whisperx_ssh_port or self.spark2_ssh_port
        if not self.whisperx_hosts:
            self.whisperx_hosts = [(self.whisperx_host, None)]
        if len({(host.lower(), port) for host, port in self.whisperx_endpoints}) != len(self.whisperx_hosts):
            raise ValueError("WHISPERX_HOSTS names a backend twice (the same host and port)")
        elif len(self.whisperx_hosts) > 1 and self.whisperx_url_setting:
            raise ValueError(
                "WHISPERX_URL names one backend; with several WHISPERX_HOSTS each backend is http://host:port"
            )
        if self.whisperx_bundle_model:
            if not self.whisperx_model_bundle:
                raise ValueError("WHISPERX_BUNDLE_MODEL needs WHISPERX_MODEL_BUNDLE (the bundle that holds it)")
            available = bundle_models(self.whisperx_model_bundle)
            if available is not None and self.whisperx_bundle_model not in available:
                raise ValueError(
                    f"WHISPERX_BUNDLE_MODEL {self.whisperx_bundle_model!r} is not in {self.whisperx_model_bundle} "
                    f"(it has: {', '.join(sorted(available)) or 'no whisper models'})"
                )
        return self

    # -- derived values -------------------------------------------------------------------------
    @computed_field  # type: ignore[prop-decorator]
    @property
    def whisperx_url(self) -> str:
        """The first backend's: WHISPERX_URL, default http://host:port of the first of WHISPERX_HOSTS."""
        return _base_url(self.whisperx_url_setting, *self.whisperx_endpoints[0])

    @property
    def whisperx_endpoints(self) -> list[tuple[str, int]]:
        """Each WhisperX backend's host and port (WHISPERX_HOSTS, or the one WHISPERX_HOST), in the order given."""
        return [(host, port or self.whisperx_port) for host, port in self.whisperx_hosts]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def legacy_asr_url(self) -> str:
        """LEGACY_ASR_URL (Parakeet + Sortformer), default http://SPARK2_HOST:8000."""
        return _base_url(self.legacy_asr_url_setting, self.spark2_host, 8000)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def magpie_url(self) -> str:
        """MAGPIE_URL (the Magpie TTS NIM), default http://SPARK2_HOST:9000."""
        return _base_url(self.magpie_url_setting, self.spark2_host, 9000)

    @property
    def served_model(self) -> str:
        """The model name the role passes to the service (WHISPER_MODEL)."""
        return self.whisperx_bundle_model or self.whisperx_model

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def secrets_dir(self) -> Path:
        return self.data_dir / "secrets"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def voices_dir(self) -> Path:
        return self.data_dir / "voices"

    def playbook(self, name: str) -> str:
        """A playbook of the collection: a path when SPARK_CONTROL_PLAYBOOKS_DIR is set, else its FQCN."""
        if self.playbooks_dir:
            return str((self.playbooks_dir / f"{name}.yml").resolve())
        return f"spark.inference.{name}"

    def huggingface_token(self) -> str | None:
        """The Hugging Face token, HF_TOKEN_FILE first. Never logged, never passed to the runner."""
        if self.hf_token_file and self.hf_token_file.is_file():
            value = self.hf_token_file.read_text().strip()
            if value:
                return value
        return self.hf_token.get_secret_value() if self.hf_token else None

    def resolved_api_token(self) -> str:
        """SPARK_CONTROL_API_TOKEN, or one generated once into DATA_DIR/api_token (mode 0600)."""
        if self.api_token and self.api_token.get_secret_value():
            return self.api_token.get_secret_value()
        path = self.data_dir / "api_token"
        if not path.is_file():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            write_private(path, secrets.token_urlsafe(32))
        return path.read_text().strip()


def _base_url(given: str | None, host: str, port: int) -> str:
    """A service's base URL: the one given, or http://host:port (IPv6 hosts in brackets); no trailing slash."""
    if not given:
        given = f"http://[{host}]:{port}" if ":" in host and not host.startswith("[") else f"http://{host}:{port}"
    return given.rstrip("/")


def parse_host_port(entry: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]` or `[v6]:port` -> (host, port or None); ValueError naming the entry."""
    host, port = entry, ""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":") if rest.startswith(":") else ("x" if rest else "")
    elif entry.count(":") == 1:
        host, port = entry.split(":")
    if not host or any(c.isspace() or c in "/@,[]" for c in host) or (port and not port.isdigit()):
        raise ValueError(f"WHISPERX_HOSTS entry {entry!r} is not host[:port]")
    if port and not 1 <= int(port) <= 65535:
        raise ValueError(f"WHISPERX_HOSTS entry {entry!r}: the port must be 1-65535")
    return host, int(port) if port else None


def bundle_models(bundle: Path) -> set[str] | None:
    """Whisper model names in an offline bundle (whisper-tiny.en -> tiny.en); None when it cannot be read here."""
    try:
        models = json.loads((bundle / "manifest.json").read_text()).get("models", [])
    except (OSError, ValueError):  # missing, unreadable by this user, or not JSON: the role checks it there
        return None
    return {m["name"].removeprefix("whisper-") for m in models if str(m.get("kind", "")).startswith("whisper")}


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, never briefly world-readable."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w") as handle:
        handle.write(text)
    tmp.replace(path)


@lru_cache
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg]  # required fields come from the environment
