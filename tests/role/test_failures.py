"""The failures the health module names, produced by the real service (CPU image, tiny.en, offline bundle).

Each is a first install under a name of its own, run through ansible-runner as spark-control runs it, on a
GPU host where a stand-in for the legacy Parakeet service runs: the play fails saying why, the failed
container is removed, and nothing else on the host is touched. The third, a model that fails to load, is
produced as a failed upgrade in test_runner.py, where it is rolled back to the running installation.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.role.helpers import (
    FAKE_TOKEN,
    GPU_HOST_IMAGE,
    TEST_CONTAINER,
    GpuHost,
    RunnerRun,
    container_fingerprint,
    run_runner,
    service_vars,
    write_inventory,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def legacy_service(gpu_host: GpuHost):
    """A container the role must never touch, like Parakeet on a real Spark."""
    name = f"{TEST_CONTAINER}-parakeet"
    gpu_host.docker("rm", "-f", name, check=False)
    gpu_host.docker(
        "run", "-d", "--name", name, "--restart", "unless-stopped", "--entrypoint", "sleep", GPU_HOST_IMAGE, "infinity"
    )
    yield name
    gpu_host.docker("rm", "-f", name, check=False)


@pytest.fixture
def neighbours(gpu_host: GpuHost, legacy_service: str):
    """The legacy stand-in and the GPU host itself, as they were before the test."""
    names = (legacy_service, gpu_host.name)
    before = container_fingerprint(*names)
    assert all(before.values()), before
    return names, before


def install(gpu_host: GpuHost, tmp_path: Path, name: str, port: int, **overrides) -> RunnerRun:
    token_file = tmp_path / "hf_token"
    token_file.write_text(FAKE_TOKEN + "\n")
    token_file.chmod(0o600)
    inventory = write_inventory(
        tmp_path / "inventory.yml",
        gpu_host.ssh_vars,
        service_vars(token_file, name=f"{TEST_CONTAINER}-{name}", port=port, **overrides),
    )
    return run_runner("whisperx.yml", inventory)


def assert_removed_and_nothing_else_touched(gpu_host: GpuHost, run: RunnerRun, name: str, neighbours) -> None:
    assert "was removed, as nothing ran before" in run.failure
    assert gpu_host.docker("inspect", f"{TEST_CONTAINER}-{name}", check=False).returncode != 0
    # The failed run itself says so to ansible-runner (set_stats), with no second run.
    assert run.artifact_data["whisperx_status"] == {
        "installed": False,
        "running": False,
        "healthy": False,
        "image": None,
        "health": None,
    }
    names, before = neighbours
    assert container_fingerprint(*names) == before


def test_a_memory_cap_too_small_for_the_models_is_named(gpu_host: GpuHost, tmp_path: Path, neighbours):
    # torch alone outgrows 256 MiB. The kernel either kills the service within seconds of its start, or (cgroup
    # v1, file-backed pages reclaimed and re-read) leaves it alive at its cap without answering: both are named
    # as the cap being too small, neither waits for the 300 s health timeout.
    run = install(gpu_host, tmp_path, "oom", 18105, whisperx_memory="256m")
    assert run.rc != 0
    killed = f"Container {TEST_CONTAINER}-oom was killed for exceeding its memory cap of 256 MiB (OOM kill"
    starved = f"Container {TEST_CONTAINER}-oom is starved at its memory cap of 256 MiB: "
    assert killed in run.failure or starved in run.failure, run.failure
    assert "Timed out" not in run.failure
    assert "raise whisperx_memory or choose a smaller whisperx_model" in run.failure
    assert_removed_and_nothing_else_touched(gpu_host, run, "oom", neighbours)


def test_a_service_that_exits_at_start_is_named_with_its_last_log_lines(gpu_host: GpuHost, tmp_path: Path, neighbours):
    # An invalid service setting: the service refuses to start and exits, again and again (unless-stopped).
    run = install(gpu_host, tmp_path, "crash", 18106, whisperx_env={"WHISPERX_DEVICE": "tpu"})
    assert run.rc != 0
    assert "exited with code 1" in run.failure
    assert f"Container {TEST_CONTAINER}-crash " in run.failure
    assert "before its models loaded. Last log lines:" in run.failure
    assert "whisperx_device" in run.failure and "Input should be 'auto', 'cuda' or 'cpu'" in run.failure
    assert_removed_and_nothing_else_touched(gpu_host, run, "crash", neighbours)
