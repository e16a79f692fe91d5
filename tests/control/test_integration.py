"""spark-control against the real thing: the collection's playbooks over SSH, the WhisperX image, real restarts.

The lab: a GPU host container reached over SSH (scripts/gpu-host.sh, user `spark`, the host's Docker
engine), the Spark 2 stand-ins (tests/images/spark2-standin) as containers on that engine, and
spark-control on this machine driving them only through ansible-runner and HTTP. WhisperX runs with
WHISPERX_QUEUE_LIMIT=1 (through WHISPERX_ENV), so two long requests fill it. The tests in this module
build on each other in order: install, proxy, services, a full queue, WhisperX killed mid-request,
watchdog, remove.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from spark_control.config import Settings
from spark_control.inventory import whisperx_backends
from spark_control.main import create_app
from spark_control.services import DEEP_CHECK_CLIP, DEEP_CHECK_TEXT, word_match
from tests.control.helpers import API_TOKEN, AUTH, LiveServer, cpu_whisperx, read_until, repeat_wav, wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
GPU_HOST = "ctl-gpu-host"
SSH_PORT = 2231
STANDIN_IMAGE = os.environ.get("CONTROL_STANDIN_IMAGE", "spark-inference/spark2-standin:bookworm")
PARAKEET, MAGPIE, WHISPERX = "ctl-parakeet-asr", "ctl-magpie-tts", "ctl-whisperx-asr"
PORTS = {PARAKEET: 18000, MAGPIE: 18001, WHISPERX: 18002}
HF_TOKEN = "hf_ctlKnownTokenNeverToBeSeen7f3a91c2"
# Another container's secret on the same host (Magpie's NGC key): no playbook output may carry it.
NGC_KEY = "nvapi-ctlNeighbourKeyNeverToBeSeen0c4e"
QUEUE_FULL = {"running": 1, "waiting": 1, "limit": 1}  # WHISPERX_QUEUE_LIMIT=1: one running, one waiting
LONG_REPEATS = 6  # the dialogue six times: about four minutes of speech, well over a minute of work on a CPU
LONG_TEXT = "The two-speaker dialogue, six times over."  # what the legacy stand-in answers for it


@dataclass
class Lab:
    settings: Settings
    server: LiveServer
    client: httpx.Client
    host: dict[str, str]
    long_clip: Path
    exposed: list[bytes] = field(default_factory=list)  # every byte the API answered, for the secret scan
    install_job: str | None = None
    in_flight: list[Future] = field(default_factory=list)  # long transcriptions sent and not yet answered

    def get(self, path: str, **kwargs) -> httpx.Response:
        response = self.client.get(path, **kwargs)
        self.exposed.append(response.content + str(response.headers).encode())
        return response

    def post(self, path: str, **kwargs) -> httpx.Response:
        response = self.client.post(path, headers=AUTH, **kwargs)
        self.exposed.append(response.content + str(response.headers).encode())
        return response


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True)


def run_standin(name: str, role: str, clips: Path) -> None:
    docker("rm", "-f", name, check=False)
    docker(
        "run", "-d", "--name", name, "-p", f"127.0.0.1:{PORTS[name]}:8000",
        "-e", f"STANDIN_ROLE={role}", "-e", "STANDIN_CLIPS=/clips", "-v", f"{clips}:/clips:ro",
        "-e", f"NGC_API_KEY={NGC_KEY}", "--label", "spark-inference.owner=control-tests", STANDIN_IMAGE,
    )  # fmt: skip


@pytest.fixture(scope="module")
def logs() -> Iterator[Captured]:
    handler = Captured()
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)
    root.setLevel(previous)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, model_bundle: Path, audio: Path, logs: Captured) -> Iterator[Lab]:
    if docker("image", "inspect", STANDIN_IMAGE, check=False).returncode:
        pytest.fail(f"{STANDIN_IMAGE} is missing: run `make control-standin-image`")
    subprocess.run([REPO / "scripts" / "gpu-host.sh", "up", GPU_HOST, str(SSH_PORT)], check=True)
    state = Path(os.environ.get("GPU_HOST_STATE", "/var/tmp/spark-inference/gpu-hosts"))
    host = dict(line.split("=", 1) for line in (state / GPU_HOST / "host.env").read_text().split())
    clips = tmp_path_factory.mktemp("clips")
    for source, name in ((DEEP_CHECK_CLIP, "deep_check"), (audio / "sentence.wav", "sentence")):
        (clips / f"{name}.wav").write_bytes(source.read_bytes())
    (clips / "deep_check.txt").write_text(DEEP_CHECK_TEXT)
    (clips / "sentence.txt").write_text((audio / "sentence.txt").read_text())
    repeat_wav(audio / "dialogue.wav", clips / "long.wav", LONG_REPEATS)
    (clips / "long.txt").write_text(LONG_TEXT)
    run_standin(PARAKEET, "parakeet", clips)
    run_standin(MAGPIE, "magpie", clips)
    docker("rm", "-f", WHISPERX, check=False)
    docker("volume", "rm", "-f", "whisperx-jobs", check=False)  # the role's job volume: no earlier run's jobs

    settings = Settings(
        spark2_host=host["SSH_HOST"],
        spark2_user=host["SSH_USER"],
        spark2_ssh_port=int(host["SSH_PORT"]),
        ssh_key=Path(host["SSH_KEY"]),
        whisperx_container=WHISPERX,
        whisperx_port=PORTS[WHISPERX],
        **cpu_whisperx(model_bundle),
        whisperx_env={"WHISPERX_QUEUE_LIMIT": str(QUEUE_FULL["limit"])},
        legacy_asr_url=f"http://127.0.0.1:{PORTS[PARAKEET]}",
        parakeet_container=PARAKEET,
        magpie_url=f"http://127.0.0.1:{PORTS[MAGPIE]}",
        magpie_container=MAGPIE,
        api_token=API_TOKEN,
        data_dir=tmp_path_factory.mktemp("control-data"),
        watchdog_enabled=True,
        watchdog_interval_s=1.0,
        watchdog_failures=3,
        watchdog_backoff_s=2.0,
        watchdog_max_restarts=3,
        watchdog_start_grace_s=900,  # a cold CPU host boots WhisperX in minutes: one restart, not one per boot
        health_cache_s=0.5,
    )
    server = LiveServer(create_app(settings)).start()
    wait_until(lambda: _json(f"{settings.legacy_asr_url}/health"), 60, 0.5)
    wait_until(lambda: _json(f"{settings.magpie_url}/health"), 60, 0.5)
    with httpx.Client(base_url=server.url, timeout=httpx.Timeout(600, connect=10)) as client:
        yield Lab(settings, server, client, host, clips / "long.wav")
    server.stop()
    for name in (PARAKEET, MAGPIE, WHISPERX):
        docker("rm", "-f", name, check=False)
    subprocess.run([REPO / "scripts" / "gpu-host.sh", "down", GPU_HOST], check=False)


def transcribe(
    base_url: str, clip: Path, path: str = "/api/audio/transcribe-with-speakers", headers: dict | None = None
) -> httpx.Response:
    """One client's upload (its own connection), answered within 5 minutes or an error."""
    return httpx.post(
        f"{base_url}{path}",
        files={"file": (clip.name, clip.read_bytes(), "audio/wav")},
        headers=headers,
        timeout=httpx.Timeout(300, connect=10),
    )


