"""wav2vec2 forced alignment (whisperX's `align`) where an alignment model can be had.

Models come from torchaudio / the Hugging Face hub per language, loaded on first use and kept. A
language without one (or no network) falls back to Whisper's own word times, logged once.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
import whisperx

log = logging.getLogger(__name__)


class Wav2Vec2Aligner:
    def __init__(self, device: str):
        self.device = device
        self.models: dict[str, tuple] = {}
        self.unavailable: set[str] = set()
        self.lock = threading.Lock()

    def for_language(self, language: str) -> _LanguageAligner | None:
        with self.lock:
            if language in self.unavailable:
                return None
            if language not in self.models:
                try:
                    self.models[language] = whisperx.load_align_model(language_code=language, device=self.device)
                except Exception as exc:  # no model for the language, or no network: Whisper's times instead
                    log.warning("no wav2vec2 alignment for %r (%s); word times come from Whisper", language, exc)
                    self.unavailable.add(language)
                    return None
            model, metadata = self.models[language]
        return _LanguageAligner(model, metadata, self.device)


class _LanguageAligner:
    def __init__(self, model, metadata, device: str):
        self.model, self.metadata, self.device = model, metadata, device

    def align(self, segments: list[dict], audio: np.ndarray, offset: float) -> list[dict]:
        local = [{"start": s["start"] - offset, "end": s["end"] - offset, "text": s["text"]} for s in segments]
        aligned = whisperx.align(local, self.model, self.metadata, audio, self.device)["segments"]
        out = []
        for seg in aligned:
            words = [
                {
                    "word": w["word"],
                    "start": round(w["start"] + offset, 3),
                    "end": round(w["end"] + offset, 3),
                    "probability": round(float(w.get("score", 0.0)), 3),
                }
                for w in seg.get("words", [])
                if "start" in w and "end" in w
            ]
            start, end = seg["start"] + offset, seg["end"] + offset
            out.append({"start": start, "end": end, "text": seg["text"].strip(), "words": words})
        return out
