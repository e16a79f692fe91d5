"""Managed services: the registry, actions through service.yml, deep checks, the watchdog."""

from __future__ import annotations

import concurrent.futures
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from spark_control.config import Settings
from spark_control.services import DEEP_CHECK_CLIP, DEEP_CHECK_TEXT
from tests.control.helpers import AUTH, LiveServer, wait_for_job, wait_until
from tests.control.test_install_jobs import start_install


@pytest.fixture
def clips(tmp_path: Path) -> Path:
    """Recorded answers for the legacy stand-in: the deep-check clip and its text."""
    directory = tmp_path / "clips"
    directory.mkdir()
    (directory / "deep_check.wav").write_bytes(DEEP_CHECK_CLIP.read_bytes())
    (directory / "deep_check.txt").write_text(DEEP_CHECK_TEXT)
    return directory


@pytest.fixture
def spark2(standin, clips: Path) -> dict[str, LiveServer]:
    return {"parakeet": standin("parakeet", [clips]), "magpie": standin("magpie")}


def services_by_name(client: httpx.Client) -> dict[str, dict]:
    return {s["name"]: s for s in client.get("/api/services").json()}


def watched(make_settings, spark2: dict[str, LiveServer], **watchdog: Any) -> Settings:
    """Settings for a watchdog test: the Spark 2 stand-ins, the watchdog on and looking every 0.2 s."""
    return make_settings(
        legacy_asr_url=spark2["parakeet"].url,
        magpie_url=spark2["magpie"].url,
        watchdog_enabled=True,
        watchdog_interval_s=0.2,
        **watchdog,
    )


def running_job(client: httpx.Client, service: str) -> dict | None:
    jobs = client.get("/api/jobs", params={"kind": "service"}).json()
    return next((j for j in jobs if j["target"] == service and j["state"] == "running"), None)


def watchdog_rounds(client: httpx.Client, service: str, rounds: int) -> dict:
    """The watchdog's view of `service` once it has looked at it `rounds` more times than now."""
    target = services_by_name(client)[service]["watchdog"]["checks"] + rounds
    return wait_until(lambda: (w := services_by_name(client)[service]["watchdog"])["checks"] >= target and w, 30)


def test_the_registry_lists_parakeet_and_magpie_and_whisperx_once_installed(make_settings, serve, spark2):
    settings = make_settings(legacy_asr_url=spark2["parakeet"].url, magpie_url=spark2["magpie"].url)
    server = serve(settings)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        before = services_by_name(client)
        assert (
            client.post("/api/services/whisperx/restart", headers=AUTH)
            .json()["detail"]
            .startswith("whisperx is not installed yet")
        )
        wait_for_job(client, start_install(client))
        after = services_by_name(client)
    assert set(before) == {"parakeet", "magpie"}
    assert set(after) == {"parakeet", "magpie", "whisperx"}
    parakeet = before["parakeet"]
    assert parakeet["healthy"] is True and parakeet["health_body"]["role"] == "parakeet"
    assert parakeet["container"] == "parakeet-asr" and parakeet["host_group"] == "spark2"
    assert before["magpie"]["health"]["url"] == f"{spark2['magpie'].url}/v1/health/ready"
    assert after["whisperx"]["host_group"] == "spark2-host" and after["whisperx"]["healthy"] is False
    assert parakeet["watchdog"]["restarts"] == [] and parakeet["intent"] == "running"


def test_actions_run_service_yml_and_report_its_result(make_settings, serve, spark2):
    settings = make_settings(legacy_asr_url=spark2["parakeet"].url, magpie_url=spark2["magpie"].url)
    server = serve(settings)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        stopped = client.post("/api/services/magpie/stop", headers=AUTH)
        started = client.post("/api/services/magpie/start", headers=AUTH)
        listed = services_by_name(client)["magpie"]
        unknown = client.post("/api/services/nope/restart", headers=AUTH)
        bad_action = client.post("/api/services/magpie/explode", headers=AUTH)
    assert stopped.status_code == 200, stopped.text
    assert stopped.json() | {"job_id": "x"} == {
        "name": "magpie",
        "action": "stop",
        "job_id": "x",
        "state": "successful",
        "rc": 0,
        "result": {"name": "magpie-tts", "action": "stop", "state": "exited", "running": False},
        "error": None,
    }
    assert started.json()["result"]["running"] is True
    assert listed["state"] == "running" and listed["intent"] == "running"
    assert listed["last_action"]["action"] == "start" and listed["last_action"]["state"] == "successful"
    variables = json.loads((settings.jobs_dir / stopped.json()["job_id"] / "job.json").read_text())["extravars"]
    assert variables == {
        "service_name": "magpie-tts",
        "service_action": "stop",
        "service_hosts": "spark2",
        "service_allowed_names": ["magpie-tts", "parakeet-asr", "whisperx-asr"],
    }
    assert unknown.status_code == 404 and "unknown service 'nope'" in unknown.json()["detail"]
    assert bad_action.status_code == 422 and "'start', 'stop' or 'restart'" in bad_action.text


