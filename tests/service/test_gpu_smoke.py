"""scripts/gpu-smoke.sh against the CPU image, so the script an operator runs first on a Spark cannot rot: with
--cpu it skips the GPU checks and still transcribes and diarizes the bundled dialogue, printing each stage's
real-time factor; what it cannot do is a non-zero exit with the reason."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.service.conftest import IMAGE

pytestmark = pytest.mark.integration
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu-smoke.sh"


def smoke(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=600, check=False)


def test_the_cpu_mode_transcribes_the_dialogue_and_reports_each_stage(model_bundle: Path):
    run = smoke("--cpu", "--image", IMAGE, "--models", str(model_bundle), "--model", "tiny.en")
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    assert "ok   tiny.en and the diarizer load" in out and "Whisper on cpu (int8), the diarizer on cpu" in out
    assert "ok   two speakers are told apart" in out
    heard = re.search(r"the words are heard: (\d+) of (\d+)", out)
    assert heard and int(heard[1]) >= 0.6 * int(heard[2])
    for stage in ("vad", "transcribe", "align", "diarize", "whole run"):
        factor = re.search(rf"^  {stage}\s+(\d+\.\d+)  \(", out, re.MULTILINE)
        assert factor and 0 < float(factor[1]) < 5, (stage, out)
    assert out.rstrip().endswith("Smoke test passed (CPU: the GPU checks were skipped)")


def test_what_cannot_run_exits_non_zero_with_the_reason(model_bundle: Path):
    missing = smoke("--cpu", "--image", IMAGE, "--models", str(model_bundle), "--model", "large-v3")
    assert missing.returncode == 1
    assert (
        "GPU smoke test FAILED: large-v3 and the diarizer load: Whisper model 'large-v3' is not in the offline bundle"
        in missing.stdout
    )
    no_image = smoke("--cpu", "--image", "spark-inference/no-such-image:none")
    assert (
        no_image.returncode == 1
        and "the image spark-inference/no-such-image:none is not on this host" in no_image.stderr
    )
    assert smoke("--bogus").returncode == 2


def test_the_cuda_ctranslate2_stage_refuses_a_builder_without_nvcc(tmp_path: Path):
    """CTRANSLATE2_CUDA=1 on an image without the CUDA compiler fails at once, saying which image it needs
    (the real compile needs a CUDA devel image, which no CI machine can pull)."""
    context = Path(__file__).resolve().parents[2] / "whisperx_container"
    base = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", IMAGE], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    built = subprocess.run(
        ["docker", "build", "--target", "ctranslate2", "--build-arg", f"BASE_IMAGE={base}",
         "--build-arg", "CTRANSLATE2_CUDA=1", "-t", "spark-inference/ct2-stage-test:none", str(context)],
        capture_output=True, text=True, timeout=600, check=False, env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert built.returncode != 0
    assert "CTRANSLATE2_CUDA=1 needs CT2_BUILDER_IMAGE to be a CUDA devel image" in built.stdout + built.stderr
