"""What the service knows about itself: model loading progress, shown by /health."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ServiceState:
    status: str = "loading"  # loading | ready | error | unloaded (released after WHISPERX_IDLE_UNLOAD_S idle)
    whisper_loaded: bool = False
    diarizer_loaded: bool = False
    aligner: str | None = None  # wav2vec2 | whisper
    device: str = "cpu"  # torch's: the diarizer's and the aligner's
    whisper_device: str = "cpu"  # CTranslate2's
    compute_type: str = "auto"
    error: str | None = None
    pipeline: Any = None  # app.inference.pipeline.SpeechPipeline once loaded
    settled: threading.Event = field(default_factory=threading.Event)  # set once ready or failed to load
    used_at: float = field(default_factory=time.monotonic)  # when a request last started or ended
