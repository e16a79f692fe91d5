"""spark-control attacked: each test makes the attack or the fault, then checks nothing was lost.

Threat model (docs/control.md, "Security"): a hostile client on the LAN, a hostile web page in the
operator's browser, and an operator's own mistakes (a second instance on the same data directory).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from pydantic import ValidationError

from spark_control.config import Settings
from spark_control.datadir import LOCK_NAME
from spark_control.runner.jobs import Job
from spark_control.security import SESSION_COOKIE
from tests.control.helpers import API_TOKEN, AUTH, free_port, wait_until
from tests.control.test_dashboard import gated

REPO = Path(__file__).resolve().parents[2]


def test_a_second_instance_on_the_same_data_directory_exits_and_touches_nothing(make_settings, serve, tmp_path):
    gate = tmp_path / "gate"
    settings = make_settings(gated("ship", gate))
    server = serve(settings)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        started = client.post("/api/whisperx/install", json={"hf_token": "hf_secondInstanceToken1"}, headers=AUTH)
        job_id = started.json()["job_id"]
        job = wait_until(lambda: (j := client.get(f"/api/jobs/{job_id}").json())["phase"] == "ship" and j, 60)
        token_copies = sorted(settings.secrets_dir.glob("hf_token-*"))
        playbook_pid = json.loads((settings.jobs_dir / job_id / "job.json").read_text())["pid"]
        assert token_copies and job["state"] == "running"

        second = subprocess.run(
            [sys.executable, "-m", "spark_control"],
            env={
                **os.environ,
                "SPARK2_HOST": "127.0.0.1",
                "SPARK_CONTROL_DATA_DIR": str(settings.data_dir),
                "SPARK_CONTROL_PORT": str(server.port),  # the same port, as a second `python -m` would use
                "SPARK_CONTROL_API_TOKEN": API_TOKEN,
            },
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
        assert second.returncode == 1
        assert f"{settings.data_dir.resolve()} is in use by another spark-control (pid {os.getpid()})" in second.stderr
        assert "Traceback" not in second.stderr

        # The live instance's work is untouched: its job runs on, its playbook lives, its token copy is there.
        assert client.get(f"/api/jobs/{job_id}").json()["state"] == "running"
        assert sorted(settings.secrets_dir.glob("hf_token-*")) == token_copies
        assert playbook_pid and psutil.pid_exists(playbook_pid)
        gate.touch()
        done = wait_until(lambda: (j := client.get(f"/api/jobs/{job_id}").json())["state"] != "running" and j, 60)
    assert done["state"] == "successful"
    assert (settings.data_dir / LOCK_NAME).read_text().strip() == str(os.getpid())


def test_the_data_directory_lock_is_released_when_the_server_stops(make_settings, serve):
    settings = make_settings()
    first = serve(settings)
    first.stop()
    second = serve(settings, port=free_port())  # the same data directory, after the first one stopped
    assert httpx.get(f"{second.url}/healthz", timeout=10).status_code == 200


def test_a_dns_rebinding_name_is_refused_and_an_allowed_one_answers(make_settings, serve):
    """evil.example resolved to this machine: the browser sends Host: evil.example, spark-control refuses it."""
    server = serve(make_settings(allowed_hosts=["spark-control.lab.lan"]))
    for path in ("/api/whisperx/status", "/"):
        rebound = httpx.get(f"{server.url}{path}", headers={"Host": "evil.example"}, timeout=10)
        assert rebound.status_code == 400 and rebound.text == "Invalid host header"
    allowed = httpx.get(f"{server.url}/healthz", headers={"Host": f"spark-control.lab.lan:{server.port}"}, timeout=10)
    assert allowed.status_code == 200, "a name the operator allowed (SPARK_CONTROL_ALLOWED_HOSTS)"
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200, "127.0.0.1 is this machine"


def test_a_signed_out_cookie_is_refused_wherever_it_was_copied_even_after_a_restart(make_settings, serve):
    settings = make_settings()
    server = serve(settings)
    login = httpx.post(f"{server.url}/api/session", json={"token": API_TOKEN}, timeout=10)
    copied = login.cookies[SESSION_COOKIE]  # a copy: someone read it off the operator's machine

    def works(base: str) -> bool:
        return httpx.get(f"{base}/api/session", cookies={SESSION_COOKIE: copied}, timeout=10).json()["authenticated"]

    assert works(server.url)
    assert httpx.delete(f"{server.url}/api/session", cookies={SESSION_COOKIE: copied}, timeout=10).status_code == 204
    assert not works(server.url), "signing out revokes the session on the server, not only in the browser"
    server.stop()
    assert not works(serve(settings, port=free_port()).url), "the revocation is kept across a restart"


def test_guessing_the_token_is_throttled_per_client(make_settings, serve):
    server = serve(make_settings(login_attempts_per_minute=5))
    url = f"{server.url}/api/session"
    wrong = [httpx.post(url, json={"token": f"guess-{i}"}, timeout=10).status_code for i in range(5)]
    assert wrong == [401] * 5
    throttled = httpx.post(url, json={"token": API_TOKEN}, timeout=10)
    assert throttled.status_code == 429, "even the right token waits: the guesser cannot tell it found it"
    assert 1 <= int(throttled.headers["retry-after"]) <= 61
    assert "too many wrong tokens" in throttled.json()["detail"]


def test_a_short_api_token_is_refused_at_start(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "spark_control"],
        env={
            **os.environ,
            "SPARK2_HOST": "127.0.0.1",
            "SPARK_CONTROL_DATA_DIR": str(tmp_path),
            "SPARK_CONTROL_API_TOKEN": "short-token-23-chars-xx",
        },
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 1
    assert "SPARK_CONTROL_API_TOKEN must have at least 24 characters" in result.stderr
    assert "short-token-23-chars-xx" not in result.stderr and "Traceback" not in result.stderr


def test_a_job_whose_record_cannot_be_written_still_releases_its_lock_and_token(
    make_settings, serve, monkeypatch: pytest.MonkeyPatch
):
    """The disk fills up as an install ends: its final save fails, and still the next install can start and
    the job's token copy is gone."""
    settings = make_settings()
    server = serve(settings)
    real_finish, real_save = Job.finish, Job.save

    def full_disk(self: Job) -> None:
        raise OSError(28, "No space left on device")

    def finish_on_a_full_disk(self: Job, *args: Any, **kwargs: Any) -> None:
        Job.save = full_disk  # type: ignore[method-assign]
        try:
            real_finish(self, *args, **kwargs)
        finally:
            Job.save = real_save  # type: ignore[method-assign]

    monkeypatch.setattr(Job, "finish", finish_on_a_full_disk)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        first = client.post("/api/whisperx/install", json={"hf_token": "hf_fullDiskToken123"}, headers=AUTH)
        job_id = first.json()["job_id"]
        wait_until(lambda: client.get(f"/api/jobs/{job_id}").json()["state"] != "running", 60)
        assert not list(settings.secrets_dir.glob("hf_token-*")), "the token copy is deleted all the same"
        monkeypatch.setattr(Job, "finish", real_finish)
        second = client.post("/api/whisperx/install", headers=AUTH)
    assert second.status_code == 202, "the lock was released: " + second.text


