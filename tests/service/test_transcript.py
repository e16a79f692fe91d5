"""The typed transcript (whisperx_container/app/inference/transcript.py), without the image: how the
pipeline's segments become the result every response format renders."""

from __future__ import annotations

from app.inference.transcript import Transcript


def segment(start: float, end: float, text: str, *words: tuple, speaker: str | None = None, logprob=None) -> dict:
    seg = {"start": start, "end": end, "text": text, "avg_logprob": logprob}
    seg["words"] = [dict(zip(("word", "start", "end", "probability", "speaker"), w, strict=False)) for w in words]
    if speaker:
        seg["speaker"] = speaker
    return seg


SEGMENTS = [
    segment(0.51234, 1.90049, "Hello there.", ("Hello", 0.512, 0.91, 0.97), ("there.", 1.0, 1.9, 0.8, "SPEAKER_01"),
            speaker="SPEAKER_00", logprob=-0.25),
    segment(2.0, 4.0, " Hi. ", ("Hi.", 2.0, 4.0, 0.5), speaker="SPEAKER_01"),
    segment(5.0, 5.5, "Um.", ("Um.", 5.0, 5.5, 0.2)),  # a segment no turn covered
]  # fmt: skip
TURNS = [(0.5, 1.95, "SPEAKER_00"), (1.95, 4.1, "SPEAKER_01"), (6.0, 6.25, "SPEAKER_00")]


def diarized(segments: list[dict] = SEGMENTS, turns: list = TURNS) -> Transcript:
    return Transcript.from_segments(segments, turns, language="en", duration=12.34567, model="tiny.en", diarized=True)


def test_segments_are_numbered_rounded_to_the_millisecond_and_make_up_the_text():
    transcript = diarized()
    assert [seg.id for seg in transcript.segments] == [0, 1, 2]
    assert (transcript.segments[0].start, transcript.segments[0].end, transcript.duration) == (0.512, 1.9, 12.346)
    assert transcript.text == "Hello there.  Hi.  Um."
    assert transcript.language == "en" and transcript.model == "tiny.en" and transcript.backend == "whisperx"


def test_every_segment_and_word_names_its_speaker_when_diarized():
    transcript = diarized()
    assert [seg.speaker for seg in transcript.segments] == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_00"]
    # a word keeps the speaker it was given, the others take their segment's
    assert [[w.speaker for w in seg.words] for seg in transcript.segments] == [
        ["SPEAKER_00", "SPEAKER_01"], ["SPEAKER_01"], ["SPEAKER_00"]
    ]  # fmt: skip


def test_speakers_sum_their_turns_and_a_label_no_turn_names_is_still_listed():
    assert [(s.id, s.duration) for s in diarized().speakers] == [("SPEAKER_00", 1.7), ("SPEAKER_01", 2.15)]
    extra = [*SEGMENTS, segment(7.0, 7.75, "Late.", speaker="SPEAKER_05")]
    assert [(s.id, s.duration) for s in diarized(extra).speakers][-1] == ("SPEAKER_05", 0.75)
    assert [s.id for s in diarized(turns=[]).speakers] == ["SPEAKER_00", "SPEAKER_01"]


def test_without_diarization_nothing_has_a_speaker():
    plain = [segment(0.5, 1.0, "Hello.", ("Hello.", 0.5, 1.0, 0.9))]
    transcript = Transcript.from_segments(plain, [], language="en", duration=1.0, model="tiny.en", diarized=False)
    assert transcript.speakers == [] and transcript.segments[0].speaker is None
    assert transcript.segments[0].words[0].speaker is None


def test_silence_is_an_empty_transcript():
    transcript = diarized([], [])
    assert transcript.text == "" and transcript.segments == [] and transcript.speakers == []


def test_whispers_log_probability_is_kept_for_verbose_json_but_never_serialised():
    transcript = diarized()
    assert transcript.segments[0].avg_logprob == -0.25 and transcript.segments[1].avg_logprob is None
    assert "avg_logprob" not in transcript.model_dump_json()
