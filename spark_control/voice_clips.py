"""A voice's reference clip from what an operator uploads: checked, mono, 16 kHz, at most 10 s of speech.

An upload is 2-30 s of audio that libsndfile reads (WAV, FLAC, MP3, Ogg Vorbis/Opus); of a clip longer
than what the service takes as a known speaker's reference (10 s), the loudest 10 s are kept. What is
stored and sent is a 16-bit 16 kHz mono WAV: 320 kB at most, under the service's per-field limit as a
data URL. Anything else is a ClipError, a 4xx with a message.
"""

from __future__ import annotations

import io
import wave

import numpy as np
import soundfile
import soxr

RATE = 16000
MIN_S, MAX_UPLOAD_S, REFERENCE_S = 2.0, 30.0, 10.0
MAX_UPLOAD_BYTES = 16 << 20  # 30 s of 48 kHz 24-bit stereo WAV is 8.6 MB
SILENT_RMS = 1e-3  # -60 dBFS: nothing to recognise a voice by
FORMATS = "WAV, FLAC, MP3 or Ogg"


class ClipError(ValueError):
    def __init__(self, message: str, status: int = 400, code: str = "invalid_clip"):
        super().__init__(message)
        self.status, self.code = status, code


def reference_clip(data: bytes) -> tuple[bytes, float]:
    """(16 kHz mono WAV of at most REFERENCE_S, the upload's duration) from an upload's bytes."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise ClipError(f"a voice clip is at most {MAX_UPLOAD_BYTES >> 20} MB", 413, "file_too_large")
    if not data:
        raise ClipError("the clip is empty", code="empty_file")
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as source:
            rate = source.samplerate
            # Read no more than the limit allows, whatever the header claims: a crafted file costs 30 s.
            samples = source.read(int((MAX_UPLOAD_S + 1) * rate), dtype="float32", always_2d=True)
            longer = len(source.read(1, dtype="float32")) > 0
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError):
        raise ClipError(f"the clip is not audio spark-control can read ({FORMATS})", 415, "invalid_audio") from None
    seconds = len(samples) / rate
    if longer or seconds > MAX_UPLOAD_S:
        raise ClipError(f"the clip is longer than {MAX_UPLOAD_S:g} s: a voice clip is {MIN_S:g}-{MAX_UPLOAD_S:g} s "
                        "of one person speaking", code="clip_too_long")  # fmt: skip
    if seconds < MIN_S:
        raise ClipError(f"the clip is {seconds:.1f} s long: a voice clip is {MIN_S:g}-{MAX_UPLOAD_S:g} s of one "
                        "person speaking", code="clip_too_short")  # fmt: skip
    mono = samples.mean(axis=1)
    if rate != RATE:
        mono = soxr.resample(mono, rate, RATE).astype(np.float32)
    mono = loudest(mono, int(REFERENCE_S * RATE))
    if float(np.sqrt(np.mean(mono**2))) < SILENT_RMS:
        raise ClipError("the clip is silent", code="silent_clip")
    return wav(mono), round(seconds, 3)


def loudest(samples: np.ndarray, length: int, frame: int = RATE // 10) -> np.ndarray:
    """The `length` samples of most energy (the whole clip when it is not longer), on a 0.1 s grid."""
    if len(samples) <= length:
        return samples
    frames = len(samples) // frame
    energy = np.square(samples[: frames * frame]).reshape(frames, frame).sum(axis=1)
    span = length // frame
    sums = np.convolve(energy, np.ones(span), mode="valid")
    start = int(np.argmax(sums)) * frame
    return samples[start : start + length]


def wav(samples: np.ndarray) -> bytes:
    pcm = (np.clip(samples, -1.0, 32767 / 32768) * 32768).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def pcm(data: bytes) -> np.ndarray:
    """A stored clip's samples (float32), for joining a voice's clips into one reference."""
    with wave.open(io.BytesIO(data)) as clip:
        return np.frombuffer(clip.readframes(clip.getnframes()), "<i2").astype(np.float32) / 32768
