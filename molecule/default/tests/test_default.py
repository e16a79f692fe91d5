"""What an operator checks on the GPU host after installing WhisperX (molecule scenario `default`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

NAME = "mol-whisperx-asr"
PORT = 18102
MEMORY = 4 * 2**30
TOKEN_FILE = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "hf_token"


@pytest.fixture(scope="module")
def inspect(host) -> dict:
    return json.loads(host.check_output(f"docker inspect {NAME}"))[0]


def test_container_runs_and_restarts_unless_stopped(inspect):
    assert inspect["State"]["Running"] is True
    assert inspect["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"


def test_memory_cap_is_in_the_container_cgroup(host):
    v1 = "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    limit = host.check_output(f"docker exec {NAME} sh -c 'cat {v1} 2>/dev/null || cat /sys/fs/cgroup/memory.max'")
    assert int(limit) == MEMORY


def test_swap_is_capped_at_the_memory_limit(host, inspect):
    assert inspect["HostConfig"]["Memory"] == MEMORY
    assert inspect["HostConfig"]["MemorySwap"] == MEMORY
    memsw = host.run(f"docker exec {NAME} cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
    if memsw.rc == 0:  # the kernel accounts swap: the cgroup itself holds the cap
        assert int(memsw.stdout) == MEMORY


def test_port_answers_health_with_both_models_loaded(host):
    health = json.loads(host.check_output(f"curl -sf http://127.0.0.1:{PORT}/health"))
    assert health["status"] == "ready"
    assert health["whisper_loaded"] is True
    assert health["diarizer_loaded"] is True
    assert health["model"] == "tiny.en"
    assert health["device"] == "cpu"
    assert health["error"] is None


def test_token_reaches_the_container_as_a_file_not_in_its_environment(host, inspect):
    token = TOKEN_FILE.read_text().strip()
    assert token
    assert token not in host.check_output(f"docker inspect {NAME}")
    env = dict(item.split("=", 1) for item in inspect["Config"]["Env"])
    assert "HF_TOKEN" not in env
    assert env["HF_TOKEN_FILE"] == "/run/secrets/hf_token"  # noqa: S105 - a path, not a secret
    mounted = host.check_output(f"docker exec {NAME} cat /run/secrets/hf_token")
    assert mounted.strip() == token


def test_token_file_on_the_host_is_private(host):
    token_file = host.file(f"{host.user().home}/.config/whisperx/{NAME}.hf_token")
    assert token_file.exists
    assert token_file.mode == 0o600
    assert token_file.user == host.user().name
    assert host.file(f"{host.user().home}/.config/whisperx").mode == 0o700


def test_models_come_from_the_read_only_bundle_and_the_cache_volume(inspect):
    mounts = {m["Destination"]: m for m in inspect["Mounts"]}
    assert mounts["/models"]["RW"] is False
    assert mounts["/root/.cache/huggingface"]["Type"] == "volume"
    assert mounts["/root/.cache/huggingface"]["Name"] == "mol-whisperx-models"


def test_image_is_tagged_with_its_build_context_hash(inspect):
    image = inspect["Config"]["Image"]
    assert image.startswith("mol-whisperx-asr:ctx-")  # molecule group_vars: whisperx_image_name
    assert inspect["Config"]["Labels"]["org.spark-inference.context-sha"].startswith(image.rsplit("-", 1)[1])


def test_build_context_is_owned_by_root_like_a_docker_build(host):
    build = host.file(f"{host.user().home}/whisperx-build")
    assert build.user == "root"
    assert host.file(f"{host.user().home}/whisperx-build/Dockerfile").user == "root"
