"""Several WhisperX backends (WHISPERX_HOSTS): the least-busy ready one gets the work, the next one takes over when
it fails, the legacy service only when none can; each backend is its own managed service and status entry."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi import Request
from fastapi.responses import JSONResponse

from spark_control.config import write_private
from tests.control.helpers import AUTH, LiveServer, wait_for_job, wait_until
from tests.control.test_proxy import FakeWhisperx, legacy_requests, post_clip
from tests.control.test_services import services_by_name, watchdog_rounds


class Backend(FakeWhisperx):
    """A fake WhisperX that can hold its transcriptions at a gate and answers the job API as itself."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.gate: threading.Event | None = None
        self.jobs: dict[str, dict[str, Any]] = {}
        self.keys: list[str | None] = []  # the Authorization each transcription came with
        transcribe = next(
            r for r in self.app.router.routes if getattr(r, "path", "") == "/v1/audio/transcribe-with-speakers"
        )
        self.app.router.routes.remove(transcribe)
        answer = transcribe.endpoint  # type: ignore[attr-defined]

        @self.app.post("/v1/audio/transcribe-with-speakers")
        async def held(request: Request) -> JSONResponse:
            self.keys.append(request.headers.get("authorization"))
            if self.gate is not None:
                await asyncio.to_thread(self.gate.wait, 30)
            return await answer(request)

        @self.app.post("/v1/audio/jobs", status_code=202)
        async def submit(request: Request) -> dict[str, Any]:
            await request.body()
            job = {"id": f"job_{len(self.jobs):04d}{self.name[-1] * 12}", "object": "transcription.job"}
            job["created_at"] = 1764640000 + len(self.jobs) * 10 + (5 if self.name.endswith("b") else 0)
            self.jobs[job["id"]] = {**job, "held_by": self.name}
            return job

        @self.app.get("/v1/audio/jobs")
        def listing(limit: int = 20, after: str | None = None) -> dict[str, Any]:
            data = sorted(self.jobs.values(), key=lambda j: j["created_at"], reverse=True)
            if after is not None:
                data = data[[j["id"] for j in data].index(after) + 1 :]
            return {"object": "list", "data": data[:limit], "has_more": len(data) > limit}

        @self.app.get("/v1/audio/jobs/{job_id}")
        def read(job_id: str) -> JSONResponse:
            if job_id not in self.jobs:
                return JSONResponse({"error": {"message": "no such job", "type": "x", "code": "not_found"}}, 404)
            return JSONResponse(self.jobs[job_id])

    def queue(self, running: int, waiting: int, limit: int = 4) -> None:
        self.health = {**self.health, "queue": {"running": running, "waiting": waiting, "limit": limit}}


@pytest.fixture
def pair(serve) -> tuple[Backend, Backend, LiveServer, LiveServer]:
    a, b = Backend("whisperx-a"), Backend("whisperx-b")
    return a, b, serve(a.app), serve(b.app)


def two_backends(make_settings, first: LiveServer, second: LiveServer, **overrides: Any):
    """Settings for two backends on this machine; the first on WHISPERX_PORT, so it is whisperx@127.0.0.1."""
    return make_settings(
        whisperx_url=None,
        whisperx_hosts=f"127.0.0.1:{first.port},127.0.0.1:{second.port}",
        whisperx_port=first.port,
        **overrides,
    )


def names(first: LiveServer, second: LiveServer) -> tuple[str, str]:
    return "whisperx@127.0.0.1", f"whisperx@127.0.0.1_{second.port}"


def test_requests_go_to_the_backend_with_the_shorter_queue(make_settings, serve, pair, legacy):
    a, b, a_server, b_server = pair
    a.queue(running=1, waiting=3)
    server = serve(two_backends(make_settings, a_server, b_server, legacy_asr_url=legacy.url))
    answers = [post_clip(server) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 200]
    assert {r.headers["X-ASR-Backend"] for r in answers} == {names(a_server, b_server)[1]}
    assert (len(a.received), len(b.received), legacy_requests(legacy)) == (0, 3, 0)

    a.queue(running=0, waiting=0)
    b.queue(running=1, waiting=2)
    assert post_clip(server).headers["X-ASR-Backend"] == "whisperx@127.0.0.1"


