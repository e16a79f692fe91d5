"""Successive upgrades on a host whose sudo asks for a password, with the default build context owner.

The build context is shipped as the SSH user, so no step needs sudo; after each install that changed the
image, the role's older tags go and two stay: the current one and the rollback target. What is installed is
a stand-in that answers /health as the loaded service does, built on the service image: it builds in seconds
whoever owns the files (the real context, shipped as anyone but root, would miss `make image`'s layer cache
and reinstall every wheel) and is ready at once. The real service's installs are in test_runner.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.role.helpers import (
    FAKE_TOKEN,
    SERVICE_IMAGE,
    TEST_CONTAINER,
    GpuHost,
    run_runner,
    service_vars,
    write_inventory,
)

pytestmark = pytest.mark.integration

NAME = f"{TEST_CONTAINER}-images"
IMAGE = NAME  # a repository of its own, so the test sees only its own tags
FOREIGN = f"{IMAGE}:ctx-000000000000"  # a ctx-like tag the role did not build (no build label)
READY_SERVICE = """\
import json, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

HEALTH = {"status": "ready", "whisper_loaded": True, "diarizer_loaded": True, "device": "cpu", "error": None}


class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(HEALTH).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)


signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
HTTPServer(("0.0.0.0", 8002), Health).serve_forever()
"""


def tags() -> set[str]:
    listed = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", IMAGE],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(listed.stdout.split())


@pytest.fixture
def own_images():
    """Only this test's repository: whatever it holds before and after is this test's."""
    subprocess.run(["docker", "tag", SERVICE_IMAGE, FOREIGN], check=True)
    yield
    subprocess.run(["docker", "rm", "-f", NAME], capture_output=True, check=False)
    if tags():
        subprocess.run(["docker", "rmi", *sorted(tags())], capture_output=True, check=False)


def test_three_upgrades_leave_the_current_image_and_the_rollback_target(
    clean_host: GpuHost, password_sudo: GpuHost, own_images, tmp_path: Path
):
    source = tmp_path / "source"
    source.mkdir()
    (source / "ready.py").write_text(READY_SERVICE)
    (source / "Dockerfile").write_text(
        'ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY ready.py marker.txt /srv/\nCMD ["python", "/srv/ready.py"]\n'
    )
    token_file = tmp_path / "hf_token"
    token_file.write_text(FAKE_TOKEN + "\n")
    variables = service_vars(
        token_file,
        name=NAME,
        port=18107,
        whisperx_image_name=IMAGE,
        whisperx_source_dir=str(source),
        whisperx_base_image=SERVICE_IMAGE,
        whisperx_extra_ca_certs=[],
        whisperx_build_context_owner="",  # the default: the SSH user
        whisperx_build_dir="~/whisperx-build-images",
    )
    inventory = write_inventory(tmp_path / "inventory.yml", clean_host.ssh_vars, variables)

    images = []
    for release in ("one", "two", "three"):
        (source / "marker.txt").write_text(f"release {release}\n")
        run = run_runner("whisperx.yml", inventory)
        assert run.rc == 0, run.failure or run.stdout
        images.append(run.artifact_data["whisperx_status"]["image"])
    assert len(set(images)) == 3, images

    assert tags() == {images[1], images[2], FOREIGN}
    spark_uid = clean_host.docker("exec", clean_host.name, "id", "-u", "spark").stdout.strip()
    shipped = clean_host.home / "whisperx-build-images"
    assert {str(path.stat().st_uid) for path in [shipped, *shipped.rglob("*")]} == {spark_uid}
