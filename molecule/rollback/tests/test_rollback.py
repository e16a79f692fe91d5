"""After a rolled-back upgrade and whisperx_state=absent (molecule scenario `rollback`)."""

from __future__ import annotations

import json

NAME = "mol-whisperx-rollback"


def test_whisperx_container_is_gone(host):
    assert host.run(f"docker inspect {NAME}").rc != 0


def test_legacy_parakeet_keeps_running(host):
    state = json.loads(host.check_output("docker inspect mol-parakeet-asr"))[0]["State"]
    assert state["Running"] is True
    assert state["Restarting"] is False


def test_the_token_file_went_with_the_container(host):
    assert not host.file(f"{host.user().home}/.config/whisperx/{NAME}.hf_token").exists


def test_images_and_models_stay_for_a_fast_reinstall(host):
    assert host.file(f"{host.user().home}/whisperx-model-bundle/manifest.json").exists
    # molecule group_vars: whisperx_image_name. The rolled-back upgrade's image stays too: old images are
    # removed only after an install that succeeded.
    images = host.check_output("docker images --format '{{.Repository}}:{{.Tag}}' mol-whisperx-asr").split()
    assert len([image for image in images if image.startswith("mol-whisperx-asr:ctx-")]) >= 2
