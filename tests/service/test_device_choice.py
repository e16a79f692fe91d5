"""Where each model runs (whisperx_container/app/inference/loader.resolve_device), with the GPU stubbed: with
GPUs there, Whisper runs on one or the load fails saying why and how to fix it; never silently on the CPU."""

from __future__ import annotations

import logging

import pytest
from app.config import Settings
from app.inference.loader import DeviceProbe, ModelError, ModelLoader, resolve_device
from app.inference.state import ServiceState

GPU_BUT_CPU_CT2 = DeviceProbe(torch_cuda=True, ct2_cuda_devices=0)  # PyPI's aarch64 CTranslate2 on a Spark
GPU = DeviceProbe(torch_cuda=True, ct2_cuda_devices=1)
NO_GPU = DeviceProbe(torch_cuda=False, ct2_cuda_devices=0)


def settings(**values) -> Settings:
    return Settings(**values)


@pytest.mark.parametrize(
    ("values", "probe", "expected"),
    [
        ({}, GPU, ("cuda", "cuda", "float16")),
        ({}, NO_GPU, ("cpu", "cpu", "int8")),  # CI: the CPU image, no GPU asked for
        ({"whisperx_device": "cpu"}, GPU, ("cpu", "cpu", "int8")),  # the operator's choice, not a fallback
        ({"whisperx_compute_type": "int8_float16"}, GPU, ("cuda", "cuda", "int8_float16")),
    ],
)
def test_each_model_runs_where_it_can(values: dict, probe: DeviceProbe, expected: tuple):
    assert resolve_device(settings(**values), probe) == expected


@pytest.mark.parametrize("device", ["auto", "cuda"])
def test_a_gpu_ctranslate2_cannot_use_fails_the_load_naming_cause_and_fix(device: str):
    with pytest.raises(ModelError) as failed:
        resolve_device(settings(whisperx_device=device), GPU_BUT_CPU_CT2)
    message = str(failed.value)
    assert "CTranslate2 sees none" in message and "no CUDA support" in message  # the cause
    assert "CTRANSLATE2_CUDA=1" in message and "WHISPERX_ALLOW_CPU_WHISPER=true" in message  # the fixes


def test_whisper_on_the_cpu_beside_a_gpu_only_when_allowed_and_said(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING, "app.inference.loader"):
        chosen = resolve_device(settings(whisperx_allow_cpu_whisper=True), GPU_BUT_CPU_CT2)
    assert chosen == ("cuda", "cpu", "int8")
    assert "Whisper runs on the CPU" in caplog.text


def test_cuda_asked_for_without_a_gpu_is_an_error():
    with pytest.raises(ModelError, match="torch sees no CUDA device"):
        resolve_device(settings(whisperx_device="cuda"), NO_GPU)


def test_the_failed_load_is_what_health_reports(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(DeviceProbe, "look", classmethod(lambda cls: GPU_BUT_CPU_CT2))
    state = ServiceState()
    ModelLoader(settings(), state).run()  # what the loader thread does at start
    assert state.status == "error" and state.settled.is_set()
    assert not state.whisper_loaded and "WHISPERX_ALLOW_CPU_WHISPER=true" in state.error


@pytest.mark.parametrize(
    ("arch", "capability", "runs"),
    [
        ("sm_120", (12, 1), True),  # torch 2.8.0+cu129's newest cubin on the GB10
        ("sm_121", (12, 1), True),
        ("sm_90", (12, 1), False),  # another major revision: a cubin does not carry over
        ("sm_121", (12, 0), False),
        ("compute_90", (12, 1), True),  # PTX: the driver compiles it for a later GPU
        ("compute_121", (12, 0), False),
        ("sm_100", (10, 0), True),
        ("bogus", (12, 1), False),
    ],
)
def test_the_smoke_test_knows_which_of_torch_s_builds_run_on_a_gpu(arch: str, capability: tuple, runs: bool):
    from app.smoke.__main__ import runs_on

    assert runs_on(arch, *capability) is runs
