"""Successive upgrades on a host whose sudo asks for a password, with the default build context owner.

The build context is shipped as the SSH user, so no step needs sudo; after each install that changed the
image, the role's older tags go and two stay: the current one and the rollback target. The context is this
checkout's service app on top of the service image's environment, so each install builds in seconds
whoever owns the files (the real context, shipped as anyone but root, would miss `make image`'s layer cache
and reinstall every wheel).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.role.helpers import (
    FAKE_TOKEN,
    REPO,
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
    shutil.copytree(REPO / "whisperx_container/app", source / "app", ignore=shutil.ignore_patterns("__pycache__"))
    (source / "Dockerfile").write_text(
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY app/ /srv/app/\nCOPY marker.txt /srv/marker.txt\n"
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
