"""Start-up, failure and observability: loading answers 503, a missing model is an error in /health
(never a hang or a crash), the offline bundle needs no network, the token never shows."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import Container, docker, remove, start, transcribe, wait_for

pytestmark = pytest.mark.integration
SECRET = "hf_thisIsNotARealTokenButMustNeverBeShown"
CONTRACT_KEYS = {
    "status", "whisper_loaded", "diarizer_loaded", "aligner", "model", "device", "compute_type", "queue", "version",
    "error",
}  # fmt: skip
PER_MODEL_DEVICES = {"whisper_device", "diarizer_device"}  # additive: each model's own device


def test_health_reports_the_contract_fields(service: Container):
    health = service.health()
    assert set(health) == CONTRACT_KEYS | PER_MODEL_DEVICES
    assert health["whisper_device"] == health["diarizer_device"] == "cpu"
    assert health["status"] == "ready" and health["whisper_loaded"] and health["diarizer_loaded"]
    assert health["aligner"] == "whisper"  # no wav2vec2 weights in the offline bundle
    assert health["model"] == "tiny.en" and health["device"] == "cpu" and health["compute_type"] == "int8"
    assert health["queue"] == {"running": 0, "waiting": 0, "limit": 1}
    assert health["error"] is None and health["version"]


def test_the_docker_healthcheck_passes_when_ready(service: Container):
    assert docker("exec", service.name, "python", "-m", "app.healthcheck").returncode == 0
    assert docker("inspect", "--format", "{{json .Config.Healthcheck.Test}}", service.name).stdout.strip()


def test_the_docker_healthcheck_asks_where_the_settings_say_the_service_listens(service: Container):
    wrong_port = docker("exec", "-e", "WHISPERX_PORT=9", service.name, "python", "-m", "app.healthcheck", check=False)
    assert wrong_port.returncode == 1 and "http://127.0.0.1:9/health" in wrong_port.stdout
    own_address = docker("exec", "-e", "WHISPERX_HOST=127.0.0.1", service.name, "python", "-m", "app.healthcheck")
    assert "status: ready" in own_address.stdout


def test_alignment_downloads_are_kept_in_the_models_volume(service: Container):
    # whisperX fetches wav2vec2 weights through torch hub and NLTK's punkt_tab on first use: both must land
    # under /root/.cache/huggingface (the whisperx-models volume), or every re-created container fetches again
    where = "import torch, nltk.downloader as d; print(torch.hub.get_dir(), d.Downloader().default_download_dir())"
    torch_hub, nltk_data = service.exec("python", "-c", where).split()
    assert torch_hub.startswith("/root/.cache/huggingface/"), torch_hub
    assert nltk_data.startswith("/root/.cache/huggingface/"), nltk_data


def test_metrics_count_requests_queue_stages_and_realtime_factor(service: Container, audio: Path):
    with (audio / "sentence.wav").open("rb") as f:
        httpx.post(f"{service.url}/v1/audio/transcriptions", files={"file": f}, timeout=60).raise_for_status()
    text = httpx.get(f"{service.url}/metrics", timeout=10).text
    assert 'whisperx_requests_total{endpoint="transcriptions",status="200"}' in text
    for name in ("whisperx_queue_running", "whisperx_queue_waiting", "whisperx_realtime_factor_count"):
        assert name in text
    assert 'whisperx_stage_seconds_count{stage="transcribe"}' in text


def request_series(service: Container) -> set[str]:
    text = httpx.get(f"{service.url}/metrics", timeout=10).text
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line.startswith("whisperx_requests_total{")}


def test_requests_to_unknown_paths_do_not_add_metric_series(service: Container):
    for path in [f"/v1/audio/{uuid.uuid4().hex}" for _ in range(20)] + ["/v1/audio/transcriptions/extra"]:
        assert httpx.post(f"{service.url}{path}", timeout=10).status_code == 404
    before = request_series(service)
    assert 'whisperx_requests_total{endpoint="other",status="404"}' in before
    for path in [f"/v1/audio/{uuid.uuid4().hex}" for _ in range(20)]:
        assert httpx.post(f"{service.url}{path}", timeout=10).status_code == 404
    assert request_series(service) == before


def test_requests_while_loading_get_503_with_retry_after(model_bundle: Path, audio: Path):
    # a container starved of CPU loads slowly enough to be caught loading; then it gets its CPU back
    container = start(model_bundle, "--cpus", "0.2")
    try:
        health = wait_for(container, {"loading", "ready"}, timeout=240)
        assert health["status"] == "loading", "loaded before it could be observed loading"
        assert health["whisper_loaded"] is False or health["diarizer_loaded"] is False
        with (audio / "sentence.wav").open("rb") as f:
            response = httpx.post(f"{container.url}/v1/audio/transcriptions", files={"file": f}, timeout=60)
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) >= 1
        assert response.json()["error"]["code"] == "model_loading"

        docker("update", "--cpus", "2", container.name)
        assert wait_for(container, {"ready", "error"})["status"] == "ready"
        with (audio / "sentence.wav").open("rb") as f:
            response = httpx.post(f"{container.url}/v1/audio/transcriptions", files={"file": f}, timeout=60)
        assert response.status_code == 200 and "budget" in response.json()["text"].lower()
    finally:
        remove(container)


def test_a_model_missing_from_the_bundle_is_an_error_in_health_not_a_crash(model_bundle: Path, audio: Path):
    container = start(model_bundle, env={"WHISPER_MODEL": "medium", "HF_TOKEN": SECRET})
    try:
        health = wait_for(container, {"error", "ready"}, timeout=120)
        assert health["status"] == "error" and health["whisper_loaded"] is False
        assert "medium" in health["error"] and "bundle" in health["error"]
        assert health["model"] == "medium"
        with (audio / "sentence.wav").open("rb") as f:
            response = httpx.post(f"{container.url}/v1/audio/transcriptions", files={"file": f}, timeout=60)
        assert response.status_code == 503 and "medium" in response.json()["error"]["message"]
        time.sleep(1)
        assert container.health()["status"] == "error"  # still answering
        assert SECRET not in str(health) and SECRET not in container.logs()
    finally:
        remove(container)


def test_a_gated_hub_pipeline_without_a_token_offline_is_a_clear_error(model_bundle: Path, tmp_path: Path):
    token_file = tmp_path / "token"
    token_file.write_text("")  # an empty token file: no token
    container = start(
        model_bundle,
        "-v", f"{token_file}:/run/secrets/hf_token:ro",
        env={"WHISPER_MODEL": "/models/whisper-tiny.en", "WHISPERX_MODEL_BUNDLE": "", "HF_HUB_OFFLINE": "1",
             "HF_TOKEN_FILE": "/run/secrets/hf_token"},
    )  # fmt: skip
    try:
        health = wait_for(container, {"error", "ready"}, timeout=120)
        assert health["status"] == "error" and health["whisper_loaded"] is True
        assert "pyannote/speaker-diarization-community-1" in health["error"]
        assert "HF_TOKEN" in health["error"]
    finally:
        remove(container)


def test_the_offline_bundle_transcribes_with_no_network_at_all(model_bundle: Path, audio: Path):
    container = start(model_bundle, "--network", "none", publish=False)
    try:
        docker("cp", str(audio / "sentence.wav"), f"{container.name}:/srv/sentence.wav")
        docker("cp", str(Path(__file__).with_name("offline_client.py")), f"{container.name}:/srv/offline_client.py")
        run = ("exec", container.name, "python", "/srv/offline_client.py", "/srv/sentence.wav")
        out = docker(*run, timeout=300).stdout
        assert "budget" in out.lower()
    finally:
        remove(container)


def rss_mb(container: Container) -> float:
    status = container.exec("cat", "/proc/1/status")
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024


def test_idle_models_are_released_and_loaded_again_for_the_next_request(model_bundle: Path, audio: Path):
    container = start(model_bundle, env={"WHISPERX_IDLE_UNLOAD_S": "3"})
    try:
        assert wait_for(container, {"ready", "error"})["status"] == "ready", container.logs()[-3000:]
        loaded = rss_mb(container)
        idle = wait_for(container, {"unloaded", "error"}, timeout=120)
        assert idle["status"] == "unloaded" and not idle["whisper_loaded"] and not idle["diarizer_loaded"], idle
        released = rss_mb(container)
        # tiny.en (int8, ~40 MB), CAM++ (27 MB) and the segmentation (6 MB) go; measured ~90 MB on 2026-12-03
        assert released < loaded - 50, f"RSS {loaded:.0f} MB loaded, {released:.0f} MB released"
        assert docker("exec", container.name, "python", "-m", "app.healthcheck").returncode == 0, "still healthy"
        body = transcribe(container.url, audio / "sentence.wav")  # waits for the models instead of failing
        assert "budget" in body["text"].lower()
        assert "loading the models again for a request after an idle unload" in container.logs()
    finally:
        remove(container)
