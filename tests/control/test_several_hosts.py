"""Two GPU hosts behind one spark-control: installed together, upgraded one at a time with no request lost, a host
that fails its upgrade rolled back before the next is touched, requests sent where there is room, and the legacy
service only when neither host can answer.

The lab: two GPU-host stand-ins (scripts/gpu-host.sh) as 127.0.0.2 and 127.0.0.3 on one SSH port, both driving
this machine's Docker engine, so each runs the real service image on a port of its own (the image built once
for the whole run), and a legacy Parakeet stand-in. WhisperX runs tiny.en with WHISPERX_QUEUE_LIMIT=1. The tests
build on each other in order.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ansible_runner
import httpx
import pytest

from spark_control.config import Settings
from spark_control.inventory import whisperx_backends
from spark_control.main import create_app
from tests.control.helpers import API_TOKEN, AUTH, LiveServer, cpu_whisperx, repeat_wav, wait_for_job, wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HOSTS = {"ctl-gpu-a": "127.0.0.2", "ctl-gpu-b": "127.0.0.3"}
SSH_PORT = 2232
PORTS = (18012, 18013)
A, B = (f"whisperx@{address}_{port}" for address, port in zip(HOSTS.values(), PORTS, strict=True))
CONTAINERS = {A: f"ctl-wx-{PORTS[0]}", B: f"ctl-wx-{PORTS[1]}"}
VOLUMES = [f"whisperx-jobs-{port}" for port in PORTS]
LEGACY, LEGACY_PORT = "ctl-multi-parakeet", 18010
STANDIN_IMAGE = os.environ.get("CONTROL_STANDIN_IMAGE", "spark-inference/spark2-standin:bookworm")
QUEUE_LIMIT = 1


@dataclass
class Lab:
    settings: Settings
    server: LiveServer
    client: httpx.Client
    sentence: Path
    long_clip: Path


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True)


def started_at(container: str) -> str:
    return docker("inspect", "--format", "{{.State.StartedAt}}", container).stdout.strip()


def container_env(container: str) -> list[str]:
    return json.loads(docker("inspect", "--format", "{{json .Config.Env}}", container).stdout)


def health(lab: Lab, name: str) -> dict:
    backend = next(b for b in whisperx_backends(lab.settings) if b.name == name)
    try:
        return httpx.get(f"{backend.url}/health", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return {}


def refused_for_room(lab: Lab, name: str) -> float:
    """How many requests the backend has answered 429 (queue full), from its /metrics."""
    backend = next(b for b in whisperx_backends(lab.settings) if b.name == name)
    key = backend.api_key_path.read_text().strip()
    text = httpx.get(f"{backend.url}/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=5).text
    counted = [line for line in text.splitlines() if line.startswith("whisperx_requests_total{")]
    return sum(float(line.rsplit(" ", 1)[1]) for line in counted if 'status="429"' in line)


def legacy_requests() -> int | None:
    try:
        return httpx.get(f"http://127.0.0.1:{LEGACY_PORT}/_standin/stats", timeout=5).json()["transcriptions"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def _clean() -> None:
    for name in (*CONTAINERS.values(), LEGACY):
        docker("rm", "-f", name, check=False)
    for volume in VOLUMES:
        docker("volume", "rm", "-f", volume, check=False)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, model_bundle: Path, audio: Path) -> Iterator[Lab]:
    _clean()
    hosts = {}
    for name, address in HOSTS.items():
        subprocess.run([REPO / "scripts" / "gpu-host.sh", "up", name, str(SSH_PORT), address], check=True)
        state = Path(os.environ.get("GPU_HOST_STATE", "/var/tmp/spark-inference/gpu-hosts"))
        hosts[name] = dict(line.split("=", 1) for line in (state / name / "host.env").read_text().split())
    clips = tmp_path_factory.mktemp("clips")
    (clips / "sentence.wav").write_bytes((audio / "sentence.wav").read_bytes())
    (clips / "sentence.txt").write_text((audio / "sentence.txt").read_text())
    docker(
        "run", "-d", "--name", LEGACY, "-p", f"127.0.0.1:{LEGACY_PORT}:8000", "-e", "STANDIN_ROLE=parakeet",
        "-e", "STANDIN_CLIPS=/clips", "-v", f"{clips}:/clips:ro", "--label", "spark-inference.owner=control-tests",
        STANDIN_IMAGE,
    )  # fmt: skip
    first = hosts["ctl-gpu-a"]
    settings = Settings(
        spark2_host=first["SSH_HOST"],
        spark2_user=first["SSH_USER"],
        spark2_ssh_port=SSH_PORT,
        ssh_key=Path(first["SSH_KEY"]),
        whisperx_hosts=",".join(f"{address}:{port}" for address, port in zip(HOSTS.values(), PORTS, strict=True)),
        whisperx_container="ctl-wx",
        **cpu_whisperx(model_bundle),
        whisperx_env={"WHISPERX_QUEUE_LIMIT": str(QUEUE_LIMIT)},
        legacy_asr_url=f"http://127.0.0.1:{LEGACY_PORT}",
        api_token=API_TOKEN,
        data_dir=tmp_path_factory.mktemp("control-data"),
        watchdog_enabled=False,  # the tests kill backends on purpose
        health_cache_s=0.5,
    )
    server = LiveServer(create_app(settings)).start()
    wait_until(lambda: legacy_requests() is not None, 60, 0.5)
    long_clip = repeat_wav(audio / "dialogue.wav", clips / "long.wav", 6)
    with httpx.Client(base_url=server.url, timeout=httpx.Timeout(600, connect=10)) as client:
        yield Lab(settings, server, client, clips / "sentence.wav", long_clip)
    server.stop()
    _clean()
    for name in HOSTS:
        subprocess.run([REPO / "scripts" / "gpu-host.sh", "down", name], check=False)


class Stream:
    """Transcriptions through spark-control one after another until stopped: each one's status and backend."""

    def __init__(self, lab: Lab):
        self.lab = lab
        self.answers: list[tuple[int | str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(300)

    def _run(self) -> None:
        clip = self.lab.sentence.read_bytes()
        url = f"{self.lab.server.url}/api/audio/transcribe-with-speakers"
        while not self._stop.is_set():
            try:
                answer = httpx.post(url, files={"file": ("s.wav", clip, "audio/wav")}, timeout=120)
                self.answers.append((answer.status_code, answer.headers.get("X-ASR-Backend", "")))
            except httpx.HTTPError as exc:
                self.answers.append((type(exc).__name__, ""))
            self._stop.wait(0.5)  # a steady stream that leaves the two cores to the upgrade it runs across


def transcribe(lab: Lab) -> httpx.Response:
    return lab.client.post(
        "/api/audio/transcribe-with-speakers", files={"file": ("s.wav", lab.sentence.read_bytes(), "audio/wav")}
    )


def test_one_install_puts_whisperx_on_both_hosts_one_after_the_other(lab: Lab):
    job_id = lab.client.post("/api/whisperx/install", headers=AUTH).json()["job_id"]
    job = wait_for_job(lab.client, job_id, timeout=900)
    assert job["state"] == "successful", job["error"]
    assert job["hosts"] == {A: "ready", B: "ready"}
    status = lab.client.get("/api/whisperx/status").json()
    assert [(b["name"], b["healthy"]) for b in status["backends"]] == [(A, True), (B, True)]
    assert {b["health"]["model"] for b in status["backends"]} == {"tiny.en"}
    assert started_at(CONTAINERS[A]) < started_at(CONTAINERS[B]), "one host after the other"
    services = {s["name"]: s for s in lab.client.get("/api/services").json()}
    assert services[A]["container"] == CONTAINERS[A] and services[B]["container"] == CONTAINERS[B]
    check = lab.client.post(f"/api/services/{B}/deep-check", headers=AUTH).json()
    assert check["ok"] is True, check


def test_a_rolling_upgrade_loses_no_request_and_never_needs_the_legacy_service(lab: Lab):
    before = legacy_requests()
    with Stream(lab) as stream:
        job_id = lab.client.post("/api/whisperx/install", headers=AUTH, json={"model": "base"}).json()["job_id"]
        job = wait_for_job(lab.client, job_id, timeout=900)
        served = len(stream.answers)
        wait_until(lambda: len(stream.answers) > served, 120, 0.2)  # one more answer once both are upgraded
    assert job["state"] == "successful", job["error"]
    assert {health(lab, name).get("model") for name in (A, B)} == {"base"}
    failures = [answer for answer in stream.answers if answer[0] != 200 or not answer[1].startswith("whisperx@")]
    assert not failures, f"{len(failures)} of {len(stream.answers)} requests failed or went elsewhere: {failures[:5]}"
    assert {backend for _, backend in stream.answers} == {A, B}, "each served while the other was upgraded"
    assert legacy_requests() == before


def test_an_upgrade_that_fails_on_the_first_host_rolls_it_back_and_leaves_the_second_alone(lab: Lab, tmp_path):
    """The operator's way: ansible-playbook with per-host variables, here the inventory spark-control writes."""
    b_started, b_env = started_at(CONTAINERS[B]), container_env(CONTAINERS[B])
    last_install = next(j for j in lab.client.get("/api/jobs", params={"kind": "install"}).json())
    job_dir = lab.settings.jobs_dir / last_install["job_id"]
    inventory = json.loads((job_dir / "inventory" / "hosts.json").read_text())
    extravars = json.loads((job_dir / "job.json").read_text())["extravars"]
    env = extravars.pop("whisperx_env")
    hosts = inventory["all"]["children"]["whisperx_hosts"]["hosts"]
    hosts[A]["whisperx_env"] = {**env, "WHISPERX_DEVICE": "tpu"}  # the service refuses to load: health fails
    hosts[B]["whisperx_env"] = {**env, "WHISPERX_QUEUE_LIMIT": "3"}  # would be recreated, were it reached
    run = ansible_runner.run(
        private_data_dir=str(tmp_path),
        playbook=str(REPO / "playbooks" / "whisperx.yml"),
        inventory=inventory,
        extravars=extravars,
        quiet=True,
    )
    assert run.status == "failed"
    stats = run.stats or {}
    assert A in stats.get("failures", {}) and B not in stats.get("ok", {}), "the play ended before the second host"
    assert health(lab, A).get("status") == "ready", "the first host's previous container is back"
    assert "WHISPERX_DEVICE=tpu" not in container_env(CONTAINERS[A])
    assert started_at(CONTAINERS[B]) == b_started and container_env(CONTAINERS[B]) == b_env
    assert transcribe(lab).status_code == 200, "both serve again"


def test_requests_go_to_the_other_host_while_one_queue_is_full(lab: Lab):
    """Two long uploads sent straight to the first host fill its queue (one running, one waiting)."""
    port = PORTS[0]
    request = httpx.Request("POST", "http://x/", files={"file": ("long.wav", lab.long_clip.read_bytes(), "audio/wav")})
    body, content_type = request.read(), request.headers["content-type"]
    key = next(b for b in whisperx_backends(lab.settings) if b.name == A).api_key_path.read_text().strip()
    held = []
    for _ in range(QUEUE_LIMIT + 1):
        conn = http.client.HTTPConnection("127.0.0.2", port, timeout=300)
        conn.request(
            "POST",
            "/v1/audio/transcribe-with-speakers",
            body,
            {"Content-Type": content_type, "Authorization": f"Bearer {key}"},
        )
        held.append(conn)
    try:
        full = {"running": 1, "waiting": QUEUE_LIMIT, "limit": QUEUE_LIMIT}
        wait_until(lambda: health(lab, A).get("queue") == full, 120, 0.2)
        before = refused_for_room(lab, A)
        answers = [transcribe(lab) for _ in range(3)]
        assert [(a.status_code, a.headers["X-ASR-Backend"]) for a in answers] == [(200, B)] * 3
        assert refused_for_room(lab, A) == before, "sent to the host with room, not refused first by the full one"
    finally:
        for conn in held:  # the callers go away: the service drops their work
            conn.close()


def test_a_killed_host_hands_its_requests_to_the_other_and_both_down_means_legacy(lab: Lab):
    before = legacy_requests()
    docker("kill", CONTAINERS[B])
    answers = [transcribe(lab) for _ in range(3)]
    assert [(a.status_code, a.headers["X-ASR-Backend"]) for a in answers] == [(200, A)] * 3
    assert legacy_requests() == before

    docker("kill", CONTAINERS[A])
    answer = transcribe(lab)
    assert answer.status_code == 200 and answer.headers["X-ASR-Backend"] == "legacy"
    assert legacy_requests() == before + 1
    status = lab.client.get("/api/whisperx/status").json()
    assert [b["healthy"] for b in status["backends"]] == [False, False] and status["healthy"] is False
