"""Where speech is cut for Whisper: the VAD's settings and the shaping of its speech regions.

The scores come from the diarization's segmentation (diarize.speech_chunks); this module is plain
Python, so the unit tests run without the image.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VadOptions:
    """Where speech is cut for Whisper, from the segmentation's "anyone speaking" score: active above
    `threshold` (hysteresis down to OFFSET_RATIO of it), each region started `prefix_padding_s` early,
    pauses shorter than `silence_s` bridged. The defaults are whisperX's; `chunking_strategy=server_vad`
    sets all three (app/api/params.py)."""

    threshold: float = 0.5
    prefix_padding_s: float = 0.0
    silence_s: float = 0.0

    OFFSET_RATIO = 0.363 / 0.5  # whisperX's offset against its onset


def shape_regions(regions: list[tuple[float, float]], pad_s: float, silence_s: float,
                  chunk_s: float) -> list[tuple[float, float]]:  # fmt: skip
    """Speech regions (sorted, apart) started `pad_s` earlier and joined across pauses shorter than
    `silence_s`, never overlapping, before 0 or longer than chunk_s (Whisper hears 30 s at most)."""
    out: list[tuple[float, float]] = []
    for start, end in regions:
        floor = out[-1][1] if out else 0.0
        start = max(floor, min(start, max(start - pad_s, end - chunk_s)))
        if out and start - out[-1][1] < silence_s and end - out[-1][0] <= chunk_s:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out
