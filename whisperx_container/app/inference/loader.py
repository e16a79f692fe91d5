"""Loads the models once, in a background thread at start-up, and reports progress in ServiceState.

Sources, by configuration:
- WHISPERX_MODEL_BUNDLE set: everything from the mounted bundle (whisper-<name>/, the pyannote
  segmentation checkpoint, the CAM++ embedding); the hub is switched off, so nothing is downloaded.
- otherwise: Whisper by name from the hub (or WHISPER_MODEL as a local directory) and the pyannote
  pipeline WHISPERX_DIARIZATION_MODEL with the Hugging Face token.
A failure becomes status "error" with a message naming what is missing; the process stays up.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from app.config import Settings
from app.inference.state import ServiceState

log = logging.getLogger(__name__)

BUNDLE_SEGMENTATION = "pyannote-segmentation-3.0/pytorch_model.bin"
BUNDLE_EMBEDDING = "campplus/campplus_cn_en_common.pt"


class ModelError(RuntimeError):
    """A model cannot be loaded; the message is shown in /health."""


def prepare_environment(settings: Settings) -> None:
    """Set before any Hugging Face library is imported: offline mode, no telemetry."""
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if settings.whisperx_model_bundle:
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
            os.environ[var] = "1"
    if settings.nltk_data:
        # NLTK downloads into the first NLTK_DATA directory only if it exists; else into ~/nltk_data,
        # outside the models volume, so it would be fetched again after every container re-creation
        with suppress(OSError):  # a read-only mount: NLTK falls back on its defaults
            settings.nltk_data.mkdir(parents=True, exist_ok=True)


def whisper_source(settings: Settings) -> tuple[str, bool]:
    """(model name or directory, is it local) for WHISPER_MODEL."""
    name = settings.whisper_model
    if name.startswith("/"):
        if not (Path(name) / "model.bin").is_file():
            raise ModelError(f"WHISPER_MODEL {name} is not a CTranslate2 Whisper directory (no model.bin)")
        return name, True
    bundle = settings.whisperx_model_bundle
    if bundle:
        path = bundle / f"whisper-{name}"
        if not (path / "model.bin").is_file():
            have = sorted(p.name.removeprefix("whisper-") for p in bundle.glob("whisper-*") if p.is_dir())
            raise ModelError(
                f"Whisper model {name!r} is not in the offline bundle {bundle} (it has: {', '.join(have) or 'none'}); "
                "set WHISPER_MODEL to one of those, or unset WHISPERX_MODEL_BUNDLE to download from the hub"
            )
        return str(path), True
    return name, False


@dataclass(frozen=True)
class DeviceProbe:
    """What the libraries see: torch's CUDA devices and CTranslate2's (the GPU itself is stubbed in tests)."""

    torch_cuda: bool
    ct2_cuda_devices: int

    @classmethod
    def look(cls) -> DeviceProbe:
        import ctranslate2
        import torch

        return cls(torch.cuda.is_available(), ctranslate2.get_cuda_device_count())


CPU_WHISPER_FIX = (
    "Whisper would run on the CPU, several times slower, while the GPU sits idle: this image's CTranslate2 has no "
    "CUDA support (PyPI's aarch64 wheels are CPU-only). Rebuild the image with CTranslate2 compiled for CUDA "
    "(the role does when whisperx_ctranslate2_cuda is true, the default on an aarch64 host with GPUs; by hand: "
    "--build-arg CTRANSLATE2_CUDA=1, whisperx_container/README.md), or set WHISPERX_ALLOW_CPU_WHISPER=true to "
    "accept Whisper on the CPU"
)


def resolve_device(settings: Settings, probe: DeviceProbe | None = None) -> tuple[str, str, str]:
    """(torch device: the diarizer's, CTranslate2 device: Whisper's, compute type).

    With GPUs there (WHISPERX_DEVICE=cuda, or auto and torch sees one), Whisper runs on one too or the
    load fails (ModelError): never silently on the CPU, unless WHISPERX_ALLOW_CPU_WHISPER=true."""
    probe = probe or DeviceProbe.look()
    device = settings.whisperx_device
    if device == "auto":
        device = "cuda" if probe.torch_cuda else "cpu"
    if device == "cuda" and not probe.torch_cuda:
        raise ModelError("WHISPERX_DEVICE=cuda but torch sees no CUDA device")
    ct2_device = device
    if device == "cuda" and probe.ct2_cuda_devices == 0:
        if not settings.whisperx_allow_cpu_whisper:
            raise ModelError(f"torch sees a GPU but CTranslate2 sees none. {CPU_WHISPER_FIX}")
        log.warning("CTranslate2 has no CUDA device; Whisper runs on the CPU (WHISPERX_ALLOW_CPU_WHISPER=true)")
        ct2_device = "cpu"
    compute_type = settings.whisperx_compute_type
    if compute_type == "auto":
        compute_type = "float16" if ct2_device == "cuda" else "int8"
    return device, ct2_device, compute_type


class ModelLoader:
    def __init__(self, settings: Settings, state: ServiceState):
        self.settings = settings
        self.state = state

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="model-loader", daemon=True)
        thread.start()
        return thread

    def run(self) -> None:
        try:
            self.load()
            self.state.status = "ready"
            log.info("models ready")
        except Exception as exc:
            message = self._message(exc)
            self.state.error = message
            self.state.status = "error"
            log.error("model loading failed: %s", message)
        finally:
            self.state.settled.set()

    def ensure_loaded(self) -> None:
        """On the inference thread, before a request: the models back after an idle unload (the request waits)."""
        if self.state.pipeline is not None or self.state.status != "unloaded":
            return
        log.info("loading the models again for a request after an idle unload")
        try:
            self.load()
        except Exception as exc:
            self.state.error = self._message(exc)
            self.state.status = "error"
            raise ModelError(f"the models failed to load again: {self.state.error}") from exc
        self.state.status = "ready"

    def unload(self, idle_s: float) -> bool:
        """On the inference thread: release the models if nothing used them for `idle_s` (GPU memory too)."""
        state = self.state
        if state.status != "ready" or time.monotonic() - state.used_at < idle_s:
            return False
        state.pipeline = None
        state.whisper_loaded = state.diarizer_loaded = False
        state.status = "unloaded"
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        with suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand the freed heap back to the system
        log.info("models released after %.0f s without a request (WHISPERX_IDLE_UNLOAD_S)", idle_s)
        return True

    def _message(self, exc: Exception) -> str:
        message = str(exc) if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
        token = self.settings.token()
        return message.replace(token, "***") if token else message

    def load(self) -> None:
        settings, state = self.settings, self.state
        device, ct2_device, compute_type = resolve_device(settings)  # first: a wrong device fails at once
        state.device, state.whisper_device, state.compute_type = device, ct2_device, compute_type
        import torch

        threads = settings.whisperx_threads or os.cpu_count() or 1
        torch.set_num_threads(threads)

        transcriber = self.load_whisper(ct2_device, compute_type, threads)
        state.whisper_loaded = True
        diarization = self.load_diarization(device)
        state.diarizer_loaded = True
        aligner = None
        if not settings.whisperx_model_bundle:
            from app.inference.align import Wav2Vec2Aligner

            aligner = Wav2Vec2Aligner(device)
            language = transcriber.fixed_language or "en"
            state.aligner = "wav2vec2" if aligner.for_language(language) else "whisper"
        else:
            state.aligner = "whisper"

        from app.inference.pipeline import SpeechPipeline

        state.pipeline = SpeechPipeline(
            transcriber,
            diarization,
            diarization._segmentation,
            model_name=settings.whisper_model,
            window_s=settings.whisperx_window_s,
            max_speakers=settings.whisperx_max_speakers,
            aligner=aligner,
            known_speaker_threshold=settings.whisperx_known_speaker_threshold,
        )

    def load_whisper(self, ct2_device: str, compute_type: str, threads: int):
        import whisperx

        from app.inference.asr import WhisperTranscriber

        source, local = whisper_source(self.settings)
        log.info("loading Whisper %s on %s (%s)", source, ct2_device, compute_type)
        try:
            pipeline = whisperx.load_model(
                source,
                ct2_device,
                compute_type=compute_type,
                vad_model=_NoVad(),  # the VAD is the diarization's segmentation (app.inference.diarize.speech_chunks)
                threads=threads,
                local_files_only=local or bool(self.settings.whisperx_model_bundle),
            )
        except Exception as exc:
            if local:
                raise ModelError(f"cannot load Whisper from {source}: {exc}") from exc
            raise ModelError(f"cannot load Whisper {source!r} from the Hugging Face hub: {exc}") from exc
        return WhisperTranscriber(pipeline, self.settings.whisperx_batch_size)

    def load_diarization(self, device: str):
        import torch
        from pyannote.audio import Model, Pipeline

        from app.inference.diarize import BundleDiarization, share_segmentations
        from app.inference.embedding import CamPlusEmbedding

        bundle = self.settings.whisperx_model_bundle
        if bundle:
            for rel in (BUNDLE_SEGMENTATION, BUNDLE_EMBEDDING):
                if not (bundle / rel).is_file():
                    raise ModelError(f"the offline bundle {bundle} has no {rel}")
            segmentation = Model.from_pretrained(str(bundle / BUNDLE_SEGMENTATION))
            embedding = CamPlusEmbedding(bundle / BUNDLE_EMBEDDING, torch.device(device))
            pipeline = BundleDiarization(segmentation.to(torch.device(device)), embedding)
            return pipeline
        name, token = self.settings.whisperx_diarization_model, self.settings.token()
        try:
            pipeline = Pipeline.from_pretrained(name, token=token)
        except Exception as exc:
            hint = "" if token else " (gated models need HF_TOKEN_FILE or HF_TOKEN, with the model's terms accepted)"
            raise ModelError(f"cannot load the diarization pipeline {name!r}: {exc}{hint}") from exc
        if pipeline is None:
            raise ModelError(f"cannot load the diarization pipeline {name!r}: not found or gated; check the token")
        pipeline.to(torch.device(device))
        return share_segmentations(pipeline)


class _NoVad:
    """Placeholder so whisperx.load_model does not load its own VAD model; ours is shared with diarization."""

    def __call__(self, *args, **kwargs):
        raise RuntimeError("whisperX's VAD is not used here")
