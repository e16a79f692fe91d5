"""The playbooks as spark-control runs them, through ansible-runner: results, idempotence and the token.

Installs the real service (CPU image, tiny.en and the diarizer from the offline bundle) on a GPU-host
stand-in once for the whole module; the tests run in order against that installation, removal last.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.role.helpers import (
    FAKE_TOKEN,
    MODELS_DIR,
    TEST_CONTAINER,
    TEST_IMAGE,
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
    assert status["image"].startswith(f"{TEST_IMAGE}:ctx-")
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
    assert status["image"].startswith(f"{TEST_IMAGE}:ctx-")
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


@pytest.fixture(scope="module")
def truncated_bundle(tmp_path_factory):
    """An offline bundle whose manifest lists Whisper small, whose model.bin was cut short (an interrupted
    copy): preflight finds the model listed, and the service fails to load it."""
    bundle = tmp_path_factory.mktemp("truncated-bundle")
    manifest = json.loads((MODELS_DIR / "manifest.json").read_text())
    tiny = next(model for model in manifest["models"] if model["path"] == "whisper-tiny.en")
    (bundle / "whisper-small").mkdir()
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(MODELS_DIR / "whisper-tiny.en" / name, bundle / "whisper-small" / name)
    with (MODELS_DIR / "whisper-tiny.en/model.bin").open("rb") as model:
        (bundle / "whisper-small/model.bin").write_bytes(model.read(2**20))
    manifest["models"] = [{**tiny, "name": "whisper-small", "path": "whisper-small"}]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return bundle


def test_a_failed_upgrade_reports_the_container_it_rolled_back_to(
    installed, inventory, gpu_host: GpuHost, truncated_bundle
):
    before = gpu_host.docker("inspect", "--format", "{{.Image}} {{.Config.Image}}", TEST_CONTAINER).stdout
    # The new container reports the load error on /health; the running one keeps its own bundle directory.
    upgrade = {
        "whisperx_model": "small",
        "whisperx_model_bundle": str(truncated_bundle),
        "whisperx_model_bundle_dest": "~/whisperx-model-bundle-truncated",
    }
    run = run_runner("whisperx.yml", inventory, upgrade)
    assert run.rc != 0
    assert f"so the previous one ({TEST_IMAGE}:ctx-" in run.failure
    assert (
        "was put back and is healthy again: The WhisperX models failed to load: cannot load Whisper from"
        " /models/whisper-small: "
    ) in run.failure
    # The caller learns what runs now from the failed run itself, with no second run.
    status = run.artifact_data["whisperx_status"]
    assert status["installed"] is True and status["running"] is True and status["healthy"] is True
    assert status["image"] == before.split()[1]
    assert status["health"]["model"] == "tiny.en" and status["health"]["error"] is None
    assert gpu_host.docker("inspect", "--format", "{{.Image}} {{.Config.Image}}", TEST_CONTAINER).stdout == before


def test_gpus_are_required_to_be_used_when_requested(installed, inventory):
    # No GPU here, so the role's own expectation stands in for whisperx_gpus=all (test_role_vars.py shows
    # GPUs lead to it): the installed service, on the CPU, must then fail the load phase.
    run = run_runner("whisperx.yml", inventory, {"_whisperx_expected_device": "cuda"})
    assert run.rc != 0
    assert "did not become healthy" in run.failure
    assert (
        'The WhisperX models loaded on "cpu" instead of "cuda": check that the image\'s torch has CUDA support'
    ) in run.failure
    assert run.artifact_data["whisperx_status"]["running"] is True


def test_remove_takes_only_the_container_and_status_says_so(installed, inventory, gpu_host: GpuHost):
    run = run_runner("whisperx_remove.yml", inventory)
    assert run.rc == 0
    assert run.artifact_data["whisperx_status"] == NOT_INSTALLED
    assert gpu_host.docker("inspect", TEST_CONTAINER, check=False).returncode != 0
    run = run_runner("whisperx_status.yml", inventory)
    assert run.artifact_data["whisperx_status"] == NOT_INSTALLED
    assert f":{TEST_PORT}" not in gpu_host.docker("ps", "--format", "{{.Ports}}").stdout