def test_a_burst_spreads_over_the_backends_before_their_health_says_so(make_settings, serve, pair, legacy):
    """The health cache is long, so both report an empty queue throughout: what the proxy sent counts."""
    a, b, a_server, b_server = pair
    a.gate = b.gate = threading.Event()
    server = serve(two_backends(make_settings, a_server, b_server, legacy_asr_url=legacy.url, health_cache_s=60))
    with ThreadPoolExecutor(6) as pool:
        pending = [pool.submit(post_clip, server) for _ in range(6)]
        status = wait_until(  # every request reached a backend, none is done
            lambda: (
                (s := httpx.get(f"{server.url}/api/whisperx/status", timeout=10).json())
                and sum(b["in_flight"] for b in s["backends"]) == 6
                and s
            ),
            30,
        )
        a.gate.set()
        answers = [p.result() for p in pending]
    assert [b["in_flight"] for b in status["backends"]] == [3, 3]
    assert sorted(r.headers["X-ASR-Backend"] for r in answers) == sorted([*names(a_server, b_server)] * 3)
    after = httpx.get(f"{server.url}/api/whisperx/status", timeout=10).json()
    assert [b["in_flight"] for b in after["backends"]] == [0, 0], "relayed answers no longer count"


def test_a_backend_that_drops_the_request_or_answers_503_hands_it_to_the_next(
    make_settings, serve, pair, legacy, dropping_whisperx
):
    a, b, a_server, b_server = pair
    dropping_port = int(dropping_whisperx.rsplit(":", 1)[1])
    b.queue(running=1, waiting=0)  # busier than the dropping one, so it is asked second
    settings = make_settings(
        whisperx_url=None,
        whisperx_hosts=f"127.0.0.1:{dropping_port},127.0.0.1:{b_server.port}",
        whisperx_port=dropping_port,
        legacy_asr_url=legacy.url,
    )
    server = serve(settings)
    answer = post_clip(server)
    assert answer.status_code == 200 and answer.headers["X-ASR-Backend"] == f"whisperx@127.0.0.1_{b_server.port}"
    assert len(b.received) == 1 and legacy_requests(legacy) == 0

    a.answer = (503, {"error": {"message": "restarting", "type": "server_error", "code": "unavailable"}}, {})
    server = serve(two_backends(make_settings, a_server, b_server, legacy_asr_url=legacy.url))
    answer = post_clip(server)
    assert answer.status_code == 200 and answer.headers["X-ASR-Backend"] == names(a_server, b_server)[1]
    assert (len(a.received), len(b.received), legacy_requests(legacy)) == (1, 2, 0)

    a.answer = (401, {"error": {"message": "bad key", "type": "invalid_request_error", "code": "invalid_api_key"}}, {})
    answer = post_clip(server)  # spark-control's copy of a's key is stale: b answers, the key is fetched again
    assert answer.status_code == 200 and answer.headers["X-ASR-Backend"] == names(a_server, b_server)[1]
    assert wait_until(lambda: httpx.get(f"{server.url}/api/jobs", params={"kind": "status"}, timeout=10).json(), 30)


def test_a_full_backend_is_skipped_and_when_all_are_full_the_caller_is_told_to_wait(make_settings, serve, pair, legacy):
    a, b, a_server, b_server = pair
    a.queue(running=1, waiting=4, limit=4)
    server = serve(two_backends(make_settings, a_server, b_server, legacy_asr_url=legacy.url))
    assert post_clip(server).headers["X-ASR-Backend"] == names(a_server, b_server)[1]

    busy = {"error": {"message": "queue full", "type": "rate_limit_error", "code": "queue_full"}}
    a.answer = b.answer = (429, busy, {"Retry-After": "7"})
    answer = post_clip(server)
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "7"
    assert answer.headers["X-ASR-Backend"].startswith("whisperx@"), "no backend had room: not sent to legacy"
    assert legacy_requests(legacy) == 0


def test_only_when_no_backend_can_diarize_does_the_legacy_service_answer(make_settings, serve, pair, legacy):
    a, _b, a_server, b_server = pair
    a.health = {**a.health, "diarizer_loaded": False, "status": "loading"}
    b_server.stop()
    server = serve(two_backends(make_settings, a_server, b_server, legacy_asr_url=legacy.url))
    answer = post_clip(server)
    assert answer.status_code == 200 and answer.headers["X-ASR-Backend"] == "legacy"
    reason = answer.headers["X-ASR-Fallback-Reason"]
    assert "whisperx@127.0.0.1: whisperx diarizer not loaded" in reason and f"_{b_server.port}:" in reason
    assert legacy_requests(legacy) == 1 and not a.received


