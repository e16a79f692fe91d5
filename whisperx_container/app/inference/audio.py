"""Decoding uploads with ffmpeg into 16 kHz mono 16-bit PCM on disk, read back a window at a time.

The decoded audio never sits in memory whole: 90 minutes are 173 MB of PCM in the request's private
temporary directory, and the pipeline reads the window it works on (`PcmAudio.read`).

What a decode costs is known before it starts. ffprobe reads the container first, and the upload is
refused (a 400 saying why) unless its format is a real audio or video container (CONTAINERS; text
formats ffmpeg also reads, such as SBaGen scripts, playlists and concat lists, are not), its audio is
sampled at 8 kHz or more (a WAV declaring 1 Hz decodes to 16,000 samples a byte), and it declares at
most WHISPERX_MAX_AUDIO_S of audio. The decode itself may write no more PCM than the declared duration
needs (plus a margin), so a lying header cannot fill the disk; only local files are read
(-protocol_whitelist file).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
BYTES_PER_S = 2 * SAMPLE_RATE  # s16le mono
MIN_SOURCE_RATE = 8000
# ffmpeg demuxers of real recordings: WAV and its relatives, MP3, MP4/M4A/MOV, Ogg (Vorbis, Opus, FLAC),
# FLAC, Matroska/WebM, AAC, AMR, ASF (WMA), CAF, WavPack, AC-3.
CONTAINERS = ("wav", "w64", "aiff", "au", "caf", "mp3", "mov", "ogg", "flac", "matroska", "aac", "amr", "asf",
              "wv", "ac3", "eac3")  # fmt: skip
WHITELISTS = ("-format_whitelist", ",".join(CONTAINERS), "-protocol_whitelist", "file")


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


@dataclass(frozen=True)
class Probe:
    """What the container declares: its format, its first audio stream's sample rate, its duration."""

    format: str
    sample_rate: int
    duration: float | None  # None when the container does not say (some raw streams)


def probe(source: Path, max_audio_s: float, timeout_s: float = 60.0) -> Probe:
    """Read the upload's container without decoding it; AudioError unless it is audio worth decoding."""
    cmd = [
        "ffprobe", "-v", "error", *WHITELISTS, "-select_streams", "a:0",
        "-show_entries", "format=format_name,duration:stream=sample_rate", "-of", "json", str(source),
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AudioError("reading the file's format took too long") from exc
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.replace(str(source), "input").splitlines() if line.strip()]
        detail = "its format is not one of them" if any("not on whitelist" in x for x in lines) else lines[-1:]
        raise AudioError(
            "could not decode the audio: it is not an audio or video file this service reads "
            f"({', '.join(CONTAINERS)}): {detail if isinstance(detail, str) else ''.join(detail) or 'unknown format'}"
        )
    info = json.loads(proc.stdout or "{}")
    streams = info.get("streams") or []
    if not streams:
        raise AudioError("the file has no audio stream")
    rate = int(float(streams[0].get("sample_rate") or 0))
    if rate < MIN_SOURCE_RATE:
        raise AudioError(f"the audio's sample rate is {rate} Hz; at least {MIN_SOURCE_RATE} Hz is needed")
    declared = (info.get("format") or {}).get("duration")
    duration = float(declared) if declared not in (None, "N/A") else None
    if duration is not None and duration > max_audio_s:
        raise AudioError(
            f"the audio is {duration / 3600:.1f} h long; this service takes at most {max_audio_s / 3600:g} h "
            "(WHISPERX_MAX_AUDIO_S)"
        )
    return Probe((info.get("format") or {}).get("format_name", "?"), rate, duration)


def decode_limit(declared: Probe, max_audio_s: float) -> int:
    """The most PCM bytes a decode of this file may write: its declared duration (or the cap), plus a margin."""
    seconds = min(declared.duration, max_audio_s) if declared.duration is not None else max_audio_s
    return int(seconds * 1.02 * BYTES_PER_S) + 2 * BYTES_PER_S


def decode(source: Path, target: Path, max_audio_s: float = 4 * 3600, timeout_s: float = 3600.0) -> PcmAudio:
    """Any audio or video container ffmpeg reads (wav, mp3, m4a, ogg, flac, webm, ...) to 16 kHz mono s16le."""
    declared = probe(source, max_audio_s)
    limit = decode_limit(declared, max_audio_s)
    cmd = [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-xerror", *WHITELISTS,
        "-i", str(source), "-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(SAMPLE_RATE),
        "-f", "s16le", "-acodec", "pcm_s16le", "-fs", str(limit), "-y", str(target),
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        target.unlink(missing_ok=True)
        raise AudioError("decoding the audio took too long") from exc
    if target.exists() and target.stat().st_size >= limit:
        target.unlink()
        said = f"{declared.duration:.0f} s" if declared.duration is not None else "nothing"
        raise AudioError(f"the file decodes to more audio than it declares ({said}): refused as malformed")
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
