#!/usr/bin/env python3
"""Benchmark spark-control: runner-event-to-SSE-client latency, and the proxy's memory on a large upload.

    python scripts/bench_control.py --out docs/benchmarks/control.md      (make bench-control)

1. Latency. spark-control runs as its own process (`python -m spark_control`) with the stand-in
   playbooks of tests/control/playbooks (the collection's interface, run on this machine, so SSH is
   not part of what is measured). K clients follow the install's SSE stream; for every event a
   client receives, latency = receive time - the `created` time ansible-runner's callback stamped
   on that runner event (same clock). That covers callback -> pexpect -> runner thread -> event loop
   -> SSE -> client.
2. Memory. spark-control proxies a generated multipart upload of --upload-mb MiB (streamed by the
   client, never held) to the legacy stand-in; its process RSS is sampled every 20 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import httpx
import psutil
from httpx_sse import connect_sse

REPO = Path(__file__).resolve().parents[1]
TOKEN = "bench-token-0123456789abcdef"  # noqa: S105 - a throwaway server's token


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def start_control(data: Path, playbooks: Path | None, extra_env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SPARK", "WHISPERX", "LEGACY", "MAGPIE"))},
        "SPARK2_HOST": "127.0.0.1",
        "SPARK_CONTROL_DATA_DIR": str(data),
        "SPARK_CONTROL_API_TOKEN": TOKEN,
        "SPARK_CONTROL_PORT": str(port),
        "SPARK_CONTROL_WATCHDOG": "false",
        "WHISPERX_URL": f"http://127.0.0.1:{free_port()}",
        **({"SPARK_CONTROL_PLAYBOOKS_DIR": str(playbooks)} if playbooks else {}),
        **extra_env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "spark_control"], env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/healthz")
    return process, url


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# -- 1. latency ---------------------------------------------------------------------------------
def bench_latency(clients: int, lines: int, work: Path) -> dict:
    playbooks = work / f"playbooks-{clients}"
    shutil.copytree(REPO / "tests" / "control" / "playbooks", playbooks)
    (playbooks / "group_vars").mkdir()
    (playbooks / "group_vars" / "all.yml").write_text(f"fake_lines: {lines}\nfake_step_delay: 0.5\n")
    data = work / f"data-{clients}"
    process, url = start_control(data, playbooks, {})
    try:
        job_id = httpx.post(f"{url}/api/whisperx/install", headers={"Authorization": f"Bearer {TOKEN}"}).json()[
            "job_id"
        ]
        received: list[list[tuple[int, float]]] = [[] for _ in range(clients)]
        connected = threading.Barrier(clients + 1)

        def follow(index: int) -> None:
            with (
                httpx.Client(timeout=120) as client,
                connect_sse(client, "GET", f"{url}/api/jobs/{job_id}/stream") as source,
            ):
                connected.wait()
                for event in source.iter_sse():
                    if event.data:
                        received[index].append((int(event.id), time.time()))
                    if event.event == "done":
                        return

        threads = [threading.Thread(target=follow, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        connected.wait()
        all_connected = time.time()
        for thread in threads:
            thread.join()
        artifacts = data / "jobs" / job_id / "artifacts" / job_id / "job_events"
        created = {}
        for path in artifacts.glob("*.json"):
            event = json.loads(path.read_text())
            created[event["counter"]] = datetime.fromisoformat(event["created"]).timestamp()
    finally:
        stop(process)
    latencies = [
        (at - created[event_id]) * 1000
        for per_client in received
        for event_id, at in per_client
        if event_id in created and created[event_id] > all_connected + 0.05  # live events, not the replay
    ]
    return {
        "clients": clients,
        "runner_events": len(created),
        "samples": len(latencies),
        "p50_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(max(latencies), 2),
    }


# -- 2. proxy memory -----------------------------------------------------------------------------
def multipart_upload(size_mb: int, boundary: str) -> tuple[Iterator[bytes], int]:
    """A multipart body with one WAV `file` of size_mb MiB of silence, generated chunk by chunk."""
    data_bytes = size_mb << 20
    wav_header = (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="language"\r\n\r\nen\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="long.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode() + wav_header
    tail = f"\r\n--{boundary}--\r\n".encode()
    chunk = bytes(1 << 20)

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(size_mb):
            yield chunk
        yield tail

    return body(), len(head) + data_bytes + len(tail)


def bench_proxy_memory(size_mb: int, work: Path) -> dict:
    standin_port = free_port()
    standin = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "images" / "spark2-standin" / "standin.py")],
        env={**os.environ, "STANDIN_PORT": str(standin_port), "STANDIN_HOST": "127.0.0.1", "TMPDIR": str(work)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    process, url = start_control(
        work / "data-proxy",
        None,
        {
            "LEGACY_ASR_URL": f"http://127.0.0.1:{standin_port}",
            "SPARK_CONTROL_PROXY_MAX_UPLOAD_MB": str(size_mb + 16),
        },
    )
    try:
        wait_for(f"http://127.0.0.1:{standin_port}/health")
        small, _ = multipart_upload(1, "warmup")
        httpx.post(
            f"{url}/api/audio/transcribe-with-speakers",
            content=b"".join(small),
            headers={"content-type": "multipart/form-data; boundary=warmup"},
            timeout=60,
        ).raise_for_status()
        proc = psutil.Process(process.pid)
        baseline = proc.memory_info().rss
        peak = baseline
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, proc.memory_info().rss)
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        body, length = multipart_upload(size_mb, "benchboundary")
        started = time.monotonic()
        response = httpx.post(
            f"{url}/api/audio/transcribe-with-speakers",
            content=body,
            headers={"content-type": "multipart/form-data; boundary=benchboundary", "content-length": str(length)},
            timeout=httpx.Timeout(3600, connect=10),
        )
        elapsed = time.monotonic() - started
        done.set()
        sampler.join()
        response.raise_for_status()
        answer = response.json()
    finally:
        stop(process)
        standin.terminate()
        standin.wait(timeout=30)
    return {
        "upload_mib": size_mb,
        "backend": response.headers["x-asr-backend"],
        "duration_s_reported": answer["duration"],
        "rss_baseline_mib": round(baseline / 2**20, 1),
        "rss_peak_mib": round(peak / 2**20, 1),
        "rss_growth_mib": round((peak - baseline) / 2**20, 1),
        "elapsed_s": round(elapsed, 1),
        "throughput_mib_s": round(size_mb / elapsed, 1),
    }


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    memory = psutil.virtual_memory().total / 2**30
    packages = ", ".join(
        f"{name} {version(name)}" for name in ("fastapi", "uvicorn", "sse-starlette", "ansible-runner", "httpx")
    )
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB RAM, Linux {platform.release()}, "
        f"Python {platform.python_version()}; {packages}"
    )


def report(latency: list[dict], proxy: dict, command: str) -> str:
    proxy_row = (
        f"| {proxy['upload_mib']} MiB | {proxy['rss_baseline_mib']} MiB | {proxy['rss_peak_mib']} MiB "
        f"| **{proxy['rss_growth_mib']} MiB** | {proxy['elapsed_s']} s | {proxy['throughput_mib_s']} MiB/s |"
    )
    rows = "\n".join(
        f"| {r['clients']} | {r['runner_events']} | {r['samples']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} "
        f"| {r['max_ms']} |"
        for r in latency
    )
    return f"""# spark-control benchmark

- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC
- Machine: {machine()}
- Command: `{command}` (`make bench-control`)

## Runner event to SSE client

An install of the stand-in playbooks (tests/control/playbooks: five phases, each a burst of debug
lines then a 0.5 s task) while K clients follow `GET /api/jobs/{{id}}/stream`. Latency is the time a
client receives an event minus the `created` time ansible-runner stamped on that runner event; only
events created after every client was connected count (not the replay).

| clients | runner events | samples | p50 ms | p95 ms | p99 ms | max ms |
|---:|---:|---:|---:|---:|---:|---:|
{rows}

The runner thread only hands each event to the event loop (`call_soon_threadsafe`); every client
reads the job's one shared buffer with its own cursor, so more clients add send work, not copies.

## Audio proxy memory on a large upload

A {proxy["upload_mib"]} MiB multipart upload (one WAV `file` of silence, generated by the client chunk by
chunk) through `POST /api/audio/transcribe-with-speakers` to the legacy stand-in (WhisperX not
running, so the proxy chose `{proxy["backend"]}`). RSS of the spark-control process, sampled every 20 ms.

| upload | RSS before | RSS peak | growth | elapsed | throughput |
|---:|---:|---:|---:|---:|---:|
{proxy_row}

The body is spooled to disk in 1 MiB writes and streamed to the backend from the file (so it can be
sent a second time when WhisperX fails), never parsed or held; the stand-in reported a
{proxy["duration_s_reported"]:.0f} s recording, so the whole file arrived. Target: growth under 64 MiB.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    parser.add_argument("--clients", default="1,10,50", help="SSE clients per run, comma-separated")
    parser.add_argument("--lines", type=int, default=100, help="debug lines per phase in the stand-in install")
    parser.add_argument("--upload-mb", type=int, default=1024)
    args = parser.parse_args()
    command = "python scripts/bench_control.py " + " ".join(sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="bench-control-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        latency = []
        for clients in (int(c) for c in args.clients.split(",")):
            latency.append(bench_latency(clients, args.lines, work))
            print(json.dumps(latency[-1]), flush=True)
        proxy = bench_proxy_memory(args.upload_mb, work)
        print(json.dumps(proxy), flush=True)
    text = report(latency, proxy, command.strip())
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0 if proxy["rss_growth_mib"] < 64 else 1


if __name__ == "__main__":
    sys.exit(main())