def test_a_job_stays_with_the_backend_that_took_it_and_the_list_merges_them(make_settings, serve, pair):
    a, b, a_server, b_server = pair
    server = serve(two_backends(make_settings, a_server, b_server))
    a.queue(running=1, waiting=1)
    first = httpx.post(f"{server.url}/api/audio/jobs", files={"file": ("a.wav", b"RIFF", "audio/wav")}, timeout=30)
    a.queue(running=0, waiting=0)
    b.queue(running=1, waiting=1)
    second = httpx.post(f"{server.url}/api/audio/jobs", files={"file": ("b.wav", b"RIFF", "audio/wav")}, timeout=30)
    assert (first.status_code, second.status_code) == (202, 202)
    assert first.headers["X-ASR-Backend"] == names(a_server, b_server)[1]
    assert second.headers["X-ASR-Backend"] == "whisperx@127.0.0.1"
    b.queue(running=0, waiting=0)  # new work would go to either: reads still go where each job is
    for submitted, holder in ((first, "whisperx-b"), (second, "whisperx-a")):
        job = httpx.get(f"{server.url}/api/audio/jobs/{submitted.json()['id']}", timeout=10)
        assert job.status_code == 200 and job.json()["held_by"] == holder
    listing = httpx.get(f"{server.url}/api/audio/jobs", timeout=10).json()
    assert [j["held_by"] for j in listing["data"]] == ["whisperx-b", "whisperx-a"], "newest first, across backends"


def test_each_backend_is_its_own_service_and_status_entry_once_installed(make_settings, serve, pair):
    a, _b, a_server, b_server = pair
    a.health = {**a.health, "model": "tiny.en", "version": "1.2.3"}
    settings = two_backends(make_settings, a_server, b_server)
    server = serve(settings)
    first, second = names(a_server, b_server)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job = client.post("/api/whisperx/install", headers=AUTH).json()["job_id"]
        done = wait_for_job(client, job)
        services = {s["name"]: s for s in client.get("/api/services").json()}
        status = client.get("/api/whisperx/status").json()
        restart = client.post(f"/api/services/{second}/restart", headers=AUTH)
    assert done["state"] == "successful" and done["hosts"] == {first: "ready", second: "ready"}
    assert set(services) == {"parakeet", "magpie", first, second}
    assert services[second]["container"] == f"whisperx-asr-{b_server.port}" and services[second]["host_group"] == second
    assert services[first]["url"] == a_server.url and services[second]["url"] == b_server.url
    assert (services[first]["title"], services[second]["title"]) == (
        "WhisperX on 127.0.0.1",
        f"WhisperX on 127.0.0.1:{b_server.port}",
    )
    assert [x["name"] for x in status["backends"]] == [first, second]
    assert status["backends"][0]["health"]["version"] == "1.2.3" and status["healthy"] is True
    assert restart.status_code == 200 and restart.json()["result"]["name"] == f"whisperx-asr-{b_server.port}"


def test_a_host_that_fails_its_install_ends_the_rollout_before_the_next(make_settings, serve, pair):
    _, _, a_server, b_server = pair
    first, second = names(a_server, b_server)
    settings = two_backends(make_settings, a_server, b_server, fake_vars={"fake_fail_phase": "load",
                                                                         "fake_fail_hosts": [first]})  # fmt: skip
    server = serve(settings)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job = client.post("/api/whisperx/install", headers=AUTH).json()["job_id"]
        done = wait_for_job(client, job)
        events = client.get(f"/api/whisperx/install/{job}/stream").text
        seen = [b["checks"]["container"] for b in client.get("/api/whisperx/status").json()["backends"]]
    assert done["state"] == "failed" and done["hosts"] == {first: "failed"}, "the second host was never touched"
    assert seen[0]["error"] and seen[0]["job_id"] == job
    assert seen[1]["source"] == "unknown" and seen[1]["error"] is None, "nothing is known of a host not reached"
    assert f'"host":"{first}"' in events and second not in events, "each line says which host it is about"


