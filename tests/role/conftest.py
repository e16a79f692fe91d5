"""Fixtures for the role's tests: the collection on the Ansible path, a fake token, a GPU-host stand-in."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.role.helpers import (
    COLLECTIONS,
    FAKE_TOKEN,
    GPU_HOST_IMAGE,
    REPO,
    STATE,
    GpuHost,
    _remove_test_containers,
)


@pytest.fixture(scope="session")
def collection() -> Path:
    link = COLLECTIONS / "ansible_collections/spark/inference"
    if not (link / "galaxy.yml").is_file():
        pytest.fail(f"{link} is missing: run `make collection`")
    return link


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "hf_token"
    path.write_text(FAKE_TOKEN + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="session")
def gpu_host(collection: Path):
    """A GPU-host stand-in reached over SSH; CPU only, like CI."""
    if subprocess.run(["docker", "image", "inspect", GPU_HOST_IMAGE], capture_output=True, check=False).returncode:
        pytest.fail(f"{GPU_HOST_IMAGE} is missing: run `make gpu-host-image`")
    name = "mol-gpu-host-tests"
    subprocess.run([str(REPO / "scripts/gpu-host.sh"), "up", name, "2224"], check=True, capture_output=True)
    env = dict(line.split("=", 1) for line in (STATE / name / "host.env").read_text().splitlines() if "=" in line)
    try:
        yield GpuHost(name=name, port=int(env["SSH_PORT"]), home=Path(env["HOME_DIR"]), key=Path(env["SSH_KEY"]))
    finally:
        _remove_test_containers()
        subprocess.run([str(REPO / "scripts/gpu-host.sh"), "down", name], capture_output=True, check=False)


@pytest.fixture
def clean_host(gpu_host: GpuHost):
    """The GPU host with no test container and nothing the role ships left in the home directory."""
    _remove_test_containers()
    subprocess.run(
        ["docker", "exec", gpu_host.name, "rm", "-rf"]
        + [str(gpu_host.home / p) for p in ("whisperx-build", "whisperx-model-bundle", ".config/whisperx")],
        check=True,
    )
    yield gpu_host
    _remove_test_containers()
