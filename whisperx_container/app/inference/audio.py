"""Decoding uploads with ffmpeg into 16 kHz mono 16-bit PCM on disk, read back a window at a time.

The decoded audio never sits in memory whole: 90 minutes are 173 MB of PCM in the request's private
temporary directory, and the pipeline reads the window it works on (`PcmAudio.read`).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000


class AudioError(ValueError):
    """The upload is not usable audio; the message is for the caller."""


@dataclass(frozen=True)
class PcmAudio:
    path: Path
    samples: int

    @property
    def duration(self) -> float:
        return self.samples / SAMPLE_RATE

    def read(self, start_s: float = 0.0, end_s: float | None = None) -> np.ndarray:
        """float32 samples in [-1, 1) between two times."""
        first = max(0, int(start_s * SAMPLE_RATE))
        last = self.samples if end_s is None else min(self.samples, int(end_s * SAMPLE_RATE))
        if last <= first:
            return np.zeros(0, np.float32)
        pcm = np.fromfile(self.path, dtype="<i2", count=last - first, offset=2 * first)
        return pcm.astype(np.float32) / 32768.0

    def rms_frames(self, start_s: float, end_s: float, frame_s: float = 0.1) -> np.ndarray:
        audio = self.read(start_s, end_s)
        n = int(frame_s * SAMPLE_RATE)
        usable = len(audio) // n * n
        if usable == 0:
            return np.zeros(0, np.float32)
        return np.sqrt(np.mean(audio[:usable].reshape(-1, n) ** 2, axis=1))


def decode(source: Path, target: Path, timeout_s: float = 3600.0) -> PcmAudio:
    """Any format ffmpeg reads (wav, mp3, m4a, ogg, flac, webm, ...) to 16 kHz mono s16le at target."""
    cmd = [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-xerror",
        "-i", str(source), "-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(SAMPLE_RATE),
        "-f", "s16le", "-acodec", "pcm_s16le", "-y", str(target),
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AudioError("decoding the audio took too long") from exc
    errors = [line.replace(str(source), "input") for line in proc.stderr.splitlines() if line.strip()]
    if proc.returncode != 0:
        reason = errors[-1] if errors else f"ffmpeg exited with {proc.returncode}"
        if "does not contain any stream" in reason or "matches no streams" in reason:
            reason = "the file has no audio stream"
        raise AudioError(f"could not decode the audio: {reason}")
    samples = target.stat().st_size // 2 if target.exists() else 0
    if samples == 0:
        raise AudioError("the file contains no audio samples")
    if errors:
        raise AudioError(f"the audio is truncated or corrupt: {errors[-1]}")
    if ogg_ends_mid_page(source):
        raise AudioError("the audio is truncated: the Ogg stream ends in the middle of a page")
    return PcmAudio(target, samples)


OGG_PAGE_HEADER = 27  # "OggS", version, flags, granule (8), serial (4), sequence (4), CRC (4), segment count


def ogg_ends_mid_page(path: Path) -> bool:
    """Whether an Ogg file (Vorbis, Opus, FLAC in Ogg...) stops inside a page, i.e. was cut short.

    ffmpeg decodes such a file to the last complete page without a warning, even with -xerror or
    -err_detect explode, so a truncated .ogg would pass as a shorter recording. Walks the page
    headers (a few bytes read per page). A file cut exactly at a page boundary is a valid, shorter
    stream and passes; so does anything that does not start as Ogg.
    """
    size = path.stat().st_size
    offset = 0
    with path.open("rb") as f:
        while offset < size:
            f.seek(offset)
            header = f.read(OGG_PAGE_HEADER)
            if not b"OggS".startswith(header[:4]):
                return False  # not Ogg, or bytes after the last page that ffmpeg ignores as well
            if len(header) < OGG_PAGE_HEADER:
                return True
            lacing = f.read(header[26])
            if len(lacing) < header[26]:
                return True
            offset += OGG_PAGE_HEADER + len(lacing) + sum(lacing)
    return offset > size
