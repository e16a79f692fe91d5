"""Helpers for the role's tests: run its playbooks against an inventory, reach a GPU-host stand-in.

The GPU host (scripts/gpu-host.sh, SSH on 127.0.0.1:2224) drives the host's Docker engine, so every
container and volume a test starts is named `mol-whisperx-test*` and removed again by the fixtures.
The role installs the real service from whisperx_container/ as molecule does: the CPU build FROM the
local Debian base with the same CA certificates as `make image` (so the build is a layer-cache hit),
tiny.en and the diarizer from the offline model bundle.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ansible_runner
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin"
COLLECTIONS = Path(os.environ.get("ANSIBLE_COLLECTIONS_PATH", Path.home() / ".cache/spark-inference/collections"))
STATE = Path(os.environ.get("GPU_HOST_STATE", "/var/tmp/spark-inference/gpu-hosts"))
GPU_HOST_IMAGE = "spark-inference/gpu-host:bookworm"
# What the Makefile exports; the defaults are its defaults, for a bare `pytest`.
SERVICE_IMAGE = os.environ.get("SERVICE_IMAGE", "spark-inference/whisperx-asr:cpu")
BASE_IMAGE_LOCAL = os.environ.get("BASE_IMAGE_LOCAL", "spark-inference/debian:bookworm")
MODELS_DIR = Path(os.environ.get("SPARK_MODELS_DIR", Path.home() / ".cache/spark-inference/models"))
EXTRA_CA_CERTS = [
    p for p in os.environ.get("EXTRA_CA_CERTS", "/usr/local/share/ca-certificates").split() if Path(p).exists()
]
TEST_CONTAINER = "mol-whisperx-test"
TEST_PORT = 18104
TEST_IMAGE = "mol-whisperx-test"
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
    volumes = subprocess.run(
        ["docker", "volume", "ls", "--quiet", "--filter", f"name={TEST_CONTAINER}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    stale = [v for v in volumes if v.startswith(TEST_CONTAINER)]
    if stale:
        subprocess.run(["docker", "volume", "rm", *stale], capture_output=True, check=False)


def service_vars(token_file: Path, name: str = TEST_CONTAINER, port: int = TEST_PORT, **overrides) -> dict:
    """Role variables that install the real service on the CPU, as molecule's group_vars do."""
    values = {
        "whisperx_container_name": name,
        "whisperx_port": port,
        "whisperx_models_volume": f"{name}-models",
        "whisperx_gpus": "",
        "whisperx_model": "tiny.en",
        "whisperx_memory": "4g",
        "whisperx_base_image": BASE_IMAGE_LOCAL,
        "whisperx_extra_ca_certs": EXTRA_CA_CERTS,
        "whisperx_model_bundle": str(MODELS_DIR),
        "whisperx_hf_token_file": str(token_file),
        "whisperx_health_timeout": 300,
        # As molecule's group_vars: root-owned like `make image`'s context, so the build is a layer-cache hit.
        "whisperx_build_context_owner": "root",
        # A repository of its own: the role removes its older ctx-* tags, and other suites share this engine.
        "whisperx_image_name": TEST_IMAGE,
    }
    values.update(overrides)
    return values


# -- ansible-runner, as spark-control runs the playbooks ------------------------------------------------------


@dataclass
class RunnerRun:
    rc: int
    events: list[dict]
    data_dir: Path

    @property
    def stats(self) -> dict:
        return next(e for e in self.events if e["event"] == "playbook_on_stats")["event_data"]

    @property
    def artifact_data(self) -> dict:
        return self.stats.get("artifact_data") or {}

    @property
    def failed_tasks(self) -> list[tuple[str, str]]:
        """(task name, message) of every task that failed, in order."""
        return [
            (e["event_data"].get("task", ""), str(e["event_data"].get("res", {}).get("msg", "")))
            for e in self.events
            if e["event"] == "runner_on_failed" and not e["event_data"].get("ignore_errors")
        ]

    @property
    def failure(self) -> str:
        return "\n".join(msg for _, msg in self.failed_tasks)

    @property
    def stdout(self) -> str:
        return "".join(e.get("stdout", "") + "\n" for e in self.events)


def run_runner(playbook: str, inventory: Path, extravars: dict | None = None, cmdline: str | None = None) -> RunnerRun:
    """One ansible-runner job in a private data directory of its own, as spark-control gives each job
    (ansible-runner would otherwise apply this run's extravars and cmdline to every later run there)."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"runner-{Path(playbook).stem}-", dir=inventory.parent))
    shutil.copy(inventory, data_dir / "inventory.yml")
    result = ansible_runner.run(
        private_data_dir=str(data_dir),
        playbook=str(REPO / "playbooks" / playbook),
        inventory=str(data_dir / "inventory.yml"),
        extravars=extravars or {},
        cmdline=cmdline,
        envvars={"ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "ANSIBLE_PIPELINING": "true"},
        quiet=True,
        timeout=600,
    )
    return RunnerRun(result.rc, list(result.events), data_dir)


def container_fingerprint(*names: str) -> dict[str, tuple | None]:
    """What would show that a container was touched: its id, start time, restarts, OOM flag, run state."""
    prints = {}
    for name in names:
        done = subprocess.run(
            ["docker", "inspect", "--format", "{{json .}}", name], capture_output=True, text=True, check=False
        )
        if done.returncode:
            prints[name] = None
            continue
        info = json.loads(done.stdout)
        state = info["State"]
        prints[name] = (info["Id"], state["StartedAt"], info["RestartCount"], state["OOMKilled"], state["Running"])
    return prints


def load_plugin(path: str, name: str) -> Any:
    """One of the collection's Python plugins (a module or a filter), imported from its file for host unit tests.

    The collection is importable as ansible_collections.spark.inference (`make collection`), as Ansible imports
    it, for the plugins that import each other."""
    if str(COLLECTIONS) not in sys.path:
        sys.path.append(str(COLLECTIONS))
    spec = importlib.util.spec_from_file_location(name, REPO / path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
