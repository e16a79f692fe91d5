#!/usr/bin/env python3
"""`make demo`: the main job, end to end, on this machine, deployed the way an operator deploys it.

1. A stand-in for Spark 2 comes up: a systemd + sshd host reached over SSH that drives this
   machine's Docker engine (scripts/gpu-host.sh). Only the GPU is missing; WhisperX runs on the CPU.
   The stand-ins for its Parakeet and Magpie services run beside it (the spark2-standin image).
2. spark-control is deployed from its image (make control-image) by the role spark.inference.spark_control
   (playbooks/spark_control.yml) onto this machine's engine: its SSH key and API token as 0600 files,
   its data on a volume, told where Spark 2 is.
3. In headless Chromium, the dashboard's "Install WhisperX" button is clicked: ansible-runner, inside the
   spark-control container, runs the collection's install playbook over SSH (preflight, ship, build,
   start, load); the install log is followed here through the same SSE stream the dashboard reads.
4. The scripted two-speaker dialogue goes through the audio proxy and its diarized transcript is
   printed.
5. A four-minute meeting (the dialogue six times over, four 60 s windows) is submitted as a job through the
   dashboard's Transcribe card; its progress is printed from the page as windows finish.

Everything stays up afterwards so the dashboard can be explored; `make demo-down` removes WhisperX
through spark-control, then spark-control (the role, state absent), the stand-ins and their data.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
import wave
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


CONTROL, VOLUME = "spark-control", "spark-control-demo-data"
STANDINS = {"parakeet-asr": ("parakeet", 8000), "magpie-tts": ("magpie", 9000)}


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True)


def start_standins() -> None:
    """Parakeet and Magpie as Spark 2 runs them (names the service playbook manages), knowing the demo's clips."""
    clips = STATE / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    deep = REPO / "spark_control" / "assets"
    (clips / "deep_check.wav").write_bytes((deep / "deep_check.wav").read_bytes())
    (clips / "deep_check.txt").write_text((deep / "deep_check.txt").read_text())
    fixtures = Path(os.environ["SPARK_FIXTURES_DIR"])
    (clips / "dialogue.wav").write_bytes((fixtures / "dialogue.wav").read_bytes())
    turns = json.loads((fixtures / "dialogue.json").read_text())["turns"]
    (clips / "dialogue.txt").write_text(" ".join(t["text"] for t in turns))
    image = os.environ.get("CONTROL_STANDIN_IMAGE", "spark-inference/spark2-standin:bookworm")
    for name, (role, port) in STANDINS.items():
        docker("rm", "-f", name, check=False)
        docker(
            "run", "-d", "--name", name, "--restart", "unless-stopped", "-p", f"127.0.0.1:{port}:8000",
            "-e", f"STANDIN_ROLE={role}", "-e", "STANDIN_CLIPS=/clips", "-v", f"{clips}:/clips:ro", image,
        )  # fmt: skip


def inventory(host: dict[str, str], **extra: object) -> Path:
    """This machine as the control node (a local connection), with the demo's settings for the role."""
    extra_ca = os.environ.get("EXTRA_CA_CERTS", "/usr/local/share/ca-certificates")
    certs = [p for p in extra_ca.split() if Path(p).exists()]
    models = os.environ["SPARK_MODELS_DIR"]
    settings = {
        "spark_control_image": os.environ.get("CONTROL_IMAGE", "spark-inference/spark-control:latest"),
        "spark_control_container_name": CONTROL,
        "spark_control_data_volume": VOLUME,
        "spark_control_port": CONTROL_PORT,
        "spark_control_network_mode": "host",  # Spark 2's stand-in answers on this machine's loopback
        "spark_control_secrets_dir": str(STATE / "secrets"),
        "spark_control_ssh_key_file": host["SSH_KEY"],
        "spark_control_api_token_file": str(STATE / "api_token"),
        "spark_control_spark2_host": host["SSH_HOST"],
        "spark_control_spark2_user": host["SSH_USER"],
        "spark_control_spark2_ssh_port": int(host["SSH_PORT"]),
        # The bundle at a path the container's user can reach (the image's /root is private).
        "spark_control_mounts": [f"{models}:/srv/spark-control/models", *certs],
        # No model hub and no GPU here: the offline bundle's Whisper on the CPU, built FROM the local base.
        "spark_control_env": {
            "WHISPERX_MODEL_BUNDLE": "/srv/spark-control/models",
            "WHISPERX_BUNDLE_MODEL": os.environ.get("DEMO_MODEL", "tiny.en"),
            "WHISPERX_GPUS": "",
            "WHISPERX_MEMORY": os.environ.get("DEMO_MEMORY", "8g"),
            "WHISPERX_BASE_IMAGE": os.environ.get("BASE_IMAGE_LOCAL", "spark-inference/debian:bookworm"),
            "WHISPERX_EXTRA_CA_CERTS": " ".join(certs),
            # Short windows, so the demo's four-minute meeting is a job of several windows.
            "WHISPERX_ENV": json.dumps({"WHISPERX_WINDOW_S": "60"}),
        },
        **extra,
    }
    node = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    path = STATE / "inventory.yml"
    path.write_text(json.dumps({"all": {"children": {"control": {"hosts": {"control-node": node}, "vars": settings}}}}))
    return path


