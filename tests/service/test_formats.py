"""The transcript renderers on their own (no image needed): timestamps and shapes a player or client expects."""

from __future__ import annotations

import json

import pytest
from app.api import formats
from app.api.schemas import Timings
from app.inference.transcript import Transcript, Turn

TRANSCRIPT = Transcript.model_validate({
    "language": "en",
    "duration": 3725.5,
    "text": "Hello there. Hi.",
    "model": "tiny.en",
    "backend": "whisperx",
    "speakers": [{"id": "SPEAKER_00", "duration": 1.2}, {"id": "SPEAKER_01", "duration": 0.4}],
    "segments": [
        {"id": 0, "start": 0.5, "end": 1.7, "text": "Hello there.", "speaker": "SPEAKER_00", "avg_logprob": -0.2,
         "words": [{"word": "Hello", "start": 0.5, "end": 0.9, "probability": 0.9, "speaker": "SPEAKER_00"},
                   {"word": "there.", "start": 1.0, "end": 1.7, "probability": 0.8, "speaker": "SPEAKER_00"}]},
        {"id": 1, "start": 3723.25, "end": 3723.65, "text": "Hi.", "speaker": "SPEAKER_01", "avg_logprob": -0.1,
         "words": [{"word": "Hi.", "start": 3723.25, "end": 3723.65, "probability": 0.95, "speaker": "SPEAKER_01"}]},
    ],
})  # fmt: skip


def test_srt_numbers_cues_and_uses_commas_past_the_hour():
    srt = formats.srt(TRANSCRIPT)
    assert srt.startswith("1\n00:00:00,500 --> 00:00:01,700\n[SPEAKER_00] Hello there.\n")
    assert "2\n01:02:03,250 --> 01:02:03,650\n[SPEAKER_01] Hi.\n" in srt


def test_vtt_has_a_header_dots_and_voice_tags():
    vtt = formats.vtt(TRANSCRIPT)
    assert vtt.startswith("WEBVTT\n\n00:00:00.500 --> 00:00:01.700\n<v SPEAKER_00>Hello there.\n")


def test_verbose_json_gives_words_only_when_asked():
    plain = formats.verbose_json(TRANSCRIPT, set(), 0.0)
    assert "words" not in plain and len(plain["segments"]) == 2
    assert plain["usage"] == formats.json_body(TRANSCRIPT)["usage"] == {"type": "duration", "seconds": 3725.5}
    words = formats.verbose_json(TRANSCRIPT, {"word"}, 0.0)
    assert "segments" not in words
    assert [w["word"] for w in words["words"]] == ["Hello", "there.", "Hi."]


def test_diarized_json_is_openais_shape_with_speakers_lettered_as_they_first_speak():
    body = formats.diarized_json(TRANSCRIPT.model_copy(update={"segments": TRANSCRIPT.segments[::-1]}))
    assert set(body) == {"task", "text", "duration", "segments", "usage"}  # openai's TranscriptionDiarized
    assert body["usage"] == {"type": "duration", "seconds": 3725.5}
    assert [set(seg) for seg in body["segments"]] == [{"id", "type", "start", "end", "speaker", "text"}] * 2
    assert [(seg["id"], seg["speaker"]) for seg in body["segments"]] == [("seg_1", "A"), ("seg_0", "B")]
    assert body["segments"][0]["type"] == "transcript.text.segment"


def test_anonymous_speakers_go_on_past_z():
    assert [formats.letter(i) for i in (0, 1, 25, 26, 27, 51, 52, 701, 702)] == [
        "A", "B", "Z", "AA", "AB", "AZ", "BA", "ZZ", "AAA"]  # fmt: skip


def test_verbose_json_segments_carry_whispers_log_probability():
    assert [seg["avg_logprob"] for seg in formats.verbose_json(TRANSCRIPT, set(), 0.0)["segments"]] == [-0.2, -0.1]


