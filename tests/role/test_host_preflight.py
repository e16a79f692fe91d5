"""On a real host, preflight failures name what to fix and leave the host as it was."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.role.helpers import GPU_HOST_IMAGE, TEST_CONTAINER, GpuHost, run_playbook, stub_vars, write_inventory

pytestmark = pytest.mark.integration


def role_traces(host: GpuHost) -> list[str]:
    """What an installation leaves on the host: shipped files and test containers."""
    listing = subprocess.run(
        ["docker", "exec", host.name, "ls", "-A", str(host.home)], capture_output=True, text=True, check=True
    ).stdout.split()
    containers = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"name=^{TEST_CONTAINER}$", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return sorted(set(listing) - {".ssh", ".ansible"}) + containers


def install(host: GpuHost, tmp_path: Path, token_file: Path, **overrides):
    inventory = write_inventory(tmp_path / "inventory.yml", host.ssh_vars, stub_vars(token_file, **overrides))
    return run_playbook("whisperx.yml", inventory)


def test_a_missing_docker_engine_is_named_with_the_fix(clean_host: GpuHost, tmp_path: Path, token_file: Path):
    run = install(clean_host, tmp_path, token_file, whisperx_docker_host="unix:///run/no-docker-here.sock")
    assert run.rc != 0
    assert "The Docker engine on gpu does not answer at unix:///run/no-docker-here.sock" in run.failure
    assert "install Docker, start it (sudo systemctl enable --now docker) and add spark to the docker group" in (
        run.failure
    )
    assert role_traces(clean_host) == []


def test_gpus_without_the_nvidia_runtime_are_refused_with_the_fix(
    clean_host: GpuHost, tmp_path: Path, token_file: Path
):
    run = install(clean_host, tmp_path, token_file, whisperx_gpus="all")
    assert run.rc != 0
    assert 'whisperx_gpus is "all" but the Docker engine on gpu has no NVIDIA runtime' in run.failure
    assert "nvidia-ctk runtime configure --runtime=docker" in run.failure
    assert 'or set whisperx_gpus to "" to run on the CPU' in run.failure
    assert role_traces(clean_host) == []


def test_too_little_disk_for_a_build_is_refused(clean_host: GpuHost, tmp_path: Path, token_file: Path):
    run = install(
        clean_host,
        tmp_path,
        token_file,
        whisperx_image_name="spark-inference/whisperx-never-built",
        whisperx_build_min_free_space="900t",
    )
    assert run.rc != 0
    assert "GiB are free under" in run.failure
    assert "the image build needs 900t" in run.failure
    assert role_traces(clean_host) == []


def test_a_container_of_that_name_the_role_did_not_create_is_left_alone(
    clean_host: GpuHost, tmp_path: Path, token_file: Path
):
    subprocess.run(
        ["docker", "run", "-d", "--name", TEST_CONTAINER, "--entrypoint", "sleep", GPU_HOST_IMAGE, "infinity"],
        check=True,
        capture_output=True,
    )
    before = clean_host.docker("inspect", "--format", "{{.Id}}", TEST_CONTAINER).stdout
    run = install(clean_host, tmp_path, token_file)
    assert run.rc != 0
    assert f"A container named {TEST_CONTAINER} already runs on gpu and was not created by this role" in run.failure
    assert clean_host.docker("inspect", "--format", "{{.Id}}", TEST_CONTAINER).stdout == before