def whisperx_key(lab: Lab) -> dict[str, str]:
    """WhisperX's API key, as the role copied it to spark-control: the header a direct caller needs."""
    return {"Authorization": f"Bearer {whisperx_backends(lab.settings)[0].api_key_path.read_text().strip()}"}


def whisperx_queue(lab: Lab) -> dict | None:
    return (_json(f"{lab.settings.whisperx_url}/health") or {}).get("queue")


def whisperx_settled(lab: Lab) -> bool:
    """Ready with its diarizer, no job acting on it, no failed health check counting towards a restart."""
    health = lab.get("/api/whisperx/status").json()["health"] or {}
    acting = [
        job
        for job in lab.get("/api/jobs", params={"kind": "service"}).json()
        if job["target"] == "whisperx" and job["state"] == "running"
    ]
    services = {s["name"]: s for s in lab.get("/api/services").json()}
    failures = services["whisperx"]["watchdog"]["consecutive_failures"]
    return bool(health.get("diarizer_loaded")) and not acting and failures == 0


def watchdog_view(lab: Lab, service: str) -> dict:
    return {s["name"]: s for s in lab.get("/api/services").json()}[service]["watchdog"]


def finished_restart(lab: Lab, service: str) -> dict | None:
    """The oldest watchdog restart of `service` that has finished, or None while there is none."""
    done = [r for r in watchdog_view(lab, service)["restarts"] if r["state"] != "running"]
    return done[-1] if done else None


