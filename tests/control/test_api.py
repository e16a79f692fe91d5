"""The HTTP surface: who may do what, clear refusals, and a status that never waits on SSH."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from spark_control.security import SESSION_COOKIE, Auth
from tests.control.helpers import API_TOKEN, AUTH, dashboard_headers, wait_for_job, wait_until
from tests.control.test_install_jobs import start_install

MUTATING = [
    ("POST", "/api/whisperx/install"),
    ("POST", "/api/whisperx/remove"),
    ("POST", "/api/whisperx/install/20250101-000000-abcdef/cancel"),
    ("POST", "/api/jobs/20250101-000000-abcdef/cancel"),
    ("POST", "/api/services/parakeet/restart"),
    ("POST", "/api/services/parakeet/start"),
    ("POST", "/api/services/magpie/stop"),
    ("POST", "/api/services/parakeet/deep-check"),
]


@pytest.mark.parametrize(("method", "path"), MUTATING)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {API_TOKEN}x"},
        {"Authorization": f"Basic {API_TOKEN}"},
        {"Authorization": API_TOKEN},
    ],
    ids=["none", "wrong", "longer", "basic", "bare"],
)
def test_mutating_endpoints_need_the_api_token(make_settings, serve, method, path, headers):
    server = serve(make_settings())
    response = httpx.request(method, server.url + path, headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "API token" in response.json()["detail"]


def test_reads_are_open_by_default(make_settings, serve):
    server = serve(make_settings())
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/api/whisperx/status").status_code == 200
        assert client.get("/api/services").status_code == 200
        assert client.get("/api/jobs").status_code == 200
        assert client.get("/healthz").json()["status"] == "ok"


def test_a_session_cookie_lasts_its_max_age_and_no_longer(make_settings, serve):
    """A cookie carries when it was issued; past SPARK_CONTROL_SESSION_MAX_AGE it is refused like none at all."""
    server = serve(make_settings(session_max_age_s=3600))
    auth = server.app.state.auth  # the server's own cookie minting, at chosen ages
    action = "/api/jobs/20250101-000000-abcdef/cancel"  # 404 once authorised: no job has that id

    def act(cookie: str) -> httpx.Response:
        with httpx.Client(base_url=server.url, timeout=10, cookies={SESSION_COOKIE: cookie}) as client:
            return client.post(action, headers=dashboard_headers(server.url))

    def signed_in(cookie: str) -> bool:
        return httpx.get(f"{server.url}/api/session", cookies={SESSION_COOKIE: cookie}, timeout=10).json()[
            "authenticated"
        ]

    login = httpx.post(f"{server.url}/api/session", json={"token": API_TOKEN}, timeout=10)
    assert login.status_code == 204
    fresh = login.cookies[SESSION_COOKIE]
    assert act(fresh).status_code == 404 and signed_in(fresh)
    almost = auth.session_value(issued_at=time.time() - 3590)
    assert act(almost).status_code == 404 and signed_in(almost)

    expired = auth.session_value(issued_at=time.time() - 3610)
    refused = act(expired)
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert "session has expired" in refused.json()["detail"] and "POST /api/session" in refused.json()["detail"]
    assert not signed_in(expired)

    mac = expired.partition(".")[2]
    other = Auth(make_settings(api_token="another-token-of-another-server"))
    for forged in (
        f"{int(time.time())}.{mac}",  # a new time on an old signature
        auth.session_value(issued_at=time.time() + 3600),  # from the future
        other.session_value(),  # signed with another token
        mac,  # the signature alone
        "",
    ):
        assert act(forged).status_code == 401, forged
        assert not signed_in(forged)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "huge"}, "Input should be 'tiny', 'base', 'small', 'medium' or 'large-v3'"),
        ({"hf_token": "short"}, "hf_token must be 8 to 512 characters"),
        ({"hf_token": "hf_has a space inside"}, "without spaces"),
        ({"modle": "tiny"}, "Extra inputs are not permitted"),
        ([1, 2], "valid dictionary"),
    ],
)
def test_bad_install_bodies_get_a_clear_422(make_settings, serve, body, message):
    server = serve(make_settings())
    response = httpx.post(f"{server.url}/api/whisperx/install", json=body, headers=AUTH, timeout=10)
    assert response.status_code == 422
    assert message in response.text
    if isinstance(body, dict) and "hf_token" in body:
        assert body["hf_token"] not in response.text, "a rejected token is never echoed back"


def test_a_malformed_json_body_is_a_422_not_a_500(make_settings, serve):
    server = serve(make_settings())
    response = httpx.post(
        f"{server.url}/api/whisperx/install",
        content=b"{not json",
        headers={**AUTH, "content-type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 422
    assert "JSON decode error" in response.text


@pytest.fixture
def hung_host() -> Iterator[tuple[str, int]]:
    """(address, port) that accepts connections and never answers: a wedged service, an SSH port that hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()


