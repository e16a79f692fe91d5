"""DER and its parts (scripts/eval/metrics.py) on turns whose errors are known by construction."""

from __future__ import annotations

import pytest

from scripts.eval.metrics import der

REF = [(0.0, 4.0, "ann"), (3.0, 6.0, "bob"), (7.0, 10.0, "ann")]  # 10 s of reference speech, 1 s of it overlap


def test_a_perfect_hypothesis_under_other_names_scores_zero():
    hyp = [(s, e, {"ann": "B", "bob": "A"}[who]) for s, e, who in REF]
    assert der(REF, hyp, 10.0) == {"der": 0.0, "missed": 0.0, "false_alarm": 0.0, "confusion": 0.0, "scored_s": 10.0}


def test_each_kind_of_error_is_counted_as_its_own_part():
    hyp = [(0.0, 3.0, "A"), (3.0, 6.0, "B"), (6.0, 7.0, "B"), (7.0, 8.0, "B"), (8.0, 10.0, "A")]
    scored = der(REF, hyp, 10.0)
    assert scored["missed"] == pytest.approx(0.1)  # the overlap's second speaker (1 s of 10)
    assert scored["false_alarm"] == pytest.approx(0.1)  # 6-7 s: nobody speaks
    assert scored["confusion"] == pytest.approx(0.1)  # 7-8 s: ann's speech under bob's label
    assert scored["der"] == pytest.approx(0.3)


def test_overlap_excluded_and_a_collar_remove_what_they_should():
    hyp = [(0.0, 3.0, "A"), (3.0, 6.0, "B"), (7.0, 10.0, "A")]  # one speaker where two overlap: 1 s missed
    assert der(REF, hyp, 10.0)["missed"] == pytest.approx(0.1)
    skipped = der(REF, hyp, 10.0, skip_overlap=True)
    assert skipped["der"] == 0.0 and skipped["scored_s"] == pytest.approx(8.0)  # 3-4 s counted twice before
    late = [(0.2, 4.0, "A"), (3.0, 6.0, "B"), (7.2, 10.0, "A")]
    assert der(REF, late, 10.0)["missed"] > 0
    assert der(REF, late, 10.0, collar=0.25)["missed"] == 0.0


def test_no_hypothesis_is_all_missed_and_extra_speakers_are_confusion_or_false_alarm():
    assert der(REF, [], 10.0)["missed"] == pytest.approx(1.0)
    split = [(0.0, 2.0, "A"), (2.0, 4.0, "C"), (3.0, 6.0, "B"), (7.0, 10.0, "A")]
    assert der(REF, split, 10.0)["confusion"] == pytest.approx(0.2)  # ann's 2-4 s under a third label