def legacy_transcriptions(lab: Lab) -> int:
    return httpx.get(f"{lab.settings.legacy_asr_url}/_standin/stats", timeout=10).json()["transcriptions"]


def events_of(lab: Lab, url: str, headers: dict[str, str] | None = None, stop=None) -> list[dict]:
    got = read_until(lab.client, url, stop or (lambda e: e["event"] == "done"), headers=headers)
    lab.exposed.append(json.dumps(got).encode())
    return got


def test_install_over_ssh_with_a_stream_cut_mid_install(lab: Lab):
    started = lab.post("/api/whisperx/install", json={"hf_token": HF_TOKEN})
    assert started.status_code == 202, started.text
    job_id = lab.install_job = started.json()["job_id"]
    url = f"/api/whisperx/install/{job_id}/stream"
    assert lab.post("/api/whisperx/install").status_code == 409

    first = events_of(lab, url, stop=lambda e: e["event"] == "phase" and e["data"]["phase"] == "ship")
    assert lab.get(f"/api/whisperx/install/{job_id}").json()["state"] == "running", "cut mid-install"
    rest = events_of(lab, url, headers={"Last-Event-ID": str(first[-1]["id"])})
    whole = events_of(lab, url)
    job = lab.get(f"/api/whisperx/install/{job_id}").json()

    assert first + rest == whole, "no gap, no duplicate across the cut"
    phases = [e["data"]["phase"] for e in whole if e["event"] == "phase"]
    assert job["state"] == "successful", job["error"] or whole[-30:]
    assert phases == ["preflight", "ship", "build", "start", "load", "ready"]
    assert whole[-1] == {"id": whole[-1]["id"], "event": "done", "data": {"state": "successful", "rc": 0}}

    status = lab.get("/api/whisperx/status").json()
    assert status["installed"] and status["running"] and status["healthy"], status
    assert status["health"]["diarizer_loaded"] is True and status["health"]["model"] in ("tiny.en", "whisper-tiny.en")
    assert status["answered_from"] == "live"
    assert status["job"] == {"id": job_id, "state": "successful", "phase": "ready"}

    # The role generated the service's API key on the host and copied it here, 0600; WhisperX wants it.
    assert stat.S_IMODE(whisperx_backends(lab.settings)[0].api_key_path.stat().st_mode) == 0o600
    models = f"{lab.settings.whisperx_url}/v1/models"
    assert httpx.get(models, timeout=10).status_code == 401
    assert httpx.get(models, headers=whisperx_key(lab), timeout=10).status_code == 200
    assert whisperx_backends(lab.settings)[0].api_key_path.read_text().strip() not in docker("inspect", WHISPERX).stdout
    assert "whisperx" in {s["name"] for s in lab.get("/api/services").json()}