def run_role(host: dict[str, str], **extra: object) -> None:
    playbook = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory(host, **extra))]
    done = subprocess.run([*playbook, str(REPO / "playbooks" / "spark_control.yml")], capture_output=True, text=True)
    (STATE / "spark-control-role.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"the spark_control role failed; see {STATE / 'spark-control-role.log'}")


def start_control(host: dict[str, str]) -> str:
    url = f"http://127.0.0.1:{CONTROL_PORT}"
    say("deploying spark-control from its image (playbooks/spark_control.yml)")
    run_role(host)
    image = docker("inspect", "--format", "{{.Config.Image}} as uid {{.Config.User}}", CONTROL).stdout.strip()
    say(f"spark-control runs in container {CONTROL} ({image})")
    return url


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


def meeting() -> Path:
    """The dialogue six times over: about four minutes, four windows of 60 s."""
    with wave.open(str(Path(os.environ["SPARK_FIXTURES_DIR"]) / "dialogue.wav")) as clip:
        params, frames = clip.getparams(), clip.readframes(clip.getnframes())
    target = STATE / "meeting.wav"
    with wave.open(str(target), "wb") as out:
        out.setparams(params)
        out.writeframes(frames * 6)
    return target


def job_through_the_dashboard(url: str, recording: Path) -> bool:
    """The Transcribe card, as someone on the LAN uses it: the job's progress printed as the page shows it."""
    say(f"submitting {recording.name} as a job through the dashboard's Transcribe card")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        page.locator("body[data-ready=true]").wait_for(timeout=30_000)
        page.set_input_files("#transcribe-file", str(recording))
        page.click("#transcribe-submit")
        shown, deadline = "", time.monotonic() + 1800
        while time.monotonic() < deadline:
            status = page.locator("#transcribe-status").text_content() or ""
            line = page.locator("#transcribe-work-text").text_content() or ""
            error = page.locator("#transcribe-error").text_content() or ""
            if line and line != shown:
                say(f"  {line}")
                shown = line
            if status.startswith("Done") or error:
                break
            page.wait_for_timeout(500)
        page.screenshot(path=str(STATE / "job-done.png"), full_page=True)
        address = page.url
        browser.close()
    if not status.startswith("Done"):
        say(f"the job did not finish: {error or status or 'no answer in 30 minutes'}")
        return False
    say(status)
    say(f"the transcript stays at {address} (and under Recent transcripts)")
    return True


def up() -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(REPO / "scripts" / "gpu-host.sh"), "up", HOST_NAME, str(SSH_PORT)], check=True)
    start_standins()
    token_file = STATE / "api_token"
    if not token_file.exists():
        token_file.write_text(secrets.token_urlsafe(32))
        token_file.chmod(0o600)
    token = token_file.read_text()
    url = start_control(host_env())
    say(f"spark-control answers at {url}")

    status = httpx.get(f"{url}/api/whisperx/status", timeout=30).json()
    if status["installed"] and status["healthy"]:
        say("WhisperX is already installed and healthy (a previous `make demo`); `make demo-down` starts over")
    else:
        click_install(url, token)
        if follow_install(url) != "successful":
            say(f"the install failed; its log is in the dashboard (docker logs {CONTROL} for spark-control's own)")
            return 1
    transcribe(url)
    if not job_through_the_dashboard(url, meeting()):
        return 1
    services = httpx.get(f"{url}/api/services", timeout=30).json()
    say("services: " + ", ".join(f"{s['name']} {'healthy' if s['healthy'] else 'unhealthy'}" for s in services))
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
        say(f"spark-control could not remove WhisperX ({exc}); removing the rest")
    with contextlib.suppress(OSError, KeyError, SystemExit):
        run_role(host_env(), spark_control_state="absent")
    docker("rm", "-f", CONTROL, *STANDINS, check=False)
    docker("volume", "rm", "-f", VOLUME, check=False)
    subprocess.run([str(REPO / "scripts" / "gpu-host.sh"), "down", HOST_NAME], check=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "down"], nargs="?", default="up")
    sys.exit(up() if parser.parse_args().action == "up" else down())
