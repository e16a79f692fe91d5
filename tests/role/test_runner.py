"""The playbooks as spark-control runs them, through ansible-runner: results, idempotence and the token.

Installs the stub service (same /health contract as WhisperX, builds in seconds) on a GPU-host stand-in.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import ansible_runner
import pytest

from tests.role.helpers import (
    COLLECTIONS,
    FAKE_TOKEN,
    REPO,
    TEST_CONTAINER,
    TEST_PORT,
    GpuHost,
    stub_vars,
    write_inventory,
)

pytestmark = pytest.mark.integration


def run(playbook: str, data_dir: Path, extravars: dict | None = None):
    result = ansible_runner.run(
        private_data_dir=str(data_dir),
        playbook=str(REPO / "playbooks" / playbook),
        inventory=str(data_dir / "inventory.yml"),
        extravars=extravars or {},
        envvars={"ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "ANSIBLE_PIPELINING": "true"},
        quiet=True,
        timeout=600,
    )
    stats = next(e for e in result.events if e["event"] == "playbook_on_stats")["event_data"]
    return result, stats


def everything_written(data_dir: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in data_dir.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def installed(gpu_host: GpuHost, tmp_path_factory):
    """One install through ansible-runner, with the token passed only as a file path."""
    data_dir = tmp_path_factory.mktemp("runner")
    token_file = data_dir.parent / "hf_token"
    token_file.write_text(FAKE_TOKEN + "\n")
    token_file.chmod(0o600)
    write_inventory(data_dir / "inventory.yml", gpu_host.ssh_vars, stub_vars(token_file))
    result, stats = run("whisperx.yml", data_dir)
    return {"data_dir": data_dir, "result": result, "stats": stats}


def test_install_succeeds_and_reports_its_phases(installed):
    assert installed["result"].rc == 0, installed["result"].stdout.read()
    paths = [e["event_data"].get("task_path", "") for e in installed["result"].events]
    phases = [p.rsplit("/", 1)[-1].split(".yml")[0] for p in paths if "/roles/whisperx/tasks/" in p]
    assert [p for p in dict.fromkeys(phases) if p in ("preflight", "ship", "build", "start", "load")] == [
        "preflight",
        "ship",
        "build",
        "start",
        "load",
    ]


def test_the_token_appears_in_no_runner_event_artifact_or_container_environment(installed, gpu_host: GpuHost):
    assert FAKE_TOKEN not in everything_written(installed["data_dir"])
    assert FAKE_TOKEN not in json.dumps(list(installed["result"].events))
    assert FAKE_TOKEN not in gpu_host.docker("inspect", TEST_CONTAINER).stdout
    mounted = gpu_host.docker("exec", TEST_CONTAINER, "cat", "/run/secrets/hf_token").stdout
    assert mounted.strip() == FAKE_TOKEN


def test_a_second_run_changes_nothing(installed):
    result, stats = run("whisperx.yml", installed["data_dir"])
    assert result.rc == 0
    assert stats["changed"] == {}, stats["changed"]


def test_status_is_machine_readable_through_set_stats(installed):
    result, stats = run("whisperx_status.yml", installed["data_dir"])
    assert result.rc == 0
    status = stats["artifact_data"]["whisperx_status"]
    assert set(status) == {"installed", "running", "healthy", "image", "health"}
    assert status["installed"] is True and status["running"] is True and status["healthy"] is True
    assert status["image"].startswith("spark-inference/whisperx-stub:ctx-")
    assert status["health"]["status"] == "ready" and status["health"]["diarizer_loaded"] is True


def test_service_playbook_restarts_a_managed_container_and_reports_it(installed):
    extravars = {
        "service_hosts": "whisperx",
        "service_name": TEST_CONTAINER,
        "service_action": "stop",
        "service_allowed_names": [TEST_CONTAINER],
    }
    result, stats = run("service.yml", installed["data_dir"], extravars)
    assert result.rc == 0
    assert stats["artifact_data"]["service_result"] == {
        "name": TEST_CONTAINER,
        "action": "stop",
        "state": "exited",
        "running": False,
    }
    result, stats = run("service.yml", installed["data_dir"], {**extravars, "service_action": "restart"})
    assert result.rc == 0
    assert stats["artifact_data"]["service_result"]["running"] is True


def test_check_mode_with_diff_on_the_installed_host_changes_nothing(installed, tmp_path: Path):
    # ansible-runner keeps `cmdline` in env/cmdline for every later run in the same private_data_dir,
    # so the check-mode run gets a directory of its own.
    shutil.copy(installed["data_dir"] / "inventory.yml", tmp_path / "inventory.yml")
    result = ansible_runner.run(
        private_data_dir=str(tmp_path),
        playbook=str(REPO / "playbooks/whisperx.yml"),
        inventory=str(tmp_path / "inventory.yml"),
        cmdline="--check --diff",
        envvars={"ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS)},
        quiet=True,
        timeout=600,
    )
    assert result.rc == 0
    stats = next(e for e in result.events if e["event"] == "playbook_on_stats")["event_data"]
    assert stats["changed"] == {}, stats["changed"]
    assert FAKE_TOKEN not in json.dumps(list(result.events))


def test_remove_takes_only_the_container_and_status_says_so(installed, gpu_host: GpuHost):
    result, _ = run("whisperx_remove.yml", installed["data_dir"])
    assert result.rc == 0
    assert gpu_host.docker("inspect", TEST_CONTAINER, check=False).returncode != 0
    result, stats = run("whisperx_status.yml", installed["data_dir"])
    assert stats["artifact_data"]["whisperx_status"] == {
        "installed": False,
        "running": False,
        "healthy": False,
        "image": None,
        "health": None,
    }
    assert f":{TEST_PORT}" not in gpu_host.docker("ps", "--format", "{{.Ports}}").stdout