def test_a_failed_action_is_a_502_with_the_reason_and_a_busy_service_a_409(make_settings, serve, spark2, tmp_path):
    gate = tmp_path / "gate"  # every action holds until the test opens it
    settings = make_settings(
        fake_vars={"fake_fail_services": ["parakeet-asr"], "fake_service_gate_file": str(gate)},
        legacy_asr_url=spark2["parakeet"].url,
        magpie_url=spark2["magpie"].url,
    )
    server = serve(settings)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        failed = client.post("/api/services/parakeet/restart", headers=AUTH)  # fails before the gate
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            first = pool.submit(client.post, "/api/services/magpie/restart", headers=AUTH)
            running = wait_until(lambda: running_job(client, "magpie"), 30, 0.05)
            second = client.post("/api/services/magpie/restart", headers=AUTH)
            gate.touch()
            assert first.result().status_code == 200
    assert failed.status_code == 502
    assert failed.json()["state"] == "failed" and "cannot restart parakeet-asr" in failed.json()["error"]
    assert second.status_code == 409 and second.json()["job_id"] == first.result().json()["job_id"] == running["job_id"]


def test_deep_check_runs_the_real_clip_through_the_asr_and_checks_the_words(make_settings, serve, spark2, standin):
    server = serve(make_settings(legacy_asr_url=spark2["parakeet"].url, magpie_url=spark2["magpie"].url))
    with httpx.Client(base_url=server.url, timeout=60) as client:
        good = client.post("/api/services/parakeet/deep-check", headers=AUTH).json()
        listed = services_by_name(client)["parakeet"]
    assert good["ok"] is True and good["match"] == 1.0 and good["heard"] == DEEP_CHECK_TEXT
    assert good["backend"] == "legacy" and good["speakers"] == 1
    assert listed["deep_check"]["ok"] is True

    amnesiac = standin("parakeet")  # a service that answers, but not with what was said
    server = serve(make_settings(legacy_asr_url=amnesiac.url))
    bad = httpx.post(f"{server.url}/api/services/parakeet/deep-check", headers=AUTH, timeout=60).json()
    assert bad["ok"] is False and "0% of the expected words" in bad["error"]


def test_deep_check_of_magpie_synthesizes_real_speech(make_settings, serve, spark2):
    server = serve(make_settings(legacy_asr_url="http://127.0.0.1:9", magpie_url=spark2["magpie"].url))
    result = httpx.post(f"{server.url}/api/services/magpie/deep-check", headers=AUTH, timeout=60).json()
    assert result["ok"] is True
    assert result["duration_s"] > 1.0
    assert result["roundtrip"] is None, "no ASR answered, so no round trip"


def test_deep_check_of_a_service_that_is_down_fails_clearly(make_settings, serve):
    server = serve(make_settings())
    result = httpx.post(f"{server.url}/api/services/magpie/deep-check", headers=AUTH, timeout=60).json()
    assert result["ok"] is False and "ConnectError" in result["error"]