def test_the_watchdog_restarts_only_the_backend_that_fails(make_settings, serve, pair):
    _, b, a_server, b_server = pair
    first, second = names(a_server, b_server)
    settings = two_backends(
        make_settings,
        a_server,
        b_server,
        watchdog_enabled=True,
        watchdog_interval_s=0.2,
        watchdog_failures=2,
        watchdog_backoff_s=60,
        watchdog_start_grace_s=0,
    )
    server = serve(settings)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        wait_for_job(client, client.post("/api/whisperx/install", headers=AUTH).json()["job_id"])
        assert watchdog_rounds(client, second, 3)["restarts"] == [], "healthy: watched, left alone"
        b.health = {**b.health, "status": "error", "error": "CUDA error: an illegal memory access"}
        restart = wait_until(lambda: services_by_name(client)[second]["watchdog"]["restarts"], 30)[0]
        spared = watchdog_rounds(client, first, 3)
        job = client.get(f"/api/jobs/{restart['job_id']}").json()
    assert restart["reason"].startswith("2 failed health checks in a row")
    assert job["target"] == second and job["trigger"] == "watchdog"
    assert spared["restarts"] == [] and spared["consecutive_failures"] == 0


def test_the_merged_job_list_pages_through_every_backend_s_jobs_once(make_settings, serve, pair):
    """Jobs interleaved in time on two backends, read two at a time with `after`: each once, newest first."""
    a, b, a_server, b_server = pair
    server = serve(two_backends(make_settings, a_server, b_server))
    for n in range(4):
        for fake in (a, b):
            job = {"id": f"job_{n:02d}{fake.name[-1] * 14}", "object": "transcription.job"}
            fake.jobs[job["id"]] = {**job, "created_at": 1764640000 + 10 * n + (5 if fake is b else 0)}
    pages, after = [], None
    while True:
        params = {"limit": 2, **({"after": after} if after else {})}
        page = httpx.get(f"{server.url}/api/audio/jobs", params=params, timeout=10).json()
        pages.append([j["created_at"] - 1764640000 for j in page["data"]])
        if not page["has_more"]:
            break
        after = page["data"][-1]["id"]
        assert len(pages) < 10, pages
    assert pages == [[35, 30], [25, 20], [15, 10], [5, 0]]
    bad = httpx.get(f"{server.url}/api/audio/jobs", params={"limit": 500}, timeout=10)
    assert bad.status_code == 400 and "limit" in bad.json()["error"]["message"]
    # A job spark-control neither submitted nor listed is read where it is, not on the first backend.
    foreign = f"job_99{'b' * 14}"
    b.jobs[foreign] = {"id": foreign, "created_at": 1764650000, "held_by": "whisperx-b"}
    assert httpx.get(f"{server.url}/api/audio/jobs/{foreign}", timeout=10).json()["held_by"] == "whisperx-b"


def test_a_caller_that_leaves_stops_counting_on_its_backend(make_settings, serve, pair):
    """Routing must not see a backend as busy forever because its callers gave up."""
    a, b, a_server, b_server = pair
    a.gate = b.gate = threading.Event()
    server = serve(two_backends(make_settings, a_server, b_server))
    url = f"{server.url}/api/audio/transcribe-with-speakers"
    request = httpx.Request("POST", url, files={"file": ("meeting.wav", b"RIFF0000WAVE", "audio/wav")})
    caller = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    caller.request("POST", "/api/audio/transcribe-with-speakers", request.read(), dict(request.headers))

    def in_flight() -> list[int]:
        return [x["in_flight"] for x in httpx.get(f"{server.url}/api/whisperx/status", timeout=10).json()["backends"]]

    wait_until(lambda: a.keys or b.keys, 30)  # a backend holds the request
    assert sum(in_flight()) == 1
    caller.close()  # the caller gives up while WhisperX holds it
    assert wait_until(lambda: in_flight() == [0, 0], 30), "the abandoned request no longer counts"
    a.gate.set()


def test_a_second_host_added_keeps_the_first_one_s_key_and_state(make_settings, serve, pair):
    """WHISPERX_HOST alone, then WHISPERX_HOSTS with a second: the first backend is still the installed one that
    answers with the API key copied for it, before any playbook has run again."""
    a, b, a_server, b_server = pair
    settings = two_backends(make_settings, a_server, b_server)
    write_private(settings.secrets_dir / "whisperx-api-key", "key-of-the-one-backend")
    write_private(settings.data_dir / "state" / "whisperx.json", json.dumps({"installed": True, "running": True}))
    b.queue(running=1, waiting=2)
    server = serve(settings)
    assert post_clip(server).headers["X-ASR-Backend"] == "whisperx@127.0.0.1"
    assert a.keys == ["Bearer key-of-the-one-backend"]
    services = {s["name"] for s in httpx.get(f"{server.url}/api/services", timeout=10).json()}
    assert "whisperx@127.0.0.1" in services and names(a_server, b_server)[1] not in services
