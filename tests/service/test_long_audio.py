"""A recording longer than a diarization window: cut into windows, each diarized on its own, its speakers
linked to the recording's by their voices (docs/service.md, "Bounded memory on long recordings").

A service with 80 s windows gets 4 minutes of the espeak dialogue and pyannote's sample in turn (the
benchmark's mix): three windows, each holding all four voices, so every window's speakers must be
linked to the ones before.
"""

from __future__ import annotations

import wave
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from app.inference.audio import PcmAudio
from app.inference.windows import cut_windows

from scripts.bench.recordings import mix, reference_blocks
from scripts.bench.scoring import speaker_at, word_speaker_accuracy
from tests.service.conftest import Container, serving, transcribe

pytestmark = pytest.mark.integration
WINDOW_S = 80
MINUTES = 4


@pytest.fixture(scope="module")
def windowed(model_bundle: Path) -> Iterator[Container]:
    yield from serving(model_bundle, {"WHISPERX_WINDOW_S": str(WINDOW_S)})


@pytest.fixture(scope="module")
def recording(audio: Path, pyannote_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The mix, its reference turns, and the windows the service cuts it into."""
    work = tmp_path_factory.mktemp("long-audio")
    rec = mix(MINUTES, reference_blocks(audio, pyannote_sample), work)
    with wave.open(str(rec["path"])) as w:
        (work / "mix.s16le").write_bytes(w.readframes(w.getnframes()))
    pcm = PcmAudio(work / "mix.s16le", (work / "mix.s16le").stat().st_size // 2)
    return {**rec, "turns": [tuple(t) for t in rec["turns"]], "windows": cut_windows(pcm, WINDOW_S)}


def labels_by_voice_and_window(result: dict, recording: dict) -> dict[tuple[str, int], Counter]:
    """How many words of each reference voice got each label, per window."""
    table: dict[tuple[str, int], Counter] = defaultdict(Counter)
    for seg in result["segments"]:
        for word in seg["words"]:
            mid = (word["start"] + word["end"]) / 2
            window = next(i for i, (start, end) in enumerate(recording["windows"]) if start <= mid <= end)
            table[(speaker_at(recording["turns"], mid), window)][word["speaker"]] += 1
    return table


def labels_by_voice(result: dict, recording: dict) -> dict[str, Counter]:
    voices: dict[str, Counter] = defaultdict(Counter)
    for (voice, _), counts in labels_by_voice_and_window(result, recording).items():
        voices[voice] += counts
    return voices


def test_each_voice_keeps_one_label_in_every_window(windowed: Container, recording: dict):
    result = transcribe(windowed.url, recording["path"], timeout=600)

    assert len(recording["windows"]) == 3
    assert f"{MINUTES * 60:.1f} s of audio in 3 diarization window(s)" in windowed.logs()
    assert len(result["speakers"]) == 4, result["speakers"]
    table = labels_by_voice_and_window(result, recording)
    voices = sorted({voice for voice, _ in table})
    assert len(voices) == 4 and {w for _, w in table} == {0, 1, 2}  # every voice speaks in every window
    label_of = {}
    for voice in voices:
        majority = {w: table[(voice, w)].most_common(1)[0][0] for w in range(3)}
        assert len(set(majority.values())) == 1, f"{voice} changes label between windows: {dict(table)}"
        label_of[voice] = majority[0]
    assert len(set(label_of.values())) == 4, label_of  # and no two voices share one
    assert word_speaker_accuracy(result["segments"], recording["turns"]) >= 0.85


def test_num_speakers_merges_whole_voices_across_windows(windowed: Container, recording: dict):
    result = transcribe(windowed.url, recording["path"], timeout=600, num_speakers=2)

    assert [s["id"] for s in result["speakers"]] == ["SPEAKER_00", "SPEAKER_01"]
    voices = labels_by_voice(result, recording)
    label_of = {}
    for voice, counts in voices.items():
        label, words = counts.most_common(1)[0]
        assert words >= 0.85 * counts.total(), f"{voice} is split between speakers: {dict(voices)}"
        label_of[voice] = label
    # merged by similarity: the two synthetic voices are more alike than either is to a person
    assert label_of["alice"] == label_of["bob"] != label_of["speaker90"] == label_of["speaker91"], label_of
