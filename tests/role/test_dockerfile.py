"""The service image's Dockerfile against the build arguments the role gives it, read without building (no GPU
and no CUDA devel image here; CI builds the CPU image for real, through the same no-op first stage).

On an aarch64 host with GPUs (a DGX Spark) the role selects the stage that compiles CTranslate2 with CUDA and
PyTorch's CUDA index for torch; the CUDA versions of the base, the builder and the torch index agree and are
ones that know the GB10 (sm_121); on the CPU nothing of that is asked for and the stage does nothing."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.role.helpers import REPO, load_plugin

DOCKERFILE = (REPO / "whisperx_container/Dockerfile").read_text()
DEFAULTS = yaml.safe_load((REPO / "roles/whisperx/defaults/main.yml").read_text())
FIRST_CUDA_WITH_SM121 = (12, 9)  # CUDA 12.9 added compiler support for sm_121 (whisperx_container/README.md)


@pytest.fixture(scope="module")
def wx():
    return load_plugin("plugins/filter/whisperx.py", "whisperx_filters")


def role_build_args(wx, gpus: str, architecture: str, base_image: str = "") -> dict:
    return wx.build_args(
        {}, base_image=base_image, cuda_torch_index=DEFAULTS["whisperx_cuda_torch_index"], gpus=gpus,
        architecture=architecture, ctranslate2_cuda=DEFAULTS["whisperx_ctranslate2_cuda"],
        ctranslate2_builder_image=DEFAULTS["whisperx_ctranslate2_builder_image"],
        cuda_arch_list=DEFAULTS["whisperx_cuda_arch_list"],
    )  # fmt: skip


def stages() -> list[tuple[str, str, str]]:
    """(image, name, body) of each FROM, in order."""
    found = list(re.finditer(r"^FROM (\S+)(?: AS (\S+))?$", DOCKERFILE, re.MULTILINE))
    ends = [m.start() for m in found[1:]] + [len(DOCKERFILE)]
    return [(m[1], m[2] or "", DOCKERFILE[m.end() : end]) for m, end in zip(found, ends, strict=True)]


def arg_default(name: str) -> str:
    match = re.search(rf"^ARG {name}=(.*)$", DOCKERFILE, re.MULTILINE)
    assert match, f"the Dockerfile declares no ARG {name}"
    return match[1].strip().strip('"')


def cuda_version(image: str) -> tuple[int, int]:
    match = re.search(r"nvidia/cuda:(\d+)\.(\d+)", image)
    assert match, image
    return int(match[1]), int(match[2])


def test_a_spark_build_compiles_ctranslate2_with_cuda_and_takes_cuda_torch(wx):
    args = role_build_args(wx, "all", "aarch64")
    assert args["CTRANSLATE2_CUDA"] == "1" and args["PIP_EXTRA_INDEX_URL"].endswith("/cu129")
    assert "devel" in args["CT2_BUILDER_IMAGE"] and "cudnn" in args["CT2_BUILDER_IMAGE"]  # nvcc and cuDNN headers
    for name in args:  # every argument the role passes is one the Dockerfile takes
        assert re.search(rf"^ARG {name}[=\n]", DOCKERFILE, re.MULTILINE), name


def test_the_cpu_build_asks_for_none_of_it_and_the_stage_does_nothing(wx):
    assert role_build_args(wx, "", "x86_64", base_image="spark-inference/debian:bookworm") == {
        "BASE_IMAGE": "spark-inference/debian:bookworm"
    }
    assert role_build_args(wx, "", "aarch64") == {}
    assert role_build_args(wx, "all", "x86_64") == {}  # PyPI's x86_64 CTranslate2 and torch have CUDA
    (builder_image, builder, body), (final_image, _, final) = stages()
    assert builder == "ctranslate2" and builder_image == "${CT2_BUILDER_IMAGE}" and final_image == "${BASE_IMAGE}"
    assert arg_default("CT2_BUILDER_IMAGE") == "${BASE_IMAGE}", "no devel image is pulled unless asked for"
    run = body[body.index("RUN ") :]
    assert run.index('if [ -z "${CTRANSLATE2_CUDA}" ]; then exit 0; fi') < run.index("apt-get"), "nothing is built"
    assert "COPY --from=ctranslate2 /ctranslate2/ /opt/ctranslate2/" in final
    assert "if ls /opt/ctranslate2/wheel/*.whl" in final, "PyPI's wheel stays when the stage made none"


def test_the_cuda_versions_agree_and_know_the_gb10(wx):
    args = role_build_args(wx, "all", "aarch64")
    base, builder = cuda_version(arg_default("BASE_IMAGE")), cuda_version(args["CT2_BUILDER_IMAGE"])
    torch_cuda = re.search(r"/cu(\d+)(\d)$", args["PIP_EXTRA_INDEX_URL"])
    assert base == builder == (int(torch_cuda[1]), int(torch_cuda[2]))
    assert base >= FIRST_CUDA_WITH_SM121
    assert re.search(r"ubuntu\d+\.\d+", arg_default("BASE_IMAGE"))[0] in args["CT2_BUILDER_IMAGE"], "same Python"
    archs = arg_default("CUDA_ARCH_LIST").split(";")
    assert "12.1+PTX" in archs or "12.1" in archs  # the GB10
    assert {"8.0", "9.0", "10.0", "12.0"} <= {a.removesuffix("+PTX") for a in archs}  # data-centre, workstation


def test_the_compiled_ctranslate2_is_the_version_the_lock_pins():
    lock = (REPO / "whisperx_container/requirements.txt").read_text()
    pinned = re.search(r"^ctranslate2==(\S+)", lock, re.MULTILINE)[1]
    assert arg_default("CTRANSLATE2_VERSION") == pinned
