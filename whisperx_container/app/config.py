"""The service's settings: the only place that reads the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    whisper_model: str = Field("medium", description="tiny, base, small, medium, large-v3, ... or a local directory")
    hf_token: SecretStr | None = Field(None, description="Hugging Face token for gated pyannote models")
    hf_token_file: Path | None = Field(None, description="file holding the token (preferred over HF_TOKEN)")
    whisperx_model_bundle: Path | None = Field(None, description="offline model bundle directory; no network")
    whisperx_diarization_model: str = Field(
        "pyannote/speaker-diarization-community-1", description="pyannote pipeline on the hub (online mode)"
    )
    whisperx_device: Literal["auto", "cuda", "cpu"] = "auto"
    whisperx_compute_type: str = Field("auto", description="CTranslate2 compute type; auto: float16 GPU, int8 CPU")
    whisperx_allow_cpu_whisper: bool = Field(
        False, description="GPUs there but none for CTranslate2: Whisper on the CPU instead of a failed load"
    )
    whisperx_batch_size: int = Field(8, ge=1, le=128)
    whisperx_queue_limit: int = Field(4, ge=1, le=1000, description="requests waiting behind the running one")
    whisperx_api_key_file: Path | None = Field(
        None, description="a file holding the API key; when set, every endpoint but /health needs it (Bearer)"
    )
    whisperx_max_upload_mb: int = Field(1024, ge=1)
    whisperx_max_audio_s: float = Field(
        4 * 3600.0, gt=0, description="longest recording taken, from its declared duration; decoding is capped to it"
    )
    whisperx_port: int = Field(8002, ge=1, le=65535)
    whisperx_host: str = "0.0.0.0"  # noqa: S104 - a container listens on all interfaces
    whisperx_jobs_dir: Path = Field(Path("/jobs"), description="the job store (the whisperx-jobs volume)")
    whisperx_jobs_retention_h: float = Field(168.0, gt=0, description="finished jobs are deleted this long after")
    whisperx_jobs_max_gb: float = Field(50.0, gt=0, description="cap on the job store; the oldest finished go first")
    whisperx_max_speakers: int = Field(8, ge=1, le=64, description="cap on speakers per recording")
    whisperx_known_speaker_threshold: float = Field(  # docs/benchmarks/service.md, "Known speakers"
        0.85, ge=-1.0, le=1.0, description="cosine similarity a speaker's voice needs to a known speaker's reference"
    )
    whisperx_window_s: float = Field(600.0, ge=60.0, description="diarization window; bounds memory on long audio")
    whisperx_idle_unload_s: float = Field(
        0.0, ge=0.0, description="release the models after this many seconds without a request; 0: never"
    )
    whisperx_threads: int = Field(0, ge=0, description="CPU threads for inference; 0: all cores")
    nltk_data: Path | None = Field(None, description="where whisperX's alignment keeps NLTK's punkt_tab data")

    @field_validator(
        "hf_token", "hf_token_file", "whisperx_model_bundle", "nltk_data", "whisperx_api_key_file", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value):
        return None if isinstance(value, str) and not value.strip() else value

    def token(self) -> str | None:
        """The Hugging Face token, from HF_TOKEN_FILE first. Never logged."""
        if self.hf_token_file and self.hf_token_file.is_file():
            value = self.hf_token_file.read_text().strip()
            if value:
                return value
        return self.hf_token.get_secret_value() if self.hf_token else None


@lru_cache
def get_settings() -> Settings:
    return Settings()
