"""Synthesised meetings, made harder and more like real ones than the two-voice dialogue: 3-6 espeak voices,
turns of unequal length, a share of them starting before the last one ends, back-channels ("yeah", "right")
spoken over someone else, room reverberation (sox) and background noise, each with its exact reference.

A meeting is seeded, so the same seed makes the same file; the reference turns are where each clip's
voice actually sounds (espeak's leading and trailing silence trimmed), overlaps included. Seeds 0-9 are the
development split (what settings are chosen on), 10-14 the test split (what is reported).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from scripts.bench.recordings import RATE, read_pcm, write_pcm
from scripts.bench.voices import LINES, POOL
from scripts.fixtures import speak

MORE_LINES = [
    "Yes, and the second point is that the new printer still does not work on the third floor.",
    "I spoke to finance about it. They want a proper quote before anything is ordered.",
    "Fine. Then we agree to wait until Monday.",
    "One more thing from me: the holiday calendar needs everybody's dates by the end of the month.",
    "Does anyone object to moving this meeting to nine o'clock?",
    "No objection.",
    "That works for me, as long as the room is free.",
    "I can check the room booking after this call.",
]
BACKCHANNELS = ["Yeah.", "Right.", "Okay.", "Mm-hm.", "Sure.", "I see."]
DEV, TEST = tuple(range(10)), tuple(range(10, 15))
OVERLAP_SHARE = 0.4  # turns that start before the previous one ends
BACKCHANNEL_SHARE = 0.3  # turns during which someone else says a back-channel
SNR_DB = 18.0


def voiced(pcm: np.ndarray) -> tuple[int, int]:
    """First and last sample where the clip's voice sounds (espeak pads its output with silence)."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 0.02 * max(int(np.abs(pcm).max()), 1))
    return (int(loud[0]), int(loud[-1]) + 1) if len(loud) else (0, len(pcm))


def build(seed: int, work: Path) -> dict:
    """Meeting `seed`: {"name", "path", "turns" [(start, end, speaker)], "text", "speakers", "split"}."""
    rng = np.random.default_rng(1000 + seed)
    voices = [str(v) for v in rng.choice(sorted(POOL), 3 + seed % 4, replace=False)]
    lines = [str(line) for line in rng.permutation(LINES + MORE_LINES)]
    name = f"meeting-{seed}"
    track = np.zeros(int(2 * RATE), np.float32)  # grown as needed
    turns, said = [], []
    at, previous = 0.5, None
    with tempfile.TemporaryDirectory() as tmp:

        def clip(text: str, who: str, key: str) -> np.ndarray:
            path = Path(tmp) / f"{key}.wav"
            speak(text, path, **POOL[who])
            pcm = read_pcm(path)
            first, last = voiced(pcm)
            return pcm[first:last].astype(np.float32) / 32768

        def put(samples: np.ndarray, start_s: float) -> None:
            nonlocal track
            begin = int(start_s * RATE)
            if begin + len(samples) > len(track):
                track = np.concatenate([track, np.zeros(begin + len(samples) - len(track) + RATE, np.float32)])
            track[begin : begin + len(samples)] += samples

        i = 0
        while i < len(lines):
            who = str(rng.choice([v for v in voices if v != previous]))
            count = int(rng.choice([1, 1, 2, 3]))  # unequal turns: mostly one line, some long ones
            speech = np.concatenate([clip(line, who, f"{i + k}") for k, line in enumerate(lines[i : i + count])])
            said.append(" ".join(lines[i : i + count]))
            if previous is not None and rng.random() < OVERLAP_SHARE:
                at = max(turns[-1][0] + 0.5, at - float(rng.uniform(0.4, 1.2)))  # starts over the last one's end
            put(speech, at)
            end = at + len(speech) / RATE
            turns.append((round(at, 3), round(end, 3), who))
            if rng.random() < BACKCHANNEL_SHARE and len(speech) / RATE > 3:
                other = str(rng.choice([v for v in voices if v != who]))
                word = str(rng.choice(BACKCHANNELS))
                short = clip(word, other, f"b{i}")
                middle = at + float(rng.uniform(1.0, len(speech) / RATE - 1.0))
                put(0.8 * short, middle)
                turns.append((round(middle, 3), round(middle + len(short) / RATE, 3), other))
                said.append(word)
            at = end + float(rng.uniform(0.2, 0.9))
            previous, i = who, i + count
        length = int((at + 0.5) * RATE)
        track = track[:length]
        track /= max(1.0, float(np.abs(track).max()) / 0.9)
        dry = Path(tmp) / "dry.wav"
        write_pcm(dry, (track * 32767).astype("<i2"))
        wet = Path(tmp) / "wet.wav"
        # a small meeting room: 40 % reverberance, some damping, a far-field feel
        subprocess.run(["sox", "-R", str(dry), str(wet), "reverb", "40", "50", "60", "trim", "0", f"{length / RATE}"],
                       check=True)  # fmt: skip
        room = read_pcm(wet).astype(np.float32) / 32768
    noise = np.cumsum(rng.normal(0, 1, len(room))).astype(np.float32)  # brown-ish hum, then high-passed a little
    noise -= np.convolve(noise, np.ones(400) / 400, mode="same")
    noise *= np.sqrt(np.mean(room**2) / max(np.mean(noise**2), 1e-12)) * 10 ** (-SNR_DB / 20)
    mixed = room + noise
    mixed /= max(1.0, float(np.abs(mixed).max()) / 0.95)
    path = work / f"{name}.wav"
    write_pcm(path, (mixed * 32767).astype("<i2"))
    turns.sort()
    return {"name": name, "path": path, "turns": turns, "text": " ".join(said), "speakers": len(voices),
            "split": "dev" if seed in DEV else "test", "source": "synthesised (scripts/eval/meetings.py)",
            "licence": "espeak-ng output (GPL-3.0-or-later engine; the audio is this project's)"}  # fmt: skip