def test_the_proxy_sends_speech_to_the_real_whisperx(lab: Lab, audio: Path):
    response = lab.client.post(
        "/api/audio/transcribe-with-speakers",
        files={"file": ("sentence.wav", (audio / "sentence.wav").read_bytes(), "audio/wav")},
        data={"language": "en"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-asr-backend"] == "whisperx"
    body = response.json()
    assert body["backend"] == "whisperx"
    assert word_match((audio / "sentence.txt").read_text(), body["text"]) >= 0.6, body["text"]
    assert {"task", "text", "language", "duration", "segments", "speakers"} <= set(body)


def test_a_job_through_spark_control_streams_its_progress_and_gives_its_result(lab: Lab):
    """The job API, proxied: the upload streamed to WhisperX, its events passed through, the result rendered."""
    with lab.long_clip.open("rb") as f:
        started = lab.client.post("/api/audio/jobs", files={"file": ("long.wav", f, "audio/wav")})
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["status"] == "queued" and started.headers["x-asr-backend"] == "whisperx"
    seen = read_until(lab.client, f"/api/audio/jobs/{job['id']}/events", lambda e: e["event"] == "done")
    progress = [e["data"]["progress"] for e in seen if e["event"] == "progress"]
    assert progress and progress[-1]["fraction"] == 1.0
    assert seen[-1]["data"] == {"status": "completed", "error": None}
    result = lab.client.get(f"/api/audio/jobs/{job['id']}/result", params={"format": "text"})
    assert result.status_code == 200 and len(result.text.split()) > 50
    listed = lab.client.get("/api/audio/jobs").json()
    assert job["id"] in [j["id"] for j in listed["data"]]
    assert lab.client.delete(f"/api/audio/jobs/{job['id']}").status_code == 204
    assert lab.client.get(f"/api/audio/jobs/{job['id']}").status_code == 404


def finished_job(lab: Lab, recording: Path) -> dict:
    """A job through spark-control, followed to its end; its diarized transcript."""
    with recording.open("rb") as f:
        started = lab.client.post("/api/audio/jobs", files={"file": (recording.name, f, "audio/wav")})
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]
    seen = read_until(lab.client, f"/api/audio/jobs/{job_id}/events", lambda e: e["event"] == "done")
    assert seen[-1]["data"] == {"status": "completed", "error": None}
    return {"id": job_id, **lab.client.get(f"/api/audio/jobs/{job_id}/result").json()}


def test_a_speaker_named_in_one_job_is_named_in_the_next_recording_of_that_voice(lab: Lab, audio: Path):
    """The voice library end to end: name SPEAKER_NN of a finished meeting "Alice"; the downloads say Alice;
    a week later another conversation of the same two people comes back with Alice named, unasked."""
    turns = json.loads((audio / "dialogue.json").read_text())["turns"]
    first = finished_job(lab, audio / "dialogue.wav")
    said = Counter((s["speaker"], who_said(turns, s)) for s in first["segments"])
    alice = max({label for label, _ in said}, key=lambda label: said[label, "alice"])
    url = f"/api/audio/jobs/{first['id']}/speakers"

    assert lab.client.post(f"{url}/{alice}/voice", json={"name": "Alice"}).status_code == 401, "changes need the token"
    for label, body, status in [("SPEAKER_09", {"name": "Alice"}, 404), (alice, {"name": "  "}, 400), (alice, {}, 422)]:
        refused = lab.post(f"{url}/{label}/voice", json=body)
        assert refused.status_code == status, refused.text
    assert lab.get("/api/voices").json()["data"] == [], "a refused naming leaves no voice"

    named = lab.post(f"{url}/{alice}/voice", json={"name": "Alice"})
    assert named.status_code == 201, named.text
    voice = named.json()["voice"]
    assert voice["name"] == "Alice" and named.json()["speaker"]["id"] == "Alice"
    assert voice["clips"][0]["source"] == {"kind": "job", "job_id": first["id"], "speaker": alice}
    assert 2.0 <= voice["clips"][0]["duration"] <= 10.0
    downloads = {f: lab.client.get(f"/api/audio/jobs/{first['id']}/result", params={"format": f}).text
                 for f in ("srt", "vtt", "text")}  # fmt: skip
    assert "[Alice] Good morning" in downloads["srt"] and f"[{alice}]" not in downloads["srt"]
    assert "<v Alice>" in downloads["vtt"] and f"<v {alice}>" not in downloads["vtt"]
    assert downloads["text"].startswith("Alice: Good morning")

    second = finished_job(lab, audio / "followup.wav")  # the caller sends no known speakers: the library does
    followup = json.loads((audio / "followup.json").read_text())["turns"]
    labelled = [(s["speaker"], who_said(followup, s)) for s in second["segments"]]
    assert {who for speaker, who in labelled if speaker == "Alice"} == {"alice"}, labelled
    hers = [speaker for speaker, who in labelled if who == "alice"]
    assert hers.count("Alice") >= 0.9 * len(hers), labelled
    assert [s["name"] for s in second["speakers"] if s["name"]] == ["Alice"]

    assert lab.client.delete(f"/api/voices/{voice['id']}", headers=AUTH).status_code == 204
    for job_id in (first["id"], second["id"]):
        assert lab.client.delete(f"/api/audio/jobs/{job_id}").status_code == 204


def who_said(turns: list[dict], segment: dict) -> str:
    """The scripted speaker whose turn overlaps the segment most."""
    return max(turns, key=lambda t: min(t["end"], segment["end"]) - max(t["start"], segment["start"]))["speaker"]


def test_deep_checks_run_real_audio_through_each_service(lab: Lab):
    whisperx = lab.post("/api/services/whisperx/deep-check").json()
    parakeet = lab.post("/api/services/parakeet/deep-check").json()
    magpie = lab.post("/api/services/magpie/deep-check").json()
    assert whisperx["ok"] and whisperx["match"] >= 0.6, whisperx
    assert parakeet["ok"] and parakeet["backend"] == "legacy", parakeet
    assert magpie["ok"], magpie
    assert magpie["roundtrip"]["asr"] == "whisperx", "espeak-ng speech heard back by the real WhisperX"


def test_with_whisperx_stopped_the_proxy_answers_from_legacy_in_the_same_shape(lab: Lab, audio: Path):
    stopped = lab.post("/api/services/whisperx/stop")
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["result"]["running"] is False
    response = lab.client.post(
        "/api/audio/transcribe-with-speakers",
        files={"file": ("sentence.wav", (audio / "sentence.wav").read_bytes(), "audio/wav")},
    )
    assert response.status_code == 200 and response.headers["x-asr-backend"] == "legacy"
    assert response.json()["text"] == (audio / "sentence.txt").read_text().strip()
    jobs = lab.client.post("/api/audio/jobs", files={"file": ("s.wav", (audio / "sentence.wav").read_bytes())})
    assert jobs.status_code == 503 and "the legacy service has no jobs" in jobs.json()["error"]["message"]
    services = {s["name"]: s for s in lab.get("/api/services").json()}
    assert services["whisperx"]["intent"] == "stopped" and services["whisperx"]["watchdog"]["restarts"] == []

    assert lab.post("/api/services/whisperx/start").status_code == 200
    wait_until(lambda: (lab.get("/api/whisperx/status").json()["health"] or {}).get("diarizer_loaded"), 300, 1)


def test_a_burst_beyond_the_whisperx_queue_gets_its_429_and_retry_after_as_they_are(lab: Lab, audio: Path):
    """Two long uploads fill WhisperX's queue (one running, one waiting); the next caller gets WhisperX's 429."""
    wait_until(lambda: whisperx_settled(lab), 300, 1)
    legacy_before = legacy_transcriptions(lab)
    pool = ThreadPoolExecutor(2, thread_name_prefix="long-upload")
    lab.in_flight = [pool.submit(transcribe, lab.server.url, lab.long_clip) for _ in range(2)]
    pool.shutdown(wait=False)
    wait_until(lambda: whisperx_queue(lab) == QUEUE_FULL, 120, 0.1)

    sentence = audio / "sentence.wav"
    through_proxy = transcribe(lab.server.url, sentence)
    straight = transcribe(lab.settings.whisperx_url, sentence, "/v1/audio/transcribe-with-speakers", whisperx_key(lab))
    assert whisperx_queue(lab) == QUEUE_FULL, "nothing finished meanwhile: both saw the same queue"
    lab.exposed.append(through_proxy.content + str(through_proxy.headers).encode())

    assert through_proxy.status_code == 429, through_proxy.text
    assert through_proxy.headers["x-asr-backend"] == "whisperx"
    assert "x-asr-fallback-reason" not in through_proxy.headers
    assert through_proxy.json()["error"]["code"] == "queue_full"
    assert int(through_proxy.headers["retry-after"]) >= 1
    assert straight.status_code == 429
    assert through_proxy.headers["retry-after"] == straight.headers["retry-after"], "WhisperX's own estimate"
    assert through_proxy.json() == straight.json()
    assert legacy_transcriptions(lab) == legacy_before, "a full queue is the caller's answer, not a failover"
    assert not any(f.done() for f in lab.in_flight), "the two long uploads are still with WhisperX"


def test_whisperx_killed_mid_request_the_callers_get_the_legacy_answer(lab: Lab):
    """The container dies (an OOM kill, a crash) while it works on one upload and holds another: both callers
    still get a transcript, from the legacy service, which receives the same bytes once."""
    assert len(lab.in_flight) == 2, "the test above left two long uploads with WhisperX"
    legacy_before = legacy_transcriptions(lab)
    assert whisperx_queue(lab) == QUEUE_FULL and whisperx_settled(lab), "nothing but this test stops it"
    docker("kill", WHISPERX)
    answers = [future.result(timeout=360) for future in lab.in_flight]
    lab.in_flight = []
    for response in answers:
        lab.exposed.append(response.content + str(response.headers).encode())
        assert response.status_code == 200, response.text
        assert response.headers["x-asr-backend"] == "legacy"
        assert response.headers["x-asr-fallback-reason"].startswith("whisperx failed: "), response.headers
        body = response.json()
        assert body["backend"] == "legacy" and body["text"] == LONG_TEXT, "the legacy service heard the same upload"
    assert legacy_transcriptions(lab) == legacy_before + 2, "one retry each"

    # Nobody asked for it to stop: the watchdog restarts it, once, and lets it boot. Wait for that event (a
    # finished watchdog restart), not for a healthy look, which the moments right after the kill can still give.
    restart = wait_until(lambda: finished_restart(lab, "whisperx"), 300, 1)
    assert restart["state"] == "successful", restart
    wait_until(lambda: whisperx_settled(lab), 300, 1)
    restarts = watchdog_view(lab, "whisperx")["restarts"]
    assert [r["state"] for r in restarts] == ["successful"], restarts


def test_the_watchdog_restarts_a_broken_service_for_real(lab: Lab):
    parakeet = lab.settings.legacy_asr_url
    httpx.post(f"{parakeet}/_standin/fault", json={"health": "500"})

    restart = wait_until(lambda: finished_restart(lab, "parakeet"), 120, 1)
    assert restart["state"] == "successful"
    assert restart["reason"].startswith("3 failed health checks in a row")
    health = wait_until(lambda: _json(f"{parakeet}/health"), 60, 0.5)
    assert health["status"] == "ok", "the restart cleared the injected fault (a fault lasts until a restart)"
    job = lab.get(f"/api/jobs/{restart['job_id']}").json()
    assert job["trigger"] == "watchdog" and job["result"]["service_result"]["running"] is True


def test_an_upgrade_canceled_while_it_loads_puts_the_previous_container_back(lab: Lab):
    """The upgrade (another model) replaces the container, then the operator cancels while the models load:
    the playbook stops without its rescue, so spark-control's rollback job puts the previous container back."""
    wait_until(lambda: whisperx_settled(lab), 300, 1)
    before = sorted(json.loads(docker("inspect", "--format", "{{json .Config.Env}}", WHISPERX).stdout))
    started = lab.post("/api/whisperx/install", json={"model": "base"})
    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]
    events_of(lab, f"/api/whisperx/install/{job_id}/stream", stop=lambda e: e["data"].get("phase") == "load")
    assert "WHISPER_MODEL=base" in docker("inspect", "--format", "{{json .Config.Env}}", WHISPERX).stdout
    assert lab.post(f"/api/whisperx/install/{job_id}/cancel").status_code == 202
    logged = events_of(lab, f"/api/whisperx/install/{job_id}/stream")
    assert logged[-1]["data"]["state"] == "canceled"
    assert any("a rollback job puts the previous container back" in e["data"].get("line", "") for e in logged)

    def rollback() -> dict | None:
        jobs = lab.get("/api/whisperx/install").json()
        done = [j for j in jobs if j["kind"] == "rollback" and j["state"] != "running"]
        return done[0] if done else None

    finished = wait_until(rollback, 600, 1)
    assert finished["state"] == "successful", finished["error"]
    after = sorted(json.loads(docker("inspect", "--format", "{{json .Config.Env}}", WHISPERX).stdout))
    assert after == before, "the previous settings"
    assert docker("inspect", "--format", "{{.State.Running}}", WHISPERX).stdout.strip() == "true"
    health = wait_until(lambda: _json(f"{lab.settings.whisperx_url}/health"), 120, 1)
    assert health["model"] in ("tiny.en", "whisper-tiny.en"), "the model that ran before the canceled upgrade"
    assert "WHISPER_MODEL=base" not in docker("inspect", WHISPERX).stdout
    wait_until(lambda: whisperx_settled(lab), 300, 1)


