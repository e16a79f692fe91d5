"""A finished job's speakers without the image (whisperx_container/app/jobs/speakers.py): which speech a
speaker's reference clip is cut from, the clip itself, and renaming a speaker everywhere in the result."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import pytest
from app.api.errors import APIError
from app.api.formats import diarized_json, srt, vtt
from app.inference.audio import SAMPLE_RATE, PcmAudio
from app.inference.transcript import Transcript
from app.jobs.speakers import clearest, clips, rename


def segment(start: float, end: float, speaker: str, probability: float, text: str = "words here") -> dict:
    middle = (start + end) / 2
    words = [{"word": "words", "start": start, "end": middle, "probability": probability, "speaker": speaker},
             {"word": "here", "start": middle, "end": end, "probability": probability, "speaker": speaker}]  # fmt: skip
    return {"start": start, "end": end, "speaker": speaker, "text": text, "words": words}


def transcript(*segments: dict) -> Transcript:
    turns = [(s["start"], s["end"], s["speaker"]) for s in segments]
    return Transcript.from_segments(list(segments), turns, language="en", duration=60.0, model="tiny.en", diarized=True)


def test_the_clearest_solo_speech_is_chosen_best_first_up_to_ten_seconds():
    t = transcript(
        segment(0.0, 4.0, "SPEAKER_00", 0.70),
        segment(5.0, 11.0, "SPEAKER_00", 0.95),
        segment(12.0, 16.0, "SPEAKER_00", 0.90),
        segment(20.0, 26.0, "SPEAKER_01", 0.99),
    )
    spans = clearest(t, "SPEAKER_00")
    assert spans[0] == (5.0, 11.0)  # the most confident first, whole
    assert spans[1][0] == 12.0 and spans[1][1] == pytest.approx(15.8)  # then the next, cut at 10 s in all
    assert len(spans) == 2


def test_speech_someone_talks_over_is_never_a_reference():
    t = transcript(
        segment(0.0, 6.0, "SPEAKER_00", 0.99),
        segment(5.0, 9.0, "SPEAKER_01", 0.99),  # over the end of SPEAKER_00's and the start of the next
        segment(8.5, 9.5, "SPEAKER_00", 0.99),
        segment(10.0, 13.0, "SPEAKER_00", 0.50),
    )
    assert clearest(t, "SPEAKER_00") == [(10.0, 13.0)]
    assert clearest(t, "SPEAKER_01") == []  # overlapped wherever it talks


def test_a_speaker_with_under_two_seconds_of_clear_speech_gets_no_clip(tmp_path: Path):
    t = transcript(segment(0.0, 1.5, "SPEAKER_00", 0.99), segment(3.0, 9.0, "SPEAKER_01", 0.9))
    assert clearest(t, "SPEAKER_00") == []
    pcm = tmp_path / "audio.s16le"
    tone = (0.3 * np.sin(np.arange(10 * SAMPLE_RATE) * 2 * np.pi * 220 / SAMPLE_RATE) * 32767).astype("<i2")
    tone.tofile(pcm)
    made = clips(t, PcmAudio(pcm, len(tone)))
    assert set(made) == {"SPEAKER_01"}
    with wave.open(io.BytesIO(made["SPEAKER_01"])) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (SAMPLE_RATE, 1, 2)
        assert w.getnframes() == 6 * SAMPLE_RATE


def test_renaming_a_speaker_changes_every_format_and_keeps_its_clip():
    t = transcript(segment(0.0, 3.0, "SPEAKER_00", 0.9, "Hello Bob."), segment(3.5, 6.0, "SPEAKER_01", 0.9, "Hi."))
    result = {"transcript": t.model_dump(mode="json"), "clips": {"SPEAKER_00": "00.wav", "SPEAKER_01": "01.wav"}}
    saved, speaker = rename(result, "SPEAKER_00", "  Alice ")
    assert speaker["id"] == speaker["name"] == "Alice"
    assert saved["clips"] == {"Alice": "00.wav", "SPEAKER_01": "01.wav"}
    renamed = Transcript.model_validate(saved["transcript"])
    assert [s.speaker for s in renamed.segments] == ["Alice", "SPEAKER_01"]
    assert {w.speaker for w in renamed.segments[0].words} == {"Alice"}
    assert "[Alice] Hello Bob." in srt(renamed)
    assert "<v Alice>" in vtt(renamed)
    assert [s["speaker"] for s in diarized_json(renamed)["segments"]] == ["Alice", "A"]
    assert [t.speaker for t in renamed.turns] == ["Alice", "SPEAKER_01"]
    assert result["transcript"]["segments"][0]["speaker"] == "SPEAKER_00"  # the input is left as it was


@pytest.mark.parametrize(
    ("label", "name", "status"),
    [("SPEAKER_07", "Alice", 404), ("SPEAKER_00", "  ", 400), ("SPEAKER_00", "x" * 65, 400),
     ("SPEAKER_00", "new\nline", 400), ("SPEAKER_00", "SPEAKER_01", 409)],
)  # fmt: skip
def test_a_bad_rename_is_refused_with_a_message(label: str, name: str, status: int):
    t = transcript(segment(0.0, 3.0, "SPEAKER_00", 0.9), segment(3.5, 6.0, "SPEAKER_01", 0.9))
    with pytest.raises(APIError) as refused:
        rename({"transcript": t.model_dump(mode="json")}, label, name)
    assert refused.value.status == status and refused.value.message
