"""The synthesised dialogue has the speaker turns its reference says it has."""

from __future__ import annotations

import itertools
import wave
from pathlib import Path


def test_dialogue_reference_has_two_alternating_speakers(audio: Path, dialogue: dict):
    turns = dialogue["turns"]
    assert {t["speaker"] for t in turns} == {"alice", "bob"}
    assert all(a["speaker"] != b["speaker"] for a, b in itertools.pairwise(turns))
    assert all(a["end"] < b["start"] for a, b in itertools.pairwise(turns))

    rttm = [line.split() for line in (audio / "dialogue.rttm").read_text().splitlines()]
    assert [(r[7], float(r[3])) for r in rttm] == [(t["speaker"], t["start"]) for t in turns]

    with wave.open(str(audio / "dialogue.wav")) as w:
        assert (w.getframerate(), w.getnchannels()) == (16000, 1)
        duration = w.getnframes() / w.getframerate()
    assert turns[-1]["end"] < duration < turns[-1]["end"] + 1.0


def test_every_common_container_is_synthesised(audio: Path):
    for ext in ("wav", "mp3", "m4a", "ogg", "flac", "webm"):
        assert (audio / f"sentence.{ext}").stat().st_size > 10_000, ext
