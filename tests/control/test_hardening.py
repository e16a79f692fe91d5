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
