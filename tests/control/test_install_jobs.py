"""Install jobs through the real ansible-runner, on stand-in playbooks with the collection's interface."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from spark_control.config import Settings
from spark_control.runner.phases import INSTALL_PHASES
from tests.control.helpers import API_TOKEN, AUTH, LiveServer, read_until, wait_for_job, wait_until


def sse_events(client: httpx.Client, url: str, headers: dict[str, str] | None = None) -> list[dict]:
    """Every event of a stream until the server ends it: [{"id", "event", "data"}]."""
    from httpx_sse import connect_sse

    out = []
    with connect_sse(client, "GET", url, headers=headers or {}) as source:
        for event in source.iter_sse():
            if not event.data:  # the opening `retry:` line and comments dispatch nothing in a browser
                continue
            out.append({"id": int(event.id), "event": event.event, "data": json.loads(event.data)})
    return out


def start_install(client: httpx.Client, body: dict | None = None) -> str:
    response = client.post("/api/whisperx/install", json=body, headers=AUTH)
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def test_an_install_streams_its_phases_in_order_then_ready_and_done(make_settings, serve):
    server = serve(make_settings())
    with httpx.Client(base_url=server.url, timeout=30) as client:
        job_id = start_install(client)
        events = sse_events(client, f"/api/whisperx/install/{job_id}/stream")
        job = client.get(f"/api/whisperx/install/{job_id}").json()

    phases = [e["data"]["phase"] for e in events if e["event"] == "phase"]
    assert phases == ["preflight", "ship", "build", "start", "load", "ready"]
    assert events[-1] == {"id": events[-1]["id"], "event": "done", "data": {"state": "successful", "rc": 0}}
    ids = [e["id"] for e in events]
    assert ids == sorted(set(ids)), "ids strictly increase"
    assert any("TASK [whisperx : The build phase logs a step]" in e["data"].get("line", "") for e in events)
    assert job["state"] == "successful" and job["phase"] == "ready" and job["rc"] == 0
    assert job["started_at"] <= job["finished_at"] and job["elapsed_s"] > 0
    assert job["result"]["whisperx_status"]["installed"] is True


def test_event_ids_are_the_runner_event_counters(make_settings, serve):
    settings = make_settings()
    server = serve(settings)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        job_id = start_install(client)
        events = sse_events(client, f"/api/jobs/{job_id}/stream")
    artifacts = settings.jobs_dir / job_id / "artifacts" / job_id / "job_events"
    counters = {int(p.name.split("-", 1)[0]) for p in artifacts.glob("*.json")}
    runner_ids = [e["id"] for e in events if e["event"] == "log" or e["data"].get("phase") in INSTALL_PHASES]
    assert set(runner_ids) <= counters
    assert events[-1]["id"] == max(counters) + 2  # the terminal phase, then done


def test_a_failing_phase_ends_the_install_failed_with_the_reason(make_settings, serve):
    server = serve(make_settings(fake_vars={"fake_fail_phase": "build"}))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        job_id = start_install(client)
        events = sse_events(client, f"/api/whisperx/install/{job_id}/stream")
        job = client.get(f"/api/whisperx/install/{job_id}").json()
    phases = [e["data"]["phase"] for e in events if e["event"] == "phase"]
    assert phases == ["preflight", "ship", "build", "failed"]
    assert events[-1]["data"]["state"] == "failed" and events[-1]["data"]["rc"] != 0
    assert job["state"] == "failed" and job["phase"] == "failed"
    assert "build failed" in job["error"]


def test_only_one_install_at_a_time(make_settings, serve):
    server = serve(make_settings(fake_vars={"fake_step_delay": 1}))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        first = start_install(client)
        second = client.post("/api/whisperx/install", headers=AUTH)
        remove = client.post("/api/whisperx/remove", headers=AUTH)
        assert second.status_code == 409 and second.json()["job_id"] == first
        assert remove.status_code == 409 and remove.json()["job_id"] == first
        assert first in second.json()["detail"]
        wait_for_job(client, first)
        third = client.post("/api/whisperx/install", headers=AUTH)
        assert third.status_code == 202


SLOW_STEP = "TASK [whisperx : The preflight phase takes a moment]"  # `sleep fake_step_delay`


def test_a_running_install_can_be_cancelled_mid_step(make_settings, serve):
    server = serve(make_settings(fake_vars={"fake_step_delay": 12}))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        job_id = start_install(client)
        read_until(client, f"/api/jobs/{job_id}/stream", lambda e: SLOW_STEP in e["data"].get("line", ""))
        assert client.post(f"/api/whisperx/install/{job_id}/cancel").status_code == 401
        response = client.post(f"/api/whisperx/install/{job_id}/cancel", headers=AUTH)
        assert response.status_code == 202
        job = wait_for_job(client, job_id, timeout=20)
        events = sse_events(client, f"/api/jobs/{job_id}/stream")
        assert client.post(f"/api/whisperx/install/{job_id}/cancel", headers=AUTH).status_code == 409
    assert job["state"] == "canceled"
    assert events[-1]["data"]["state"] == "canceled"
    lines = [e["data"]["line"] for e in events if e["data"].get("line")]
    assert SLOW_STEP in lines[-1], "the 12 s step was stopped, not waited out: no result, no later task"
    assert [e["data"]["phase"] for e in events if e["event"] == "phase"] == ["preflight", "failed"]


def test_the_runner_environment_and_artifacts_hold_no_secret(
    make_settings, serve, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """ansible-runner writes its whole environment to artifacts/<id>/command: only an allowlist gets there."""
    monkeypatch.setenv("HF_TOKEN", "hf_envTokenThatMustNotLeak123")
    monkeypatch.setenv("SPARK_CONTROL_API_TOKEN", API_TOKEN)
    monkeypatch.setenv("SOME_SERVICE_PASSWORD", "password-that-must-not-leak")
    token = "hf_bodyTokenThatMustNotLeak456"
    settings = make_settings()
    server = serve(settings)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        job_id = start_install(client, {"hf_token": token})
        wait_for_job(client, job_id)
        exposed = client.get(f"/api/jobs/{job_id}").text + client.get(f"/api/jobs/{job_id}/stream").text
    job_dir = settings.jobs_dir / job_id
    command = json.loads((job_dir / "artifacts" / job_id / "command").read_text())
    assert "HF_TOKEN" not in command["env"] and "SPARK_CONTROL_API_TOKEN" not in command["env"]
    assert os.path.dirname(os.sys.executable) in command["env"]["PATH"].split(os.pathsep)[0]
    everything = exposed.encode() + b"".join(p.read_bytes() for p in settings.data_dir.rglob("*") if p.is_file())
    for secret in (token, "hf_envTokenThatMustNotLeak123", API_TOKEN, "password-that-must-not-leak"):
        assert secret.encode() not in everything
    assert not list(settings.secrets_dir.glob("hf_token-*")), "the per-job token copy is gone after the job"
    extravars = json.loads((job_dir / "job.json").read_text())["extravars"]
    assert extravars["whisperx_hf_token_file"].startswith(str(settings.secrets_dir))


def test_install_variables_follow_the_settings(make_settings, serve, tmp_path: Path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text(json.dumps({"models": [{"name": "whisper-tiny.en", "kind": "whisper"}]}))
    settings = make_settings(
        whisperx_container="ctl-whisperx-asr",
        whisperx_port=18002,
        whisperx_model_bundle=bundle,
        whisperx_bundle_model="tiny.en",
        whisperx_base_image="spark-inference/debian:bookworm",
        whisperx_memory="6g",
        whisperx_extra_ca_certs="/usr/local/share/ca-certificates",
        whisperx_env='{"WHISPERX_DEVICE": "cpu"}',
    )
    server = serve(settings)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        job_id = start_install(client)
        wait_for_job(client, job_id)
        other = start_install(client, {"model": "base"})
        wait_for_job(client, other)
    variables = json.loads((settings.jobs_dir / job_id / "job.json").read_text())["extravars"]
    inventory = json.loads((settings.jobs_dir / job_id / "inventory" / "hosts.json").read_text())
    # The backend's own container, port and key copy are host vars, so each host of a group can have its own.
    assert inventory["all"]["children"]["whisperx_hosts"]["hosts"]["spark2-host"] == {
        "ansible_host": "127.0.0.1",
        "ansible_port": 22,
        "whisperx_container_name": "ctl-whisperx-asr",
        "whisperx_port": 18002,
        "whisperx_api_key_dest": str(settings.secrets_dir / "whisperx-api-key"),
    }
    assert variables == {
        "whisperx_model": "tiny.en",
        "whisperx_model_bundle": str(bundle),
        "whisperx_base_image": "spark-inference/debian:bookworm",
        "whisperx_memory": "6g",
        "whisperx_extra_ca_certs": ["/usr/local/share/ca-certificates"],
        "whisperx_env": {"WHISPERX_DEVICE": "cpu"},
    }
    assert json.loads((settings.jobs_dir / other / "job.json").read_text())["extravars"]["whisperx_model"] == "base"


def test_jobs_survive_a_restart_and_a_job_cut_off_is_interrupted(make_settings, serve, tmp_path: Path):
    """A finished job replays identically after a restart; one running when the server died is interrupted."""
    settings = make_settings()
    first = serve(settings)
    with httpx.Client(base_url=first.url, timeout=30) as client:
        done_id = start_install(client)
        wait_for_job(client, done_id)
        before = sse_events(client, f"/api/whisperx/install/{done_id}/stream")
    first.stop()

    # What a server killed mid-install leaves behind: a record still saying running, some events.
    cut = settings.jobs_dir / "20250101-000000-abcdef"
    (cut / "artifacts" / cut.name).mkdir(parents=True)
    source = settings.jobs_dir / done_id / "artifacts" / done_id / "job_events"
    kept = sorted(source.glob("*.json"), key=lambda p: int(p.name.split("-")[0]))[:12]
    (cut / "artifacts" / cut.name / "job_events").mkdir()
    for path in kept:
        (cut / "artifacts" / cut.name / "job_events" / path.name).write_bytes(path.read_bytes())
    record = json.loads((settings.jobs_dir / done_id / "job.json").read_text())
    record.update(id=cut.name, state="running", finished_at=None, rc=None, phase="preflight", final_event_id=None)
    (cut / "job.json").write_text(json.dumps(record))

    second = serve(make_settings())
    with httpx.Client(base_url=second.url, timeout=30) as client:
        listed = {j["job_id"]: j for j in client.get("/api/whisperx/install").json()}
        after = sse_events(client, f"/api/whisperx/install/{done_id}/stream")
        cut_events = sse_events(client, f"/api/whisperx/install/{cut.name}/stream")
        status = client.get("/api/whisperx/status").json()
    assert after == before
    assert listed[done_id]["state"] == "successful"
    assert listed[cut.name]["state"] == "interrupted" and listed[cut.name]["phase"] == "failed"
    assert listed[cut.name]["finished_at"]
    assert cut_events[-1]["event"] == "done" and cut_events[-1]["data"] == {"state": "interrupted", "rc": None}
    assert [e["id"] for e in cut_events[:-2]] == [e["id"] for e in before if e["id"] <= cut_events[-3]["id"]]
    assert status["job"]["id"] in (done_id, cut.name)


def test_a_server_killed_mid_install_reports_it_interrupted_and_stops_the_orphan(make_settings, tmp_path: Path):
    """kill -9 of a real spark-control process; the restarted one finds the job interrupted."""
    import signal
    import subprocess
    import sys

    import psutil

    from tests.control.helpers import free_port

    settings = make_settings(fake_vars={"fake_step_delay": 30})
    port = free_port()
    env = {
        **os.environ,
        "SPARK2_HOST": "127.0.0.1",
        "SPARK_CONTROL_DATA_DIR": str(settings.data_dir),
        "SPARK_CONTROL_PLAYBOOKS_DIR": str(settings.playbooks_dir),
        "SPARK_CONTROL_API_TOKEN": API_TOKEN,
        "SPARK_CONTROL_PORT": str(port),
        "SPARK_CONTROL_WATCHDOG": "false",
        "WHISPERX_URL": f"http://127.0.0.1:{free_port()}",
    }

    def launch() -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-m", "spark_control"], env=env, cwd=Path(__file__).parents[2])
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), timeout=30)
        return process

    process = launch()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            job_id = start_install(client)
            job = wait_until(lambda: (j := client.get(f"/api/jobs/{job_id}").json())["phase"] == "preflight" and j)
            pid = wait_until(lambda: json.loads((settings.jobs_dir / job_id / "job.json").read_text())["pid"])
        assert job["state"] == "running"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        assert psutil.pid_exists(pid), "pexpect's child outlives its parent"

        process = launch()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            job = client.get(f"/api/whisperx/install/{job_id}").json()
            assert client.post("/api/whisperx/install", headers=AUTH).status_code == 202, "the lock is free again"
        assert job["state"] == "interrupted"
        wait_until(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_unknown_jobs_are_404(make_settings, serve):
    server = serve(make_settings())
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/api/whisperx/install/20250101-000000-000000").status_code == 404
        assert client.get("/api/jobs/../../etc/passwd").status_code == 404
        assert client.get("/api/jobs/nope/stream").status_code == 404


Serve = Callable[[Settings], LiveServer]


def test_a_graceful_shutdown_interrupts_a_running_install(make_settings, serve):
    settings = make_settings(fake_vars={"fake_step_delay": 12})
    server = serve(settings)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        job_id = start_install(client)
        wait_until(lambda: client.get(f"/api/jobs/{job_id}").json()["phase"] == "preflight")
    server.stop()
    record = json.loads((settings.jobs_dir / job_id / "job.json").read_text())
    assert record["state"] == "interrupted" and record["phase"] == "failed"
    again = serve(make_settings())
    with httpx.Client(base_url=again.url, timeout=30) as client:
        events = sse_events(client, f"/api/jobs/{job_id}/stream")
    assert events[-1]["data"] == {"state": "interrupted", "rc": 254}


def test_a_job_the_runner_finished_just_before_the_server_died_keeps_its_outcome(make_settings, serve):
    settings = make_settings()
    first = serve(settings)
    with httpx.Client(base_url=first.url, timeout=30) as client:
        job_id = start_install(client)
        wait_for_job(client, job_id)
    first.stop()
    path = settings.jobs_dir / job_id / "job.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "state": "running", "rc": None, "result": {}, "final_event_id": None}))
    second = serve(make_settings())
    with httpx.Client(base_url=second.url, timeout=30) as client:
        job = client.get(f"/api/whisperx/install/{job_id}").json()
    assert (job["state"], job["rc"], job["phase"]) == ("successful", 0, "ready")
    assert job["result"]["whisperx_status"]["installed"] is True


def test_a_cancel_in_start_or_load_puts_the_previous_container_back_and_the_log_says_so(
    make_settings, serve, tmp_path: Path
):
    """Canceling stops the playbook, so its rescue never runs: spark-control starts the rollback playbook itself."""
    settings = make_settings({"fake_lines": 2, "fake_gate_phase": "load", "fake_gate_file": str(tmp_path / "never")})
    server = serve(settings)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        job_id = start_install(client)
        wait_until(lambda: client.get(f"/api/jobs/{job_id}").json()["phase"] == "load", 60)
        assert client.post(f"/api/whisperx/install/{job_id}/cancel", headers=AUTH).status_code == 202
        events = sse_events(client, f"/api/whisperx/install/{job_id}/stream")

        def rollback() -> dict | None:
            jobs = client.get("/api/whisperx/install").json()
            done = [j for j in jobs if j["kind"] == "rollback" and j["state"] != "running"]
            return done[0] if done else None

        finished = wait_until(rollback, 60)
        canceled = client.get(f"/api/jobs/{job_id}").json()
        status = client.get("/api/whisperx/status").json()
    lines = [e["data"]["line"] for e in events if e["event"] == "log"]
    assert (
        "canceled during the load phase" in lines[-1] and "a rollback job puts the previous container back" in lines[-1]
    )
    assert events[-1]["data"]["state"] == "canceled"
    assert finished["state"] == "successful" and finished["trigger"] == "cancel" and finished["action"] == "rollback"
    assert canceled["state"] == "canceled" and finished["job_id"] in canceled["error"]
    assert (
        status["job"]["id"] == finished["job_id"] and status["checks"]["container"]["image"] == "whisperx-asr:previous"
    )


def test_a_cancel_before_the_container_is_touched_needs_no_rollback(make_settings, serve, tmp_path: Path):
    settings = make_settings({"fake_lines": 2, "fake_gate_phase": "build", "fake_gate_file": str(tmp_path / "never")})
    server = serve(settings)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        job_id = start_install(client)
        wait_until(lambda: client.get(f"/api/jobs/{job_id}").json()["phase"] == "build", 60)
        client.post(f"/api/whisperx/install/{job_id}/cancel", headers=AUTH)
        events = sse_events(client, f"/api/whisperx/install/{job_id}/stream")
        second = start_install(client)  # the lock is free at once: no rollback took it
        kinds = [j["kind"] for j in client.get("/api/jobs").json()]
    assert events[-1]["data"]["state"] == "canceled"
    assert not any("rollback" in e["data"].get("line", "") for e in events if e["event"] == "log")
    assert "rollback" not in kinds and second