def test_status_answers_from_the_cache_while_spark2_hangs_and_says_so(make_settings, serve, hung_host):
    """/health and SSH both hang. The status is answered while the status playbook is still stuck on SSH."""
    address, port = hung_host
    settings = make_settings(
        whisperx_url=f"http://{address}:{port}",
        spark2_ssh_port=port,
        ssh_connect_timeout_s=20,  # the playbook hangs this long per attempt; /health gives up after 1 s
        health_timeout_s=1.0,
        container_state_max_age_s=0,
        playbooks_dir=None,  # the real collection playbooks: their SSH check fails and says why
    )
    server = serve(settings)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        first = client.get("/api/whisperx/status")
        refresh = client.get("/api/jobs", params={"kind": "status"}).json()
        assert first.status_code == 200
        body = first.json()
        assert [job["state"] for job in refresh] == ["running"], "answered before the SSH check could end"
        assert body["installed"] is False and body["running"] is False and body["healthy"] is False
        assert body["answered_from"] == "cache" and body["host_reachable"] is None
        assert body["checks"]["health"]["ok"] is False
        assert body["checks"]["health"]["error"], "why /health gave no answer"
        assert body["checks"]["container"]["source"] == "unknown"
        assert body["checks"]["container"]["refreshing"] is True

        wait_for_job(client, refresh[0]["job_id"], timeout=180)
        later = client.get("/api/whisperx/status").json()
        again = client.get("/api/jobs", params={"kind": "status"}).json()
    assert [job["state"] for job in again] == ["running", "failed"], "the next refresh is underway, not awaited"
    assert later["answered_from"] == "cache" and later["checks"]["container"]["refreshing"] is True
    assert later["host_reachable"] is False
    container = later["checks"]["container"]
    assert "Cannot reach" in container["error"] and f"127.0.0.1:{port}" in container["error"]
    assert container["source"] == "status job" and container["job_id"] == refresh[0]["job_id"]


def test_status_reports_a_live_service_and_the_last_install(make_settings, serve, standin):
    from fastapi import FastAPI

    whisperx = FastAPI()

    @whisperx.get("/health")
    def health() -> dict:
        return {"status": "ready", "whisper_loaded": True, "diarizer_loaded": True, "model": "tiny.en"}

    fake = serve(whisperx)
    server = serve(make_settings(whisperx_url=fake.url))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        job_id = start_install(client)
        wait_for_job(client, job_id)
        body = client.get("/api/whisperx/status").json()
    assert body["installed"] and body["running"] and body["healthy"]
    assert body["health"]["model"] == "tiny.en"
    assert body["answered_from"] == "live" and body["host_reachable"] is True
    assert body["url"] == fake.url
    assert body["job"] == {"id": job_id, "state": "successful", "phase": "ready"}
    assert body["checks"]["container"]["source"] == "install job"


def test_openapi_documents_every_contract_route(make_settings, serve):
    server = serve(make_settings())
    paths = httpx.get(f"{server.url}/openapi.json", timeout=10).json()["paths"]
    for path in (
        "/api/whisperx/status",
        "/api/whisperx/install",
        "/api/whisperx/install/{job_id}",
        "/api/whisperx/install/{job_id}/stream",
        "/api/audio/transcribe-with-speakers",
        "/api/services",
        "/api/services/{name}/{action}",
        "/api/services/{name}/deep-check",
    ):
        assert path in paths
    schema = paths["/api/audio/transcribe-with-speakers"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in schema


def test_a_second_concurrent_install_request_never_starts_two(make_settings, serve):
    import concurrent.futures

    server = serve(make_settings(fake_vars={"fake_step_delay": 1}))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda _: httpx.post(f"{server.url}/api/whisperx/install", headers=AUTH, timeout=30), range(8))
        )
    started = [a for a in answers if a.status_code == 202]
    refused = [a for a in answers if a.status_code == 409]
    assert len(started) == 1 and len(refused) == 7
    assert {a.json()["job_id"] for a in refused} == {started[0].json()["job_id"]}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        wait_until(lambda: client.get("/api/jobs", params={"kind": "install"}).json()[0]["state"] != "running", 60)
