"""Bad input ends the play early with one sentence saying what to fix, before the host is even contacted.

The inventory points at a closed port: a check that let bad input through would fail later with
"Cannot reach" instead of the message asserted here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.role.helpers import MODELS_DIR, run_playbook, run_runner, write_inventory

# They run ansible-playbook (about a second each), so they belong with the role's slower tests.
pytestmark = pytest.mark.integration

CLOSED_PORT = 2228  # in the role's test range and never listened on


@pytest.fixture
def inventory(tmp_path: Path, token_file: Path, collection) -> Path:
    host = {"ansible_host": "127.0.0.1", "ansible_port": CLOSED_PORT, "ansible_user": "spark"}
    return write_inventory(
        tmp_path / "inventory.yml",
        host,
        {"whisperx_gpus": "", "whisperx_hf_token_file": str(token_file)},
    )


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("whisperx_model", "huge", "value of whisperx_model must be one of"),
        ("whisperx_memory", "lots", "whisperx_memory"),
        ("whisperx_port", "eighty", "whisperx_port"),
        ("whisperx_restart_policy", "sometimes", "value of whisperx_restart_policy must be one of"),
        ("whisperx_state", "gone", "value of whisperx_state must be one of"),
    ],
)
def test_the_argument_spec_rejects_a_bad_value(inventory: Path, variable: str, value: str, expected: str):
    run = run_playbook("whisperx.yml", inventory, {variable: value})
    assert run.rc != 0
    assert "Validation of arguments failed" in run.failure
    assert expected in run.failure
    assert "Cannot reach" not in run.output


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"whisperx_port": 70000}, "whisperx_port must be a TCP port between 1 and 65535, not 70000."),
        ({"whisperx_memory": "2g", "whisperx_memory_swap": "1g"}, "is smaller than whisperx_memory"),
        ({"whisperx_container_name": "-bad name"}, "is not a valid container name"),
        ({"whisperx_env": {"HF_TOKEN": "x"}}, "whisperx_env must not carry HF_TOKEN"),
        ({"whisperx_hf_token_file": "/nonexistent/token"}, "is not a readable file on the controller"),
        ({"whisperx_hf_token_file": ""}, "The diarization model (pyannote) is gated on Hugging Face"),
        ({"whisperx_model_bundle": "/nonexistent"}, "has no manifest.json"),
        (
            {"whisperx_model": "small", "whisperx_model_bundle": str(MODELS_DIR)},
            f'whisperx_model "small" is not in the offline model bundle {MODELS_DIR} (it has: base, tiny.en): choose'
            " one of those, or add it to the bundle.",
        ),
        ({"whisperx_extra_ca_certs": ["/nonexistent/ca.crt"]}, "which does not exist on the controller"),
        ({"whisperx_source_dir": "/tmp"}, "holds no Dockerfile"),
    ],
)
def test_preflight_names_what_to_fix_before_contacting_the_host(inventory: Path, extra: dict, expected: str):
    run = run_playbook("whisperx.yml", inventory, extra)
    assert run.rc != 0
    assert expected in run.failure
    assert "Cannot reach" not in run.output


def test_a_file_that_is_no_certificate_is_refused(inventory: Path, tmp_path: Path):
    (tmp_path / "proxy.crt").write_text("not a certificate\n")
    run = run_playbook("whisperx.yml", inventory, {"whisperx_extra_ca_certs": [str(tmp_path)]})
    assert run.rc != 0
    assert "must all be PEM certificates" in run.failure


# Role variables outrank the inventory; only an extra variable shortens the wait for a dead host.
QUICK = {"_whisperx_connect_timeout": 1}


@pytest.mark.parametrize(
    ("playbook", "stat", "extra"),
    [
        ("whisperx.yml", "whisperx_preflight", QUICK),
        ("whisperx_remove.yml", "whisperx_preflight", QUICK),
        ("whisperx_status.yml", "whisperx_preflight", QUICK),
        (
            "service.yml",
            "service_preflight",
            {
                "service_hosts": "whisperx",
                "service_name": "parakeet-asr",
                "service_action": "status",
                "service_connect_timeout": 1,
            },
        ),
    ],
)
def test_an_unreachable_host_fails_with_what_to_check_and_says_so_to_ansible_runner(
    inventory: Path, playbook, stat, extra
):
    run = run_runner(playbook, inventory, extra)
    assert run.rc != 0
    # One sentence saying what to check, not Ansible's UNREACHABLE.
    assert not [e for e in run.events if e["event"] == "runner_on_unreachable"]
    preflight = run.artifact_data[stat]
    assert preflight["reachable"] is False
    assert preflight["host"] == "gpu"
    assert preflight["reason"].startswith(f"Cannot reach gpu over SSH as spark at 127.0.0.1:{CLOSED_PORT} (")
    assert preflight["reason"].endswith("check the address, port and key in the inventory and that sshd runs there.")
    # The stable task name, failing last with the same sentence; nothing is claimed about the container.
    assert run.failed_tasks[-1] == ("Host is unreachable", preflight["reason"])
    assert "whisperx_status" not in run.artifact_data and "service_result" not in run.artifact_data


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"service_name": "rm -rf", "service_action": "stop"}, 'service_name "rm -rf" is not a managed container'),
        ({"service_name": "parakeet-asr", "service_action": "kill"}, 'service_action "kill" is not an action'),
    ],
)
def test_service_playbook_refuses_names_and_actions_it_does_not_manage(inventory: Path, extra, expected):
    run = run_playbook("service.yml", inventory, {"service_hosts": "whisperx", **extra})
    assert run.rc != 0
    assert expected in run.failure
    assert "Cannot reach" not in run.output
