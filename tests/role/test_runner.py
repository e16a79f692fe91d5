"""The playbooks as spark-control runs them, through ansible-runner: results, idempotence and the token.

Installs the real service (CPU image, tiny.en and the diarizer from the offline bundle) on a GPU-host
stand-in once for the whole module; the tests run in order against that installation, removal last.
"""

from __future__ import annotations

import json

import pytest

from tests.role.helpers import (
    FAKE_TOKEN,
    TEST_CONTAINER,
    TEST_PORT,
    GpuHost,
    run_runner,
    service_vars,
    write_inventory,
)

pytestmark = pytest.mark.integration

INSTALL_PHASES = ["preflight", "ship", "build", "start", "load"]
NOT_INSTALLED = {"installed": False, "running": False, "healthy": False, "image": None, "health": None}


def everything_written(data_dir) -> str:
    return "\n".join(p.read_text(errors="replace") for p in data_dir.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def inventory(gpu_host: GpuHost, tmp_path_factory):
    directory = tmp_path_factory.mktemp("runner")
    token_file = directory / "hf_token"
    token_file.write_text(FAKE_TOKEN + "\n")
    token_file.chmod(0o600)
    return write_inventory(directory / "inventory.yml", gpu_host.ssh_vars, service_vars(token_file))


@pytest.fixture(scope="module")
def installed(inventory):
    """One install through ansible-runner, with the token passed only as a file path."""
    return run_runner("whisperx.yml", inventory)


def test_install_succeeds_and_reports_its_phases(installed):
    assert installed.rc == 0, installed.stdout
    paths = [e["event_data"].get("task_path", "") for e in installed.events]
    phases = [p.rsplit("/", 1)[-1].split(".yml")[0] for p in paths if "/roles/whisperx/tasks/" in p]
    assert [p for p in dict.fromkeys(phases) if p in INSTALL_PHASES] == INSTALL_PHASES


def test_install_reports_the_container_it_leaves_and_the_reachable_host(installed):
    status = installed.artifact_data["whisperx_status"]
    assert status["installed"] is True and status["running"] is True and status["healthy"] is True
    assert status["image"].startswith("spark-inference/whisperx-asr:ctx-")
    assert status["health"]["whisper_loaded"] is True and status["health"]["diarizer_loaded"] is True
    assert installed.artifact_data["whisperx_preflight"] == {"reachable": True, "host": "gpu", "reason": None}


def test_the_token_appears_in_no_runner_event_artifact_or_container_environment(installed, gpu_host: GpuHost):
    assert FAKE_TOKEN not in everything_written(installed.data_dir)
    assert FAKE_TOKEN not in json.dumps(installed.events)
    assert FAKE_TOKEN not in gpu_host.docker("inspect", TEST_CONTAINER).stdout
    mounted = gpu_host.docker("exec", TEST_CONTAINER, "cat", "/run/secrets/hf_token").stdout
    assert mounted.strip() == FAKE_TOKEN


def test_a_second_run_changes_nothing(installed, inventory):
    run = run_runner("whisperx.yml", inventory)
    assert run.rc == 0
    assert run.stats["changed"] == {}, run.stats["changed"]


def test_status_is_machine_readable_through_set_stats(installed, inventory):
    run = run_runner("whisperx_status.yml", inventory)
    assert run.rc == 0
    status = run.artifact_data["whisperx_status"]
    assert set(status) == {"installed", "running", "healthy", "image", "health"}
    assert status["installed"] is True and status["running"] is True and status["healthy"] is True
    assert status["image"].startswith("spark-inference/whisperx-asr:ctx-")
    assert status["health"]["status"] == "ready" and status["health"]["diarizer_loaded"] is True
    assert status["health"]["model"] == "tiny.en" and status["health"]["device"] == "cpu"


def test_check_mode_with_diff_on_the_installed_host_changes_nothing(installed, inventory):
    run = run_runner("whisperx.yml", inventory, cmdline="--check --diff")
    assert run.rc == 0
    assert run.stats["changed"] == {}, run.stats["changed"]
    assert FAKE_TOKEN not in json.dumps(run.events)


def service(inventory, action: str, name: str = TEST_CONTAINER):
    extravars = {
        "service_hosts": "whisperx",
        "service_name": name,
        "service_action": action,
        "service_allowed_names": [name],
    }
    return run_runner("service.yml", inventory, extravars)


def test_service_playbook_stops_and_restarts_a_managed_container_and_reports_it(installed, inventory):
    run = service(inventory, "stop")
    assert run.rc == 0
    assert run.artifact_data["service_result"] == {
        "name": TEST_CONTAINER,
        "action": "stop",
        "state": "exited",
        "running": False,
    }
    run = service(inventory, "status")
    assert run.rc == 0 and run.stats["changed"] == {}
    assert run.artifact_data["service_result"] == {
        "name": TEST_CONTAINER,
        "action": "status",
        "state": "exited",
        "running": False,
    }
    run = service(inventory, "restart")
    assert run.rc == 0
    assert run.artifact_data["service_result"]["running"] is True
    assert run.artifact_data["service_preflight"] == {"reachable": True, "host": "gpu", "reason": None}


def test_service_status_reports_a_running_container_and_changes_nothing(installed, inventory, gpu_host: GpuHost):
    started = gpu_host.docker("inspect", "--format", "{{.State.StartedAt}}", TEST_CONTAINER).stdout
    run = service(inventory, "status")
    assert run.rc == 0
    assert run.stats["changed"] == {}, run.stats["changed"]
    assert run.artifact_data["service_result"] == {
        "name": TEST_CONTAINER,
        "action": "status",
        "state": "running",
        "running": True,
    }
    assert gpu_host.docker("inspect", "--format", "{{.State.StartedAt}}", TEST_CONTAINER).stdout == started


def test_service_status_of_a_container_that_does_not_exist_is_absent(installed, inventory):
    run = service(inventory, "status", name=f"{TEST_CONTAINER}-never-installed")
    assert run.rc == 0
    assert run.stats["changed"] == {}
    assert run.artifact_data["service_result"] == {
        "name": f"{TEST_CONTAINER}-never-installed",
        "action": "status",
        "state": "absent",
        "running": False,
    }


def test_a_failed_upgrade_reports_the_container_it_rolled_back_to(installed, inventory, gpu_host: GpuHost):
    before = gpu_host.docker("inspect", "--format", "{{.Image}} {{.Config.Image}}", TEST_CONTAINER).stdout
    # A model the offline bundle does not hold: the new container reports the load error on /health.
    run = run_runner("whisperx.yml", inventory, {"whisperx_model": "small"})
    assert run.rc != 0
    assert "so the previous one (spark-inference/whisperx-asr:ctx-" in run.failure
    assert (
        "was put back and is healthy again: The WhisperX models failed to load: Whisper model 'small' is not in"
        " the offline bundle /models (it has: base, tiny.en)"
    ) in run.failure
    # The caller learns what runs now from the failed run itself, with no second run.
    status = run.artifact_data["whisperx_status"]
    assert status["installed"] is True and status["running"] is True and status["healthy"] is True
    assert status["image"] == before.split()[1]
    assert status["health"]["model"] == "tiny.en" and status["health"]["error"] is None
    assert gpu_host.docker("inspect", "--format", "{{.Image}} {{.Config.Image}}", TEST_CONTAINER).stdout == before


def test_remove_takes_only_the_container_and_status_says_so(installed, inventory, gpu_host: GpuHost):
    run = run_runner("whisperx_remove.yml", inventory)
    assert run.rc == 0
    assert run.artifact_data["whisperx_status"] == NOT_INSTALLED
    assert gpu_host.docker("inspect", TEST_CONTAINER, check=False).returncode != 0
    run = run_runner("whisperx_status.yml", inventory)
    assert run.artifact_data["whisperx_status"] == NOT_INSTALLED
    assert f":{TEST_PORT}" not in gpu_host.docker("ps", "--format", "{{.Ports}}").stdout
