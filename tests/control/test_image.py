"""spark-control as an operator deploys it: its image, run by the role spark.inference.spark_control on this
machine's engine, installing WhisperX over SSH onto a GPU-host stand-in through its own API.

The tests build on each other in order: deploy, what the container is (user, secrets, health), a re-run that
changes nothing, an install of WhisperX through it, an upgrade of spark-control that keeps that install's log,
then everything is removed. The image is `make control-image`'s (CONTROL_IMAGE).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from tests.control.helpers import free_port, read_until, wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("CONTROL_IMAGE", "spark-inference/spark-control:latest")
GPU_HOST, SSH_PORT = "img-gpu-host", 2232
CONTAINER, VOLUME = "img-spark-control", "img-spark-control-data"
WHISPERX, WHISPERX_PORT = "img-whisperx-asr", 18012
HF_TOKEN = "hf_imgKnownTokenNeverToBeSeen0d9e44c1"
UID = 10001
BUNDLE = "/srv/spark-control/models"


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True)


@dataclass
class Deployment:
    url: str
    secrets: Path
    inventory: Path
    ssh_key: Path
    install_job: str | None = None

    @property
    def token(self) -> str:
        return (self.secrets / "api_token").read_text().strip()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def deploy(inventory: Path, **extra: str) -> subprocess.CompletedProcess:
    cmd = [str(REPO / ".venv/bin/ansible-playbook"), "-i", str(inventory), str(REPO / "playbooks/spark_control.yml")]
    for key, value in extra.items():
        cmd += ["-e", f"{key}={value}"]
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return done


def recap_changed(run: subprocess.CompletedProcess) -> int:
    return sum(int(n) for n in re.findall(r"changed=(\d+)", run.stdout))


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, model_bundle: Path) -> Iterator[Deployment]:
    if docker("image", "inspect", IMAGE, check=False).returncode:
        pytest.fail(f"{IMAGE} is missing: run `make control-image`")
    subprocess.run([REPO / "scripts" / "gpu-host.sh", "up", GPU_HOST, str(SSH_PORT)], check=True)
    state = Path(os.environ.get("GPU_HOST_STATE", "/var/tmp/spark-inference/gpu-hosts"))
    host = dict(line.split("=", 1) for line in (state / GPU_HOST / "host.env").read_text().split())
    work = tmp_path_factory.mktemp("control-node")
    (work / "hf_token").write_text(HF_TOKEN)
    (work / "hf_token").chmod(0o600)
    secrets = work / "secrets"
    port = free_port()
    certs = os.environ.get("EXTRA_CA_CERTS", "/usr/local/share/ca-certificates").split()
    extra_certs = [p for p in certs if Path(p).exists()]
    settings = {
        "spark_control_image": IMAGE,
        "spark_control_container_name": CONTAINER,
        "spark_control_data_volume": VOLUME,
        "spark_control_port": port,
        "spark_control_network_mode": "host",  # the stand-in and WhisperX answer on this machine's loopback
        "spark_control_secrets_dir": str(secrets),
        "spark_control_ssh_key_file": host["SSH_KEY"],
        "spark_control_hf_token_file": str(work / "hf_token"),
        "spark_control_spark2_host": host["SSH_HOST"],
        "spark_control_spark2_user": host["SSH_USER"],
        "spark_control_spark2_ssh_port": int(host["SSH_PORT"]),
        "spark_control_whisperx_container": WHISPERX,
        "spark_control_whisperx_port": WHISPERX_PORT,
        # The bundle at a path the container's user can reach (the image's /root is private).
        "spark_control_mounts": [f"{model_bundle}:{BUNDLE}", *extra_certs],
        "spark_control_env": {
            "WHISPERX_MODEL_BUNDLE": BUNDLE,
            "WHISPERX_BUNDLE_MODEL": "tiny.en",
            "WHISPERX_GPUS": "",
            "WHISPERX_MEMORY": "4g",
            "WHISPERX_BASE_IMAGE": os.environ.get("BASE_IMAGE_LOCAL", "spark-inference/debian:bookworm"),
            "WHISPERX_EXTRA_CA_CERTS": " ".join(extra_certs),
            "SPARK_CONTROL_WATCHDOG": "false",
        },
    }
    inventory = work / "inventory.yml"
    node = {"ansible_connection": "local", "ansible_python_interpreter": str(REPO / ".venv/bin/python")}
    group = {"hosts": {"control-node": node}, "vars": settings}
    inventory.write_text(yaml.safe_dump({"all": {"children": {"control": group}}}))
    for name in (CONTAINER, WHISPERX):
        docker("rm", "-f", name, check=False)
    docker("volume", "rm", "-f", VOLUME, check=False)
    try:
        yield Deployment(f"http://127.0.0.1:{port}", secrets, inventory, Path(host["SSH_KEY"]))
    finally:
        for name in (CONTAINER, WHISPERX):
            docker("rm", "-f", name, check=False)
        docker("volume", "rm", "-f", VOLUME, check=False)
        subprocess.run([REPO / "scripts" / "gpu-host.sh", "down", GPU_HOST], check=False)


def inspect(name: str) -> dict:
    return json.loads(docker("inspect", name).stdout)[0]


def test_the_role_runs_spark_control_from_its_image_and_it_turns_healthy(deployed: Deployment):
    deploy(deployed.inventory)
    assert httpx.get(f"{deployed.url}/healthz", timeout=10).json()["status"] == "ok"
    wait_until(lambda: inspect(CONTAINER)["State"].get("Health", {}).get("Status") == "healthy", 180, 1)
    size = int(docker("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout)
    print(f"\n{IMAGE}: {size / 2**20:.0f} MiB")
    assert size < 1 << 30, "far below the service image's 8-9 GB"


def test_it_runs_as_a_non_root_user_with_its_secrets_as_private_files(deployed: Deployment):
    container = inspect(CONTAINER)
    assert docker("exec", CONTAINER, "id", "-u").stdout.strip() == str(UID)
    assert container["Config"]["User"].split(":")[0] == str(UID)
    for name in ("ssh_key", "api_token", "hf_token"):
        mode = (deployed.secrets / name).stat()
        assert stat.S_IMODE(mode.st_mode) == 0o600 and mode.st_uid == UID, name
        assert docker("exec", CONTAINER, "test", "-r", f"/run/secrets/{name}").returncode == 0
    env = container["Config"]["Env"]
    assert "SPARK_CONTROL_SSH_KEY=/run/secrets/ssh_key" in env and "HF_TOKEN_FILE=/run/secrets/hf_token" in env
    secrets = [deployed.token, HF_TOKEN, *deployed.ssh_key.read_text().strip().splitlines()[1:-1]]
    shown = docker("inspect", CONTAINER).stdout + docker("history", "--no-trunc", IMAGE).stdout
    shown += docker("image", "inspect", IMAGE).stdout
    assert not [s for s in secrets if s in shown], "no secret in docker inspect or the image history"


def test_a_second_run_changes_nothing(deployed: Deployment):
    assert recap_changed(deploy(deployed.inventory)) == 0


def test_an_install_through_the_containerised_spark_control_reaches_ready_over_ssh(deployed: Deployment):
    started = httpx.post(f"{deployed.url}/api/whisperx/install", headers=deployed.auth, timeout=30)
    assert started.status_code == 202, started.text
    deployed.install_job = job_id = started.json()["job_id"]
    with httpx.Client(base_url=deployed.url, timeout=httpx.Timeout(30, read=900)) as client:
        events = read_until(client, f"/api/whisperx/install/{job_id}/stream", lambda e: e["event"] == "done")
        status = client.get("/api/whisperx/status").json()
    phases = [e["data"]["phase"] for e in events if e["event"] == "phase"]
    assert events[-1]["data"] == {"state": "successful", "rc": 0}, [e["data"] for e in events[-30:]]
    assert phases == ["preflight", "ship", "build", "start", "load", "ready"]
    assert status["healthy"] and status["health"]["diarizer_loaded"], status
    assert HF_TOKEN not in json.dumps(events)


def test_an_upgrade_of_spark_control_keeps_a_finished_install_s_log(deployed: Deployment, tmp_path: Path):
    """A new image (here the same one with a label more) recreates the container on the same data volume."""
    assert deployed.install_job, "the install above ran"
    before = read_until(
        httpx.Client(base_url=deployed.url, timeout=30), f"/api/jobs/{deployed.install_job}/stream",
        lambda e: e["event"] == "done",
    )  # fmt: skip
    (tmp_path / "Dockerfile").write_text(f"FROM {IMAGE}\nLABEL org.spark-inference.test-upgrade={time.time_ns()}\n")
    upgraded = f"{IMAGE.rsplit(':', 1)[0]}:img-test-upgrade"
    docker("build", "-q", "-t", upgraded, str(tmp_path))
    old_id = inspect(CONTAINER)["Id"]
    try:
        deploy(deployed.inventory, spark_control_image=upgraded)
        assert inspect(CONTAINER)["Id"] != old_id and inspect(CONTAINER)["Config"]["Image"] == upgraded
        with httpx.Client(base_url=deployed.url, timeout=30) as client:
            job = client.get(f"/api/jobs/{deployed.install_job}").json()
            after = read_until(client, f"/api/jobs/{deployed.install_job}/stream", lambda e: e["event"] == "done")
        assert job["state"] == "successful" and after == before, "the same log, read back from the volume"
    finally:
        deploy(deployed.inventory)  # back to the image the rest of the suite uses
        docker("rmi", upgraded, check=False)


def test_removal_through_it_and_then_of_it(deployed: Deployment):
    removed = httpx.post(f"{deployed.url}/api/whisperx/remove", headers=deployed.auth, timeout=30)
    with httpx.Client(base_url=deployed.url, timeout=httpx.Timeout(30, read=300)) as client:
        url = f"/api/whisperx/install/{removed.json()['job_id']}/stream"
        done = read_until(client, url, lambda e: e["event"] == "done")
    assert done[-1]["data"]["state"] == "successful"
    deploy(deployed.inventory, spark_control_state="absent")
    assert docker("container", "inspect", CONTAINER, check=False).returncode != 0
    assert docker("volume", "inspect", VOLUME, check=False).returncode == 0, "the data stays"
