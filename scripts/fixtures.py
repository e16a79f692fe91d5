#!/usr/bin/env python3
"""Synthesise the test audio with espeak-ng: short clips and a scripted two-speaker dialogue.

Writes into the given directory (outside git):

    sentence.wav              one sentence, 16 kHz mono; its text in sentence.txt
    sentence.{mp3,m4a,ogg,flac,webm}   the same sentence in other containers and codecs
    silence.wav               three seconds of digital silence
    dialogue.wav              two clearly different voices taking turns, 16 kHz mono
    dialogue.rttm             the reference speaker turns (NIST RTTM)
    dialogue.json             turns with speaker, voice, start, end and text
    followup.{wav,rttm,json}  the same two voices in another conversation (a meeting a week later)
    manifest.json             what was made, and the key that decides when to remake it

Cached: nothing is synthesised when manifest.json carries the current key (this script's hash and
the espeak-ng version).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

RATE = 16000
SENTENCE = "Please schedule the quarterly budget meeting for Thursday afternoon at three o'clock."
FORMATS = {
    "mp3": ["-c:a", "libmp3lame", "-b:a", "64k"],
    "m4a": ["-c:a", "aac", "-b:a", "64k"],
    "ogg": ["-c:a", "libvorbis", "-q:a", "4"],
    "flac": ["-c:a", "flac"],
    "webm": ["-c:a", "libopus", "-b:a", "48k"],
}
# Two voices a diarizer can tell apart: a low American male and a high British female.
VOICES = {
    "alice": {"voice": "en-gb+f4", "pitch": "75", "speed": "150"},
    "bob": {"voice": "en-us+m3", "pitch": "25", "speed": "155"},
}
DIALOGUE = [
    ("alice", "Good morning Bob. Did you finish the report about the new warehouse?"),
    ("bob", "Almost. I still need the delivery numbers from the northern region."),
    ("alice", "I can send those this afternoon. They arrived yesterday evening."),
    ("bob", "Great. Then I will add the charts and share the document with the team."),
    ("alice", "Remember that the director wants a short summary on the first page."),
    ("bob", "Of course. I will keep it under one hundred words."),
    ("alice", "Perfect. Let us meet again on Friday to review everything together."),
    ("bob", "Friday works for me. See you then."),
]
# The same two people a week later, other sentences: what a voice named in the first must name here.
FOLLOWUP = [
    ("bob", "Hello Alice. The charts are finished and the team has read the document."),
    ("alice", "Thank you. The director liked the summary and asked for one more table."),
    ("bob", "Which table does she want? I can add it before the end of the week."),
    ("alice", "The monthly costs of the southern depot, compared with last year."),
]
GAP_S = 0.6  # pause between turns


def key() -> str:
    version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout
    return hashlib.sha256(Path(__file__).read_bytes() + version.encode()).hexdigest()[:16]


def speak(text: str, out: Path, voice: str, pitch: str = "50", speed: str = "160") -> None:
    """espeak-ng to a 16 kHz mono 16-bit WAV."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as raw:
        subprocess.run(["espeak-ng", "-v", voice, "-p", pitch, "-s", speed, "-w", raw.name, text], check=True)
        subprocess.run(["sox", "-R", raw.name, "-r", str(RATE), "-c", "1", "-b", "16", str(out)], check=True)


def frames(path: Path) -> bytes:
    with wave.open(str(path)) as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2
        return w.readframes(w.getnframes())


def write_wav(path: Path, pcm: bytes) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm)


def make_dialogue(out: Path, tmp: Path, script: list[tuple[str, str]] = DIALOGUE, name: str = "dialogue") -> list[dict]:
    silence = b"\x00\x00" * int(GAP_S * RATE)
    pcm, turns = bytearray(silence), []
    for i, (speaker, text) in enumerate(script):
        clip = tmp / f"{name}-turn{i}.wav"
        speak(text, clip, **VOICES[speaker])
        start = len(pcm) / 2 / RATE
        pcm += frames(clip)
        turns.append(
            {
                "speaker": speaker,
                "voice": VOICES[speaker]["voice"],
                "start": round(start, 3),
                "end": round(len(pcm) / 2 / RATE, 3),
                "text": text,
            }
        )
        pcm += silence
    write_wav(out / f"{name}.wav", bytes(pcm))
    (out / f"{name}.json").write_text(json.dumps({"turns": turns}, indent=2) + "\n")
    rttm = "".join(
        f"SPEAKER {name} 1 {t['start']:.3f} {t['end'] - t['start']:.3f} <NA> <NA> {t['speaker']} <NA> <NA>\n"
        for t in turns
    )
    (out / f"{name}.rttm").write_text(rttm)
    return turns


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dest", type=Path)
    dest: Path = parser.parse_args().dest

    current = key()
    manifest = dest / "manifest.json"
    if manifest.is_file() and json.loads(manifest.read_text()).get("key") == current:
        print(f"audio fixtures present in {dest}")
        return 0

    dest.mkdir(parents=True, exist_ok=True)
    manifest.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        speak(SENTENCE, dest / "sentence.wav", voice="en-us", speed="150")
        (dest / "sentence.txt").write_text(SENTENCE + "\n")
        for ext, codec in FORMATS.items():
            subprocess.run(
                ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(dest / "sentence.wav"), *codec,
                 str(dest / f"sentence.{ext}")],
                check=True,
            )  # fmt: skip
        write_wav(dest / "silence.wav", b"\x00\x00" * 3 * RATE)
        turns = make_dialogue(dest, Path(tmp))
        make_dialogue(dest, Path(tmp), FOLLOWUP, "followup")

    files = sorted(p.name for p in dest.iterdir() if p.name != "manifest.json")
    manifest.write_text(json.dumps({"key": current, "files": files, "turns": len(turns)}, indent=2) + "\n")
    print(f"audio fixtures synthesised in {dest}: {', '.join(files)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