def test_finished_jobs_are_deleted_after_the_retention_period(make_settings, serve):
    settings = make_settings(job_retention_days=30)
    first = serve(settings)
    with httpx.Client(base_url=first.url, timeout=30) as client:
        old_id = client.post("/api/whisperx/install", headers=AUTH).json()["job_id"]
        wait_until(lambda: client.get(f"/api/jobs/{old_id}").json()["state"] != "running", 60)
        recent_id = client.post("/api/whisperx/install", headers=AUTH).json()["job_id"]
        wait_until(lambda: client.get(f"/api/jobs/{recent_id}").json()["state"] != "running", 60)
    first.stop()
    record = settings.jobs_dir / old_id / "job.json"
    aged = json.loads(record.read_text())
    aged["finished_at"] = (datetime.now(UTC) - timedelta(days=31)).isoformat()
    record.write_text(json.dumps(aged))

    second = serve(settings, port=free_port())
    with httpx.Client(base_url=second.url, timeout=30) as client:
        kept = [j["job_id"] for j in client.get("/api/jobs").json()]
        assert client.get(f"/api/jobs/{old_id}").status_code == 404
    assert kept == [recent_id]
    assert not (settings.jobs_dir / old_id).exists(), "its log and runner artifacts are gone from the disk"


@pytest.mark.parametrize("value", ["hf_abcdefghijklmnopqrstuvwxyz012345", "nvapi-AbCdEf0123456789xyz", "Zq8" * 12])
def test_a_secret_looking_value_in_the_container_env_is_refused_without_being_echoed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str
):
    monkeypatch.setenv("SPARK2_HOST", "spark2.lan")
    monkeypatch.setenv("SPARK_CONTROL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("WHISPERX_ENV", json.dumps({"WHISPERX_BATCH_SIZE": "8", "MAGPIE_KEY_COPY": value}))
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert "WHISPERX_ENV must not carry secrets (MAGPIE_KEY_COPY)" in str(refused.value)
    assert value not in str(refused.value)
    monkeypatch.setenv("WHISPERX_ENV", json.dumps({"WHISPERX_BATCH_SIZE": "8", "WHISPERX_DEVICE": "cuda"}))
    assert Settings().whisperx_env == {"WHISPERX_BATCH_SIZE": "8", "WHISPERX_DEVICE": "cuda"}, "plain values pass"
