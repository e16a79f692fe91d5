"""Shared fixtures: where the offline model bundle and the synthesised audio live.

`make test` builds both before pytest runs and passes their paths in the environment; a test that
needs one and finds it missing fails with the command that makes it (it never skips).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "spark-inference"


def _dir_from_env(var: str, default: Path, marker: str, make_target: str) -> Path:
    path = Path(os.environ.get(var, default))
    if not (path / marker).is_file():
        pytest.fail(f"{path / marker} is missing: run `make {make_target}` (or set {var})")
    return path


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def model_bundle() -> Path:
    """The offline model bundle: whisper-tiny.en, whisper-base, pyannote-segmentation-3.0, campplus."""
    return _dir_from_env("SPARK_MODELS_DIR", CACHE / "models", "manifest.json", "models")


@pytest.fixture(scope="session")
def audio() -> Path:
    """Synthesised audio: sentence.* (+ sentence.txt), silence.wav, dialogue.{wav,rttm,json}."""
    return _dir_from_env("SPARK_FIXTURES_DIR", CACHE / "fixtures", "manifest.json", "fixtures")


@pytest.fixture(scope="session")
def dialogue(audio: Path) -> dict:
    """The scripted two-speaker dialogue's reference turns (speaker, start, end, text)."""
    return json.loads((audio / "dialogue.json").read_text())
