"""The install log as Server-Sent Events: resumable, bounded, kept alive, readable by a browser."""

from __future__ import annotations

import socket
import time

import httpx

from tests.control.helpers import AUTH, dashboard_headers, read_until, wait_for_job, wait_until
from tests.control.test_install_jobs import sse_events, start_install


def test_a_client_cut_mid_install_gets_exactly_what_it_missed(make_settings, serve):
    server = serve(make_settings(fake_vars={"fake_step_delay": 0.5, "fake_lines": 3}))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        job_id = start_install(client)
        url = f"/api/whisperx/install/{job_id}/stream"
        first = read_until(client, url, lambda e: e["event"] == "phase" and e["data"]["phase"] == "ship")
        assert client.get(f"/api/jobs/{job_id}").json()["state"] == "running", "cut while the install runs"
        time.sleep(0.7)  # events happen while nobody listens
        second = read_until(
            client,
            url,
            lambda e: e["event"] == "phase" and e["data"]["phase"] == "start",
            headers={"Last-Event-ID": str(first[-1]["id"])},
        )
        rest = sse_events(client, url, headers={"Last-Event-ID": str(second[-1]["id"])})
        wait_for_job(client, job_id)
        whole = sse_events(client, url)

    resumed = first + second + rest
    assert resumed == whole, "no gap, no duplicate"
    assert [e["id"] for e in resumed] == sorted({e["id"] for e in resumed})
    assert whole[-1]["event"] == "done"


def test_after_query_parameter_resumes_like_last_event_id(make_settings, serve):
    server = serve(make_settings())
    with httpx.Client(base_url=server.url, timeout=30) as client:
        job_id = start_install(client)
        whole = sse_events(client, f"/api/jobs/{job_id}/stream")
        middle = whole[len(whole) // 2]["id"]
        by_query = sse_events(client, f"/api/jobs/{job_id}/stream?after={middle}")
        by_header = sse_events(client, f"/api/jobs/{job_id}/stream", headers={"Last-Event-ID": str(middle)})
    assert by_query == by_header == [e for e in whole if e["id"] > middle]


def test_a_finished_stream_ends_with_204_so_event_source_stops_reconnecting(make_settings, serve):
    server = serve(make_settings())
    with httpx.Client(base_url=server.url, timeout=30) as client:
        job_id = start_install(client)
        whole = sse_events(client, f"/api/jobs/{job_id}/stream")
        again = client.get(f"/api/jobs/{job_id}/stream", headers={"Last-Event-ID": str(whole[-1]["id"])})
        bad = client.get(f"/api/jobs/{job_id}/stream", headers={"Last-Event-ID": "12abc"})
    assert again.status_code == 204
    assert bad.status_code == 400 and "non-negative integer" in bad.json()["detail"]


def test_stream_headers_stop_proxy_buffering_and_heartbeats_keep_it_open(make_settings, serve):
    settings = make_settings(fake_vars={"fake_step_delay": 1.5}, stream_ping_s=0.3)
    server = serve(settings)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        job_id = start_install(client)
        with client.stream("GET", f"/api/whisperx/install/{job_id}/stream") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["x-accel-buffering"] == "no"
            assert "no-cache" in response.headers["cache-control"]
            pings = 0
            for line in response.iter_lines():
                pings += line.startswith(": ping")
                if pings >= 2:
                    break
        client.post(f"/api/jobs/{job_id}/cancel", headers=AUTH)
    assert pings >= 2


def test_a_client_that_stops_reading_neither_blocks_the_runner_nor_holds_memory(make_settings, serve):
    """Stalled readers: the install runs to its end while they have read nothing, and the buffer stays bounded."""
    settings = make_settings(
        fake_vars={"fake_lines": 150, "fake_step_delay": 0},
        stream_buffer_events=20,
        stream_send_timeout_s=1.0,
    )
    server = serve(settings)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job_id = start_install(client)
        stalled = []
        for _ in range(3):  # never read a byte after the request
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(f"GET /api/jobs/{job_id}/stream HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            stalled.append(sock)
        wait_for_job(client, job_id, timeout=120)  # the stalled sockets are still open and unread
        job = server.app.state.jobs.get(job_id)
        assert len(job._recent) <= 20
        # A late reader from the start gets every event back from the runner's files.
        whole = sse_events(client, f"/api/jobs/{job_id}/stream")
    for sock in stalled:
        sock.close()
    lines = [e for e in whole if e["event"] == "log" and "(item=" in e["data"]["line"]]
    assert len(lines) == 5 * 150
    assert whole[-1]["event"] == "done"


def test_a_late_reader_of_a_live_job_catches_up_from_disk_then_memory(make_settings, serve):
    settings = make_settings(fake_vars={"fake_lines": 40, "fake_step_delay": 0.5}, stream_buffer_events=10)
    server = serve(settings)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job_id = start_install(client)
        wait_until(lambda: client.get(f"/api/jobs/{job_id}").json()["phase"] in ("build", "start", "load"))
        live = sse_events(client, f"/api/jobs/{job_id}/stream")  # starts far behind the buffer
        again = sse_events(client, f"/api/jobs/{job_id}/stream")
    assert live == again
    assert [e["data"]["phase"] for e in live if e["event"] == "phase"] == [
        "preflight",
        "ship",
        "build",
        "start",
        "load",
        "ready",
    ]


def test_reads_can_require_the_token_and_a_session_cookie_lets_event_source_in(make_settings, serve):
    server = serve(make_settings(reads_require_token=True))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        job_id = start_install(client)
        assert client.get(f"/api/jobs/{job_id}/stream").status_code == 401
        assert client.get("/api/whisperx/status").status_code == 401
        assert client.post("/api/session", json={"token": "wrong"}).status_code == 401
        login = client.post("/api/session", json={"token": AUTH["Authorization"].split()[1]})
        assert login.status_code == 204
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert AUTH["Authorization"].split()[1].lower() not in cookie, "the cookie is not the token"
        assert client.get("/api/session").json()["authenticated"] is True
        events = sse_events(client, f"/api/jobs/{job_id}/stream")  # the cookie, as a browser would send it
        assert events[-1]["event"] == "done"
        install = client.post("/api/whisperx/install", headers=dashboard_headers(server.url))
        assert install.status_code == 202, "the cookie also authorises actions, sent as the dashboard sends them"
        client.delete("/api/session")
        client.cookies.clear()
        assert client.get("/api/session").json()["authenticated"] is False
