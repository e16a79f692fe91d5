"""The VAD's speech regions shaped by chunking_strategy=server_vad (app/inference/speech.py), without the image."""

from __future__ import annotations

from app.inference.speech import VadOptions, shape_regions

REGIONS = [(0.2, 3.0), (3.1, 6.0), (9.0, 12.0), (12.5, 40.0)]


def test_the_default_vad_leaves_the_regions_as_found():
    vad = VadOptions()
    assert shape_regions(REGIONS, vad.prefix_padding_s, vad.silence_s, 30.0) == REGIONS


def test_padding_starts_each_region_earlier_without_overlap_or_going_before_zero():
    assert shape_regions(REGIONS, 0.3, 0.0, 30.0) == [(0.0, 3.0), (3.0, 6.0), (8.7, 12.0), (12.2, 40.0)]
    # 12.5-40.0 is 27.5 s: padded by 5 s it would be longer than Whisper hears, so it starts at 10.0 at most
    assert shape_regions([(12.5, 40.0)], 5.0, 0.0, 30.0) == [(10.0, 40.0)]


def test_short_pauses_are_bridged_unless_that_makes_a_region_longer_than_whisper_hears():
    assert shape_regions(REGIONS, 0.0, 0.5, 30.0) == [(0.2, 6.0), (9.0, 12.0), (12.5, 40.0)]
    assert shape_regions(REGIONS, 0.0, 3.5, 30.0) == [(0.2, 12.0), (12.5, 40.0)]  # 12.5-40 cannot join
