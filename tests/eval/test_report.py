"""The quality report (scripts/eval/run.py) from results of a known shape, and its pooling of DER."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.eval.metrics import VARIANTS
from scripts.eval.run import assignment_report, pooled, report, spread


def result(der: float, scored_s: float) -> dict:
    parts = {"der": der, "missed": der / 2, "false_alarm": der / 4, "confusion": der / 4, "scored_s": scored_s}
    variants = {v: dict(parts) for v in VARIANTS}
    return {"turns": variants, "segments": variants, "speakers": 3, "speaker_count_error": 0,
            "words_to_right_speaker": 0.9, "wer": 0.2, "wall_s": 1.0}  # fmt: skip


def recording(name: str, split: str, der: float, scored_s: float, real: bool = False) -> dict:
    return {"name": name, "split": split, "real": real, "speakers": 3, "duration": scored_s, "source": "synthesised",
            "licence": "x", "sha256": "0" * 64, "service": result(der, scored_s),
            "whisperx": result(der + 0.1, scored_s)}  # fmt: skip


def test_a_split_pools_errors_over_speech_rather_than_averaging_rates():
    recs = [recording("a", "test", 0.10, 100.0), recording("b", "test", 0.40, 300.0)]
    assert pooled(recs, "service", "turns", "collar 0, overlap scored")["der"] == pytest.approx(0.325)


def test_the_report_names_every_recording_split_and_goal(tmp_path: Path):
    recs = [recording("meeting-0", "dev", 0.2, 60.0), recording("meeting-3", "test", 0.3, 60.0)]
    machine = {"cpus": 2, "cpu": "test", "memory_gb": 1}
    report({"recordings": recs, "machine": machine, "date": "today", "image": "i", "elapsed_min": 1.0},
           tmp_path / "q.md")  # fmt: skip
    text = (tmp_path / "q.md").read_text()
    assert "## Dev split (1 recordings)" in text and "## Test split (1 recordings)" in text
    assert "| meeting-3 |" in text and "30.0% (15.0% / 7.5% / 7.5%)" in text
    assert "+10.0 points) | met |" in text  # whisperX 40 % against 30 %
    assert "(real recordings)" not in text, "no real recording in the test split: no goal claimed for one"


def test_the_goals_are_measured_on_the_real_recordings_of_the_test_split(tmp_path: Path):
    recs = [recording("meeting-3", "test", 0.1, 60.0), recording("radio", "test", 0.5, 40.0, real=True)]
    recs[1]["whisperx"] = result(0.52, 40.0)  # only 2 points worse than the service on the real one
    machine = {"cpus": 2, "cpu": "test", "memory_gb": 1}
    report({"recordings": recs, "machine": machine, "date": "today", "image": "i", "elapsed_min": 1.0},
           tmp_path / "q.md")  # fmt: skip
    text = (tmp_path / "q.md").read_text()
    assert "Real recordings only (radio):" in text
    assert "(real recordings) | 50.0% against 52.0% (+2.0 points) | not met |" in text


def test_words_spread_over_a_segment_without_word_times():
    words = spread({"start": 1.0, "end": 2.0, "text": "one two", "speaker": "A"})
    assert [(w["start"], w["end"]) for w in words] == [(1.0, 1.5), (1.5, 2.0)] and words[0]["speaker"] == "A"


def sweep_row(der: float, **setting) -> dict:
    parts = {"der": der, "missed": 0.0, "false_alarm": 0.0, "confusion": der}
    row = {f"{s} {kind} {turns}": dict(parts) for s in ("dev", "test") for kind in ("real", "synthesised", "all")
           for turns in ("overlapping", "exclusive")}  # fmt: skip
    return row | setting | {"dev score": der, "speaker count error": {"dev": [0], "test": [1]}}


def test_the_sweep_names_the_best_setting_the_default_and_the_linker_rows(tmp_path: Path):
    base = {"step": 0.25, "method": "centroid", "min_cluster_size": 12, "neighbours": None}
    best, default = (
        {"step": 0.25, "method": "spectral", "min_cluster_size": None, "neighbours": 0.1, "threshold": 0.8,
         "min_duration_off": 0.5},
        base | {"threshold": 0.7, "min_duration_off": 0.5},
    )  # fmt: skip
    before = base | {"threshold": 0.7, "min_duration_off": 0.0}
    rows = [sweep_row(0.1, **best), sweep_row(0.2, **default), sweep_row(0.3, **before)]
    links = [
        sweep_row(0.4, window_s=600.0, link_threshold=0.65) | {"windows": {}},
        sweep_row(0.25, window_s=40.0, link_threshold=0.85) | {"windows": {}},
    ]
    sweep = {
        "rows": rows,
        "chosen": best,
        "default": default,
        "before": before,
        "links": links,
        "within_goals": default,
    }
    sweep |= {"windowing": {"window_s": 600.0, "link_threshold": 0.65}, "notes": ["kept 0.7: see why"]}
    sweep |= {"linked": [{"name": "joined-dev", "duration": 720.0, "speakers": 8}]}
    sweep |= {"machine": {"cpus": 2}, "date": "today", "elapsed_min": 13.0}
    recs = [recording("meeting-3", "test", 0.3, 60.0)]
    report({"recordings": recs, "machine": {"cpus": 2, "cpu": "t"}, "date": "d", "image": "i", "elapsed_min": 1.0,
            "sweep": sweep}, tmp_path / "q.md")  # fmt: skip
    text = (tmp_path / "q.md").read_text()
    spectral = "step 0.25, spectral, merged above cosine 0.8, neighbours up to 10%, min gap 0.5 s"
    assert f"| best on dev: {spectral} | 10.0%" in text and "| method | spectral | 10.0% |" in text
    assert "| merge (spectral: cosine similarity) | 0.8 | 10.0% |" in text
    assert "| threshold (agglomerative: centroid distance) | 0.7 | 20.0% |" in text
    swept = "step 0.25, centroid, threshold 0.7, min cluster 12, min gap 0.5 s"
    assert f"| **the default when swept**: {swept} | 20.0%" in text
    assert f"recording off by at most 1) at the service's step: {swept} | 20.0%" in text
    assert "| before the sweep: step 0.25, centroid, threshold 0.7, min cluster 12, min gap 0 s | 30.0%" in text
    assert "| **600 s, 0.65: the default when swept** | 40.0%" in text and "| 40 s, 0.85 (best on dev) | 25.0%" in text
    assert "joined-dev (12.0 min, 8 speakers)" in text and "- kept 0.7: see why" in text


def test_assignment_rules_are_pooled_over_the_words_of_each_part():
    recs = [recording("a", "dev", 0.1, 60.0, real=True), recording("b", "dev", 0.1, 60.0, real=True),
            recording("c", "test", 0.1, 60.0)]  # fmt: skip
    recs[0]["assignment"] = {"segment": 0.5, "word": 1.0, "words": 100}
    recs[1]["assignment"] = {"segment": 1.0, "word": 1.0, "words": 300}
    recs[2]["assignment"] = {"segment": 0.8, "word": 0.9, "words": 50}
    text = "\n".join(assignment_report(recs))
    assert "| rule | dev, real | dev, synthesised | test, real | test, synthesised |" in text
    assert "| segment | 87.5% | n/a | n/a | 80.0% |" in text and "| word | 100.0% | n/a | n/a | 90.0% |" in text
    assert assignment_report([recording("d", "dev", 0.1, 60.0)]) == []  # measured before the rules: no section
