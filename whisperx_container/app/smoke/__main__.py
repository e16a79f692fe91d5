"""`python -m app.smoke [--cpu]`: the GPU smoke test, inside the image (scripts/gpu-smoke.sh runs it).

Checks what the libraries see (torch's CUDA device and its compute capability against the architectures
torch was built for, CTranslate2's CUDA devices and compute types), loads the models the way the service
does (so the no-silent-CPU rule applies), then transcribes and diarizes the bundled two-speaker dialogue
and prints each stage's real-time factor and the peak GPU memory. Exits 1 on any failure, with the
reason. --cpu skips the GPU checks and still transcribes (CI runs it so, against the CPU image).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).parent
MIN_WORDS_HEARD = 0.6  # of the script's words, with tiny.en on the CPU too


class SmokeFailure(Exception):
    pass


def check(ok: bool, what: str, detail: str = "") -> None:
    print(f"  {'ok  ' if ok else 'FAIL'} {what}{f': {detail}' if detail else ''}", flush=True)
    if not ok:
        raise SmokeFailure(f"{what}{f': {detail}' if detail else ''}")


def gpu_checks() -> None:
    import ctranslate2
    import torch

    print("GPU", flush=True)
    versions = f"torch {torch.__version__}, CUDA {torch.version.cuda}"
    check(torch.cuda.is_available(), "torch sees a CUDA device", versions)
    major, minor = torch.cuda.get_device_capability(0)
    built = torch.cuda.get_arch_list()
    runs = any(runs_on(arch, major, minor) for arch in built)
    check(
        runs,
        f"torch's build runs on compute capability {major}.{minor}",
        f"{torch.cuda.get_device_name(0)}; built for {' '.join(built)}",
    )
    count = ctranslate2.get_cuda_device_count()
    check(count > 0, "CTranslate2 sees a CUDA device", f"ctranslate2 {ctranslate2.__version__}, {count} device(s)")
    types = sorted(ctranslate2.get_supported_compute_types("cuda"))
    check("float16" in types, "CTranslate2 computes in float16 on it", ", ".join(types))


def runs_on(arch: str, major: int, minor: int) -> bool:
    """Whether code torch was built as (`sm_120`: a cubin, `compute_120`: PTX) runs on compute capability
    major.minor: a cubin on its own major revision at an equal or higher minor one (sm_120 on the GB10's 12.1),
    PTX on any later GPU, compiled by the driver."""
    kind, _, number = arch.partition("_")
    if not number.isdigit():
        return False
    built = divmod(int(number), 10)
    if kind == "sm":
        return built[0] == major and built[1] <= minor
    return kind == "compute" and built <= (major, minor)


class GpuMemory:
    """Peak device memory in use while a block runs (torch's and CTranslate2's alike: cudaMemGetInfo)."""

    def __init__(self, enabled: bool):
        self.enabled, self.peak, self.base = enabled, 0, 0
        self._stop = threading.Event()

    def __enter__(self) -> GpuMemory:
        if self.enabled:
            import torch

            free, total = torch.cuda.mem_get_info()
            self.base = self.peak = total - free
            self._thread = threading.Thread(target=self._poll, args=(torch,), daemon=True)
            self._thread.start()
        return self

    def _poll(self, torch) -> None:
        while not self._stop.wait(0.05):
            free, total = torch.cuda.mem_get_info()
            self.peak = max(self.peak, total - free)

    def __exit__(self, *exc) -> None:
        self._stop.set()


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def transcribe(gpu: bool) -> None:
    from app.config import Settings
    from app.inference.audio import decode
    from app.inference.loader import ModelLoader, prepare_environment
    from app.inference.pipeline import Options, StageTimer
    from app.inference.state import ServiceState

    settings = Settings()
    prepare_environment(settings)
    state = ServiceState()
    print("Models", flush=True)
    with GpuMemory(gpu) as memory:
        began = time.perf_counter()
        ModelLoader(settings, state).run()
        check(state.status == "ready", f"{settings.whisper_model} and the diarizer load", state.error or "")
        print(f"  Whisper on {state.whisper_device} ({state.compute_type}), the diarizer on {state.device}; "
              f"loaded in {time.perf_counter() - began:.1f} s", flush=True)  # fmt: skip
        if gpu:
            check(state.whisper_device == "cuda", "Whisper runs on the GPU", state.whisper_device)
            check(state.device == "cuda", "the diarizer runs on the GPU", state.device)
        loaded = memory.peak
        script = json.loads((HERE / "dialogue.json").read_text())["turns"]
        with tempfile.TemporaryDirectory() as tmp:
            audio = decode(HERE / "dialogue.ogg", Path(tmp) / "audio.s16le")
            timer = StageTimer()
            began = time.perf_counter()
            transcript = state.pipeline.run(audio, Options(), timer)
            wall = time.perf_counter() - began
    print(f"The dialogue ({audio.duration:.1f} s, two voices)", flush=True)
    said = {w for turn in script for w in words(turn["text"])}
    heard = said & set(words(transcript.text))
    check(len(heard) >= MIN_WORDS_HEARD * len(said), "the words are heard", f"{len(heard)} of {len(said)}")
    check(len(transcript.speakers) == 2, "two speakers are told apart", ", ".join(s.id for s in transcript.speakers))
    print("Real-time factor (seconds of work per second of audio; lower is faster)")
    for stage in ("vad", "transcribe", "align", "diarize"):
        seconds = timer.seconds.get(stage, 0.0)
        print(f"  {stage:<11} {seconds / audio.duration:7.4f}  ({seconds:.2f} s)")
    print(f"  {'whole run':<11} {wall / audio.duration:7.4f}  ({wall:.2f} s; the stages overlap)")
    if gpu:
        print(f"Peak GPU memory: {memory.peak / 2**20:.0f} MiB in use on the device "
              f"({(memory.peak - memory.base) / 2**20:.0f} MiB by this run: {(loaded - memory.base) / 2**20:.0f} "
              "MiB for the models)")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true", help="skip the GPU checks (CPU image, CI)")
    gpu = not parser.parse_args().cpu
    try:
        if gpu:
            gpu_checks()
        transcribe(gpu)
    except SmokeFailure as failure:
        print(f"GPU smoke test FAILED: {failure}", flush=True)
        return 1
    print("GPU smoke test passed" if gpu else "Smoke test passed (CPU: the GPU checks were skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
