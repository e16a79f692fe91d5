"""Reference recordings with known speakers and words: the espeak dialogue, pyannote's sample, and mixes.

A mix cycles through the two (four speakers: two espeak voices, two people) with pauses, cut to
length, and keeps their reference turns and the text of every line that fits. The benchmark builds
1 to 90 minutes of it; the service tests build a few minutes to cross diarization windows.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np

from scripts.bench.scoring import rttm_turns, stm_lines

RATE = 16000
PAUSE_S = 1.0


def read_pcm(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2, path
        return np.frombuffer(w.readframes(w.getnframes()), "<i2")


def write_pcm(path: Path, pcm: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())


def dialogue_lines(fixtures: Path) -> list[tuple[float, float, str]]:
    """(start, end, text) of each turn of the espeak dialogue (scripts/fixtures.py)."""
    turns = json.loads((fixtures / "dialogue.json").read_text())["turns"]
    return [(t["start"], t["end"], t["text"]) for t in turns]


def reference_blocks(fixtures: Path, pyannote_sample: Path) -> list[dict]:
    """The two references a mix is made of: PCM, speaker turns and the lines spoken."""
    return [
        {
            "pcm": read_pcm(fixtures / "dialogue.wav"),
            "turns": rttm_turns(fixtures / "dialogue.rttm"),
            "lines": dialogue_lines(fixtures),
        },
        {
            "pcm": read_pcm(pyannote_sample / "sample.wav"),
            "turns": rttm_turns(pyannote_sample / "sample.rttm"),
            "lines": stm_lines(pyannote_sample / "sample.stm"),
        },
    ]


def mix(minutes: float, blocks: list[dict], work: Path) -> dict:
    """A recording of `minutes` cycling through blocks with pauses: {path, turns, text, blocks}.

    Cached in `work` (long-<minutes>min.wav and its .json).
    """
    path = work / f"long-{minutes:g}min.wav"
    meta = work / f"long-{minutes:g}min.v2.json"  # turns and the words of the lines that fit
    if path.is_file() and meta.is_file():
        return {"path": path, **json.loads(meta.read_text())}
    target = int(minutes * 60 * RATE)
    gap = np.zeros(int(PAUSE_S * RATE), "<i2")
    parts, turns, lines, n, i = [], [], [], 0, 0
    while n < target:
        block = blocks[i % len(blocks)]
        offset = n / RATE
        turns += [(offset + s, offset + e, spk) for s, e, spk in block["turns"] if offset + e <= minutes * 60]
        lines += [text for _, e, text in block["lines"] if offset + e <= minutes * 60]
        parts += [block["pcm"], gap]
        n += len(block["pcm"]) + len(gap)
        i += 1
    write_pcm(path, np.concatenate(parts)[:target])
    info = {"turns": turns, "text": " ".join(lines), "blocks": i}
    meta.write_text(json.dumps(info))
    return {"path": path, **info}