def test_the_diarized_transcript_is_the_transcript_and_its_timings_in_the_contracts_order():
    timings = Timings(decode_s=0.1, vad_s=0.2, transcribe_s=2.0, align_s=0.4, diarize_s=3.0, total_s=5.7)
    body = json.loads(formats.diarized_transcript(TRANSCRIPT, timings).model_dump_json())
    assert list(body) == ["task", "text", "language", "duration", "segments", "speakers", "turns", "backend", "model",
                          "timings"]  # fmt: skip
    assert list(body["segments"][0]) == ["id", "type", "start", "end", "speaker", "text", "words"]  # no avg_logprob
    assert list(body["segments"][0]["words"][0]) == ["word", "start", "end", "probability", "speaker"]
    assert body["speakers"] == [{"id": "SPEAKER_00", "duration": 1.2, "name": None, "match": None},
                                {"id": "SPEAKER_01", "duration": 0.4, "name": None, "match": None}]  # fmt: skip
    assert body["timings"]["total_s"] == 5.7 and body["task"] == "transcribe" and body["backend"] == "whisperx"


@pytest.mark.parametrize("fmt", ["json", "text", "srt", "vtt", "verbose_json", "diarized_json"])
def test_every_response_format_renders(fmt: str):
    response = formats.render(TRANSCRIPT, fmt, set(), 0.0)
    assert response.status_code == 200
    if fmt.endswith("json"):
        assert json.loads(response.body)["text"] == "Hello there. Hi."


def test_a_diarized_transcript_s_text_is_a_paragraph_per_speaker_turn():
    assert formats.text(TRANSCRIPT) == "SPEAKER_00: Hello there.\n\nSPEAKER_01: Hi.\n"
    plain = TRANSCRIPT.model_copy(
        update={"segments": [s.model_copy(update={"speaker": None}) for s in TRANSCRIPT.segments]}
    )
    assert formats.text(plain) == "Hello there. Hi.\n"  # OpenAI's text: transcriptions are never diarized


def test_rttm_is_the_turns_overlaps_included_one_line_each():
    turns = [{"start": 0.4, "end": 1.8, "speaker": "SPEAKER_00"}, {"start": 1.5, "end": 2.25, "speaker": "Mary Ann"}]
    transcript = TRANSCRIPT.model_copy(update={"turns": [Turn(**t) for t in turns]})
    assert formats.rttm(transcript, "weekly stand-up") == (
        "SPEAKER weekly_stand-up 1 0.400 1.400 <NA> <NA> SPEAKER_00 <NA> <NA>\n"
        "SPEAKER weekly_stand-up 1 1.500 0.750 <NA> <NA> Mary_Ann <NA> <NA>\n"
    )
    response = formats.render(transcript, "rttm", set(), 0.0, formats.uri_of("/tmp/x/meeting 1.m4a"))
    assert response.body.decode().split()[1] == "meeting_1"
    assert formats.rttm(TRANSCRIPT, "x") == ""  # no turns (not diarized): an empty RTTM


def test_the_turns_keep_their_overlap_and_the_segments_labels():
    segments = [{"start": 0.0, "end": 2.0, "text": "a", "speaker": "SPEAKER_00", "words": []},
                {"start": 1.5, "end": 3.0, "text": "b", "speaker": "Bob", "words": []}]  # fmt: skip
    turns = [(1.5004, 3.0, "Bob"), (0.0, 2.0, "SPEAKER_00"), (2.5, 2.5, "SPEAKER_00")]
    made = Transcript.from_segments(segments, turns, language="en", duration=3.0, model="m", diarized=True)
    assert [(t.start, t.end, t.speaker) for t in made.turns] == [(0.0, 2.0, "SPEAKER_00"), (1.5, 3.0, "Bob")]
    plain = Transcript.from_segments(segments, turns, language="en", duration=3.0, model="m", diarized=False)
    assert plain.turns == []
