"""spark-control attacked: each test makes the attack or the fault, then checks nothing was lost.

Threat model (docs/control.md, "Security"): a hostile client on the LAN, a hostile web page in the
operator's browser, and an operator's own mistakes (a second instance on the same data directory).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import psutil

from spark_control.datadir import LOCK_NAME
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
