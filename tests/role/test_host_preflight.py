"""On a real host, preflight failures name what to fix and leave the host as it was."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.role.helpers import GPU_HOST_IMAGE, TEST_CONTAINER, GpuHost, run_playbook, service_vars, write_inventory

pytestmark = pytest.mark.integration


def host_state(host: GpuHost) -> list[str]:
    """What an installation would change on the host: the files under the SSH user's home (path, size,
    mtime; its home is the same directory here) and the test containers."""
    files = []
    for path in host.home.rglob("*"):
        relative = path.relative_to(host.home)
        if len(relative.parts) <= 3 and relative.parts[0] != ".ansible":
            files.append(f"{relative} {path.lstat().st_size} {path.lstat().st_mtime_ns}")
    containers = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"name=^{TEST_CONTAINER}", "--format", "{{.Names}} {{.ID}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return sorted(files) + containers


def install(host: GpuHost, tmp_path: Path, token_file: Path, **overrides):
    inventory = write_inventory(tmp_path / "inventory.yml", host.ssh_vars, service_vars(token_file, **overrides))
    return run_playbook("whisperx.yml", inventory)


def test_a_missing_docker_engine_is_named_with_the_fix(clean_host: GpuHost, tmp_path: Path, token_file: Path):
    before = host_state(clean_host)
    run = install(clean_host, tmp_path, token_file, whisperx_docker_host="unix:///run/no-docker-here.sock")
    assert run.rc != 0
    assert "The Docker engine on gpu does not answer at unix:///run/no-docker-here.sock" in run.failure
    assert "install Docker, start it (sudo systemctl enable --now docker) and add spark to the docker group" in (
        run.failure
    )
    assert host_state(clean_host) == before


def test_gpus_without_the_nvidia_runtime_are_refused_with_the_fix(
    clean_host: GpuHost, tmp_path: Path, token_file: Path
):
    before = host_state(clean_host)
    run = install(clean_host, tmp_path, token_file, whisperx_gpus="all")
    assert run.rc != 0
    assert 'whisperx_gpus is "all" but the Docker engine on gpu has no NVIDIA runtime' in run.failure
    assert "nvidia-ctk runtime configure --runtime=docker" in run.failure
    assert 'or set whisperx_gpus to "" to run on the CPU' in run.failure
    assert host_state(clean_host) == before


def test_too_little_disk_for_a_build_is_refused(clean_host: GpuHost, tmp_path: Path, token_file: Path):
    before = host_state(clean_host)
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
    assert host_state(clean_host) == before


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


def test_a_build_context_owner_that_needs_sudo_is_refused_where_sudo_asks_for_a_password(
    clean_host: GpuHost, password_sudo: GpuHost, tmp_path: Path, token_file: Path
):
    before = host_state(clean_host)
    run = install(clean_host, tmp_path, token_file, whisperx_build_context_owner="root")
    assert run.rc != 0
    assert (
        "whisperx_build_context_owner is root, which needs sudo for spark on gpu, and sudo failed (Task failed:"
        " Missing sudo password): allow it passwordless sudo, or leave whisperx_build_context_owner empty to ship"
        " as spark."
    ) in run.failure
    assert host_state(clean_host) == before


def test_a_build_directory_an_earlier_install_shipped_as_root_is_named(
    clean_host: GpuHost, tmp_path: Path, token_file: Path
):
    build_dir = clean_host.home / "whisperx-build-as-root"
    build_dir.mkdir(exist_ok=True)
    os.chown(build_dir, 0, 0)  # this machine's root is the host's root: the home is the same directory
    before = host_state(clean_host)
    run = install(
        clean_host, tmp_path, token_file, whisperx_build_context_owner="", whisperx_build_dir="~/whisperx-build-as-root"
    )
    assert run.rc != 0
    assert (
        f"{build_dir} on gpu belongs to root (an earlier install shipped it as root), so spark cannot replace its"
        f" files without sudo: remove it (sudo rm -rf {build_dir}) or set whisperx_build_context_owner to root."
    ) in run.failure
    assert host_state(clean_host) == before
