"""Fixtures for the role's tests: the collection on the Ansible path, a fake token, a GPU-host stand-in."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.role.helpers import (
    COLLECTIONS,
    FAKE_TOKEN,
    GPU_HOST_IMAGE,
    MODELS_DIR,
    REPO,
    SERVICE_IMAGE,
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
    """A GPU-host stand-in reached over SSH; CPU only, like CI. One per session: the role ships the build
    context and seeds the model bundle into its home once, and every later install finds them there."""
    missing = [
        hint
        for image, hint in ((GPU_HOST_IMAGE, "make gpu-host-image"), (SERVICE_IMAGE, "make image"))
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode
    ]
    if not (MODELS_DIR / "manifest.json").is_file():
        missing.append("make models")
    if missing:
        # Without `make image` the role would build the service image from scratch (minutes, GBs).
        pytest.fail(f"run {', '.join(missing)} first (the role tests install the real service)")
    name = "mol-gpu-host-tests"
    subprocess.run([str(REPO / "scripts/gpu-host.sh"), "up", name, "2224"], check=True, capture_output=True)
    env = dict(line.split("=", 1) for line in (STATE / name / "host.env").read_text().splitlines() if "=" in line)
    try:
        yield GpuHost(name=name, port=int(env["SSH_PORT"]), home=Path(env["HOME_DIR"]), key=Path(env["SSH_KEY"]))
    finally:
        _remove_test_containers()
        subprocess.run([str(REPO / "scripts/gpu-host.sh"), "down", name], capture_output=True, check=False)


@pytest.fixture
def password_sudo(gpu_host: GpuHost):
    """The GPU host as many real ones are: sudo asks the SSH user for a password (a later sudoers rule wins)."""
    rule = "/etc/sudoers.d/zz-password"
    gpu_host.docker("exec", gpu_host.name, "sh", "-c", f"echo 'spark ALL=(ALL) PASSWD: ALL' > {rule}; chmod 440 {rule}")
    try:
        yield gpu_host
    finally:
        gpu_host.docker("exec", gpu_host.name, "rm", "-f", rule)


@pytest.fixture
def clean_host(gpu_host: GpuHost):
    """The GPU host with no test container. What earlier installs shipped (build context, model bundle)
    stays, as it would on a real host."""
    _remove_test_containers()
    yield gpu_host
    _remove_test_containers()