def test_the_watchdog_restarts_after_n_failures_backs_off_and_gives_up(make_settings, serve, spark2):
    parakeet = spark2["parakeet"]
    settings = watched(
        make_settings,
        spark2,
        watchdog_failures=3,
        watchdog_backoff_s=1.5,
        watchdog_backoff_max_s=60,
        watchdog_max_restarts=2,
        watchdog_start_grace_s=0,  # the stand-in's fault outlives the stand-in playbook's restart: no boot to wait for
    )
    server = serve(settings)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert watchdog_rounds(client, "parakeet", 3)["restarts"] == [], "healthy: watched, left alone"
        httpx.post(f"{parakeet.url}/_standin/fault", json={"health": "500"})

        def restarts() -> list[dict]:
            return services_by_name(client)["parakeet"]["watchdog"]["restarts"]

        first = wait_until(lambda: restarts(), timeout=30)[-1]
        second = wait_until(lambda: len(restarts()) == 2 and restarts(), timeout=30)[0]
        watchdog = wait_until(lambda: (w := services_by_name(client)["parakeet"]["watchdog"])["gave_up_at"] and w, 15)
        assert len(watchdog_rounds(client, "parakeet", 5)["restarts"]) == 2, "the cap holds"
        assert services_by_name(client)["magpie"]["watchdog"]["restarts"] == [], "only the failing service"

        httpx.post(f"{parakeet.url}/_standin/fault", json={"health": "ok"})
        healed = wait_until(lambda: (w := services_by_name(client)["parakeet"]["watchdog"])["gave_up_at"] is None and w)
        job = client.get(f"/api/jobs/{first['job_id']}").json()

    assert first["reason"].startswith("3 failed health checks in a row"), "not before the third failure"
    waited = datetime.fromisoformat(second["at"]) - datetime.fromisoformat(first["at"])
    assert waited.total_seconds() >= 1.5, "the second restart waits for the backoff"
    assert {first["state"], second["state"]} <= {"successful", "running"}
    assert job["trigger"] == "watchdog" and job["action"] == "restart" and job["target"] == "parakeet"
    assert watchdog["restarts_last_hour"] == 2 and watchdog["max_restarts_per_hour"] == 2
    assert healed["consecutive_failures"] == 0


def test_a_service_just_started_gets_time_to_come_up_before_failures_count(make_settings, serve, spark2):
    """Started and not healthy yet (a model server booting): no restart until it has answered healthy once."""
    parakeet = spark2["parakeet"]
    settings = watched(make_settings, spark2, watchdog_failures=2, watchdog_backoff_s=0, watchdog_start_grace_s=3600)
    server = serve(settings)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.post("/api/services/parakeet/stop", headers=AUTH).status_code == 200
        httpx.post(f"{parakeet.url}/_standin/fault", json={"health": "500"})  # down, then booting after the start
        assert client.post("/api/services/parakeet/start", headers=AUTH).status_code == 200
        wait_until(lambda: services_by_name(client)["parakeet"]["watchdog"]["last_error"])
        booting = watchdog_rounds(client, "parakeet", 7)  # seven failed checks, five more than the threshold

        httpx.post(f"{parakeet.url}/_standin/fault", json={"health": "ok"})  # up
        wait_until(lambda: services_by_name(client)["parakeet"]["watchdog"]["start_grace_until"] is None)
        httpx.post(f"{parakeet.url}/_standin/fault", json={"health": "500"})  # and broken later: that counts
        restart = wait_until(lambda: services_by_name(client)["parakeet"]["watchdog"]["restarts"])[0]
    assert booting["restarts"] == [] and booting["consecutive_failures"] == 0
    assert booting["start_grace_until"] and "HTTP 500" in booting["last_error"]
    assert restart["reason"].startswith("2 failed health checks in a row")


def test_the_watchdog_leaves_a_service_the_operator_stopped_alone(make_settings, serve, spark2):
    parakeet = spark2["parakeet"]
    settings = watched(make_settings, spark2, watchdog_failures=2, watchdog_backoff_s=0)
    server = serve(settings)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.post("/api/services/parakeet/stop", headers=AUTH).status_code == 200
        httpx.post(f"{parakeet.url}/_standin/fault", json={"health": "500"})
        watchdog_rounds(client, "parakeet", 7)  # seven rounds: more than twice the threshold
        view = services_by_name(client)["parakeet"]
    assert view["intent"] == "stopped"
    assert view["watchdog"]["restarts"] == [] and view["watchdog"]["enabled"] is False


def test_restarts_survive_a_restart_of_spark_control(make_settings, serve, spark2):
    parakeet = spark2["parakeet"]
    settings = watched(make_settings, spark2, watchdog_failures=1, watchdog_backoff_s=60)
    first = serve(settings)
    httpx.post(f"{parakeet.url}/_standin/fault", json={"health": "500"})
    with httpx.Client(base_url=first.url, timeout=30) as client:
        wait_until(lambda: services_by_name(client)["parakeet"]["watchdog"]["restarts"])
    first.stop()
    second = serve(settings)
    with httpx.Client(base_url=second.url, timeout=30) as client:
        restarts = services_by_name(client)["parakeet"]["watchdog"]["restarts"]
    assert len(restarts) >= 1 and restarts[0]["reason"].startswith("1 failed health checks")
