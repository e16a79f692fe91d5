"""Helpers for the role's tests: run its playbooks against an inventory, reach a GPU-host stand-in.

The GPU host (scripts/gpu-host.sh, SSH on 127.0.0.1:2224) drives the host's Docker engine, so every
container a test starts is named `mol-whisperx-test*` and removed again by the fixture.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin"
COLLECTIONS = Path(os.environ.get("ANSIBLE_COLLECTIONS_PATH", Path.home() / ".cache/spark-inference/collections"))
STATE = Path(os.environ.get("GPU_HOST_STATE", "/var/tmp/spark-inference/gpu-hosts"))
STUB_SOURCE = Path(__file__).parent / "stub_service"
GPU_HOST_IMAGE = "spark-inference/gpu-host:bookworm"
TEST_CONTAINER = "mol-whisperx-test"
TEST_PORT = 18104
FAKE_TOKEN = "hf_ROLETESTS_fake_token_never_printed_9876543210"


def _tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else shutil.which(name) or name


def ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_PIPELINING="true",
        ANSIBLE_HOST_KEY_CHECKING="false",
        ANSIBLE_NOCOLOR="true",
        ANSIBLE_FORCE_COLOR="false",
        ANSIBLE_RETRY_FILES_ENABLED="false",
    )
    return env


@dataclass
class PlaybookRun:
    rc: int
    output: str

    @property
    def failure(self) -> str:
        """The messages of the tasks that failed, as the operator reads them."""
        messages = []
        for line in self.output.splitlines():
            if line.startswith(("fatal:", "failed:")) and "=> {" in line:
                try:
                    messages.append(json.loads(line.split("=> ", 1)[1]).get("msg", line))
                except ValueError:
                    messages.append(line)
        return "\n".join(messages)


def run_playbook(playbook: str, inventory: Path, extra: dict | None = None, *args: str) -> PlaybookRun:
    cmd = [_tool("ansible-playbook"), "-i", str(inventory), str(REPO / "playbooks" / playbook), *args]
    for key, value in (extra or {}).items():
        cmd += ["-e", yaml.safe_dump({key: value}, default_flow_style=True).strip()]
    done = subprocess.run(cmd, env=ansible_env(), capture_output=True, text=True, timeout=900, check=False)
    return PlaybookRun(done.returncode, done.stdout + done.stderr)


def write_inventory(path: Path, host: dict, group_vars: dict) -> Path:
    inventory = {
        "all": {
            "children": {
                "whisperx": {"hosts": {"gpu": host}, "vars": group_vars},
                "spark2": {"hosts": {"gpu": None}},
            }
        }
    }
    path.write_text(yaml.safe_dump(inventory))
    return path


@dataclass
class GpuHost:
    name: str
    port: int
    home: Path
    key: Path

    @property
    def ssh_vars(self) -> dict:
        return {
            "ansible_host": "127.0.0.1",
            "ansible_port": self.port,
            "ansible_user": "spark",
            "ansible_ssh_private_key_file": str(self.key),
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            "ansible_python_interpreter": "/usr/bin/python3",
        }

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def _remove_test_containers() -> None:
    names = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"name=^{TEST_CONTAINER}", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    for name in names:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    subprocess.run(["docker", "volume", "rm", f"{TEST_CONTAINER}-models"], capture_output=True, check=False)


def stub_vars(token_file: Path, **overrides) -> dict:
    """Role variables that install the stub service (same /health contract, builds in seconds) on CPU."""
    values = {
        "whisperx_container_name": TEST_CONTAINER,
        "whisperx_port": TEST_PORT,
        "whisperx_models_volume": f"{TEST_CONTAINER}-models",
        "whisperx_gpus": "",
        "whisperx_model": "tiny.en",
        "whisperx_memory": "1g",
        "whisperx_source_dir": str(STUB_SOURCE),
        "whisperx_base_image": GPU_HOST_IMAGE,
        "whisperx_image_name": "spark-inference/whisperx-stub",
        "whisperx_hf_token_file": str(token_file),
        "whisperx_health_timeout": 60,
    }
    values.update(overrides)
    return values