def _json(url: str) -> dict | None:
    try:
        response = httpx.get(url, timeout=2)
        return response.json() if response.status_code == 200 else None
    except httpx.HTTPError:
        return None


def test_no_secret_appears_in_the_api_the_logs_or_the_artifacts(lab: Lab, logs: Captured):
    """Every byte the API answered in this module, every log line, every file under the data directory."""
    key_material = Path(lab.host["SSH_KEY"]).read_text().strip().splitlines()[1:-1]
    assert key_material, "the SSH key has a body to search for"
    whisperx_api_key = whisperx_backends(lab.settings)[0].api_key_path.read_text().strip()
    for job in lab.get("/api/jobs", params={"limit": 500}).json():
        lab.get(f"/api/jobs/{job['job_id']}")
        lab.get(f"/api/jobs/{job['job_id']}/stream")
    lab.get("/api/whisperx/status")
    lab.get("/api/services")
    exposed = b"".join(lab.exposed)
    kept = whisperx_backends(lab.settings)[
        0
    ].api_key_path  # the one place WhisperX's key is meant to be (0600, checked above)
    on_disk = b"".join(p.read_bytes() for p in lab.settings.data_dir.rglob("*") if p.is_file() and p != kept)
    logged = "\n".join(logs.lines).encode()
    assert len(on_disk) > 10_000 and len(exposed) > 10_000 and logged
    for secret in [HF_TOKEN, API_TOKEN, NGC_KEY, whisperx_api_key, *key_material]:
        for where, haystack in (("API", exposed), ("data dir", on_disk), ("logs", logged)):
            assert secret.encode() not in haystack, f"a secret appears in the {where}"
    install = lab.settings.jobs_dir / str(lab.install_job)
    assert (install / "artifacts" / str(lab.install_job) / "job_events").is_dir(), "the artifacts were searched"


def test_remove_takes_whisperx_out_of_management(lab: Lab):
    started = lab.post("/api/whisperx/remove")
    assert started.status_code == 202
    job_id = started.json()["job_id"]
    done = events_of(lab, f"/api/whisperx/install/{job_id}/stream")[-1]
    assert done["data"] == {"state": "successful", "rc": 0}
    assert docker("container", "inspect", WHISPERX, check=False).returncode != 0
    status = lab.get("/api/whisperx/status").json()
    assert status["installed"] is False and status["running"] is False
    assert "whisperx" not in {s["name"] for s in lab.get("/api/services").json()}
    response = lab.client.post(
        "/api/audio/transcribe-with-speakers",
        files={"file": ("clip.wav", DEEP_CHECK_CLIP.read_bytes(), "audio/wav")},
    )
    assert response.headers["x-asr-backend"] == "legacy"
