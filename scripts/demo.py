#!/usr/bin/env python3
"""`make demo`: the main job, end to end, on this machine.

1. A stand-in for Spark 2 comes up: a systemd + sshd host reached over SSH that drives this
   machine's Docker engine (scripts/gpu-host.sh). Only the GPU is missing; WhisperX runs on the CPU.
2. spark-control starts (python -m spark_control) and is told where Spark 2 is.
3. In headless Chromium, the dashboard's "Install WhisperX" button is clicked: ansible-runner runs
   the collection's install playbook over SSH (preflight, ship, build, start, load); the install log
   is followed here through the same SSE stream the dashboard reads.
4. The scripted two-speaker dialogue goes through the audio proxy and its diarized transcript is
   printed.

spark-control and WhisperX stay up afterwards so the dashboard can be explored; `make demo-down`
removes WhisperX through spark-control (the rollback playbook) and stops everything.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from httpx_sse import connect_sse
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("CACHE", Path.home() / ".cache" / "spark-inference"))
STATE = CACHE / "demo"
HOST_NAME, SSH_PORT, CONTROL_PORT = "spark2-demo", 2250, 8090
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


def say(message: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


def host_env() -> dict[str, str]:
    state = os.environ.get("GPU_HOST_STATE", "/var/tmp/spark-inference/gpu-hosts")  # noqa: S108 (gpu-host.sh's default)
    env_file = Path(state) / HOST_NAME / "host.env"
    return dict(line.split("=", 1) for line in env_file.read_text().split())


def control_env(host: dict[str, str], token: str) -> dict[str, str]:
    extra_ca = os.environ.get("EXTRA_CA_CERTS", "/usr/local/share/ca-certificates")
    return {
        **os.environ,
        "SPARK2_HOST": host["SSH_HOST"],
        "SPARK2_SSH_PORT": host["SSH_PORT"],
        "SPARK2_USER": host["SSH_USER"],
        "SPARK_CONTROL_SSH_KEY": host["SSH_KEY"],
        "SPARK_CONTROL_API_TOKEN": token,
        "SPARK_CONTROL_DATA_DIR": str(STATE / "control"),
        "SPARK_CONTROL_PORT": str(CONTROL_PORT),
        # No model hub and no GPU here: the offline bundle's Whisper on the CPU, built FROM the local base.
        "WHISPERX_MODEL_BUNDLE": os.environ["SPARK_MODELS_DIR"],
        "WHISPERX_BUNDLE_MODEL": os.environ.get("DEMO_MODEL", "tiny.en"),
        "WHISPERX_GPUS": "",
        "WHISPERX_MEMORY": os.environ.get("DEMO_MEMORY", "8g"),
        "WHISPERX_BASE_IMAGE": os.environ.get("BASE_IMAGE_LOCAL", "spark-inference/debian:bookworm"),
        "WHISPERX_EXTRA_CA_CERTS": extra_ca if Path(extra_ca).exists() else "",
    }


def stop_control() -> None:
    pid_file = STATE / "spark-control.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(pid_file.read_text()), signal.SIGTERM)
        pid_file.unlink()


def start_control(env: dict[str, str]) -> str:
    stop_control()  # a previous `make demo` left it running
    url = f"http://127.0.0.1:{CONTROL_PORT}"
    log = (STATE / "spark-control.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "spark_control"], cwd=REPO, env=env, stdout=log, stderr=log, start_new_session=True
    )
    (STATE / "spark-control.pid").write_text(str(proc.pid))
    for _ in range(60):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return url
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    raise SystemExit(f"spark-control did not start; see {STATE / 'spark-control.log'}")


def click_install(url: str, token: str) -> None:
    """One click on the dashboard, as an operator would."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.request.post(f"{url}/api/session", data={"token": token})
        page.goto(url)
        page.locator("#install-button").click(timeout=30_000)
        page.locator("#progress-dialog[open]").wait_for(timeout=30_000)
        page.screenshot(path=str(STATE / "install-started.png"))
        browser.close()


def follow_install(url: str) -> str:
    job = httpx.get(f"{url}/api/whisperx/status", timeout=10).json()["job"]
    say(f"install job {job['id']} started; following its SSE stream")
    started, state = time.monotonic(), "unknown"
    stream = f"{url}/api/whisperx/install/{job['id']}/stream"
    with httpx.Client(timeout=httpx.Timeout(10, read=120)) as client, connect_sse(client, "GET", stream) as events:
        for event in events.iter_sse():
            data = json.loads(event.data) if event.data else {}
            if event.event == "phase":
                say(f"phase {data['phase']:<9} at {time.monotonic() - started:6.1f} s")
            elif event.event == "log" and os.environ.get("DEMO_VERBOSE"):
                print("    " + data["line"])
            elif event.event == "done":
                state = data["state"]
                break
    say(f"install {state} after {time.monotonic() - started:.1f} s")
    return state


def transcribe(url: str) -> None:
    dialogue = Path(os.environ["SPARK_FIXTURES_DIR"]) / "dialogue.wav"
    say(f"transcribing {dialogue.name} (two espeak voices) through the audio proxy")
    with dialogue.open("rb") as f:
        response = httpx.post(
            f"{url}/api/audio/transcribe-with-speakers", files={"file": (dialogue.name, f, "audio/wav")}, timeout=600
        )
    response.raise_for_status()
    body = response.json()
    backend = response.headers.get("x-asr-backend")
    say(f"backend {backend}, {body['duration']:.1f} s of audio, timings {body['timings']}")
    for segment in body["segments"]:
        print(f"  {segment['start']:6.1f}-{segment['end']:6.1f}  {segment['speaker']}: {segment['text'].strip()}")


def up() -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(REPO / "scripts" / "gpu-host.sh"), "up", HOST_NAME, str(SSH_PORT)], check=True)
    token_file = STATE / "api_token"
    if not token_file.exists():
        token_file.write_text(secrets.token_urlsafe(24))
        token_file.chmod(0o600)
    token = token_file.read_text()
    url = start_control(control_env(host_env(), token))
    say(f"spark-control answers at {url}")

    status = httpx.get(f"{url}/api/whisperx/status", timeout=30).json()
    if status["installed"] and status["healthy"]:
        say("WhisperX is already installed and healthy (a previous `make demo`); `make demo-down` starts over")
    else:
        click_install(url, token)
        if follow_install(url) != "successful":
            say(f"the install failed; its log is in the dashboard and under {STATE / 'control' / 'jobs'}")
            return 1
    transcribe(url)
    say(f"dashboard: {url}  (API token in {token_file}); `make demo-down` removes everything")
    return 0


def down() -> int:
    url = f"http://127.0.0.1:{CONTROL_PORT}"
    token_file = STATE / "api_token"
    try:
        headers = {"Authorization": f"Bearer {token_file.read_text()}"}
        job = httpx.post(f"{url}/api/whisperx/remove", headers=headers, timeout=10).json()
        say(f"removing WhisperX (job {job.get('job_id')})")
        for _ in range(120):
            view = httpx.get(f"{url}/api/jobs/{job['job_id']}", timeout=10).json()
            if view["state"] != "running":
                say(f"removal {view['state']}")
                break
            time.sleep(1)
    except (OSError, httpx.HTTPError, KeyError) as exc:
        say(f"spark-control could not remove WhisperX ({exc}); removing the stand-in host only")
    stop_control()
    subprocess.run([str(REPO / "scripts" / "gpu-host.sh"), "down", HOST_NAME], check=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "down"], nargs="?", default="up")
    sys.exit(up() if parser.parse_args().action == "up" else down())
