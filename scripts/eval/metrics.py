"""Diarization error rate and its parts, NIST's way, on 10 ms frames.

Per frame, with n_ref reference speakers, n_hyp hypothesis speakers and n_correct hypothesis speakers mapped
to a reference speaker who is talking: missed = max(0, n_ref - n_hyp), false alarm = max(0, n_hyp - n_ref),
confusion = min(n_ref, n_hyp) - n_correct; each summed and divided by the reference speech (sum of n_ref).
The mapping is the one-to-one assignment of hypothesis to reference speakers that agrees on the most time
(scipy's linear_sum_assignment). A collar removes the frames within that many seconds of any reference turn
boundary; "overlap excluded" removes the frames where the reference has two or more speakers, as pyannote's
`skip_overlap` does.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

Turns = list[tuple[float, float, str]]
FRAME_S = 0.01


def frames(turns: Turns, n: int, labels: list[str]) -> np.ndarray:
    m = np.zeros((n, len(labels)), bool)
    for start, end, speaker in turns:
        m[round(start / FRAME_S) : round(end / FRAME_S), labels.index(speaker)] = True
    return m


def der(reference: Turns, hypothesis: Turns, duration: float, collar: float = 0.0, skip_overlap: bool = False) -> dict:
    """{"der", "missed", "false_alarm", "confusion", "scored_s"} (the rates are shares of the reference speech)."""
    n = round(duration / FRAME_S) + 1
    ref_labels, hyp_labels = sorted({t[2] for t in reference}), sorted({t[2] for t in hypothesis})
    ref, hyp = frames(reference, n, ref_labels), frames(hypothesis, n, hyp_labels)
    keep = np.ones(n, bool)
    if collar > 0:
        width = round(collar / FRAME_S)
        for start, end, _ in reference:
            for edge in (round(start / FRAME_S), round(end / FRAME_S)):
                keep[max(0, edge - width) : edge + width] = False
    if skip_overlap:
        keep &= ref.sum(1) < 2
    ref, hyp = ref[keep], hyp[keep]
    mapped = np.zeros_like(ref)
    if hyp_labels and ref_labels:
        agreement = hyp.T.astype(np.int64) @ ref.astype(np.int64)
        for h, r in zip(*linear_sum_assignment(-agreement), strict=True):
            mapped[:, r] |= hyp[:, h]
    n_ref, n_hyp, correct = ref.sum(1), hyp.sum(1), (mapped & ref).sum(1)
    total = max(int(n_ref.sum()), 1)
    missed = np.maximum(0, n_ref - n_hyp).sum() / total
    false_alarm = np.maximum(0, n_hyp - n_ref).sum() / total
    confusion = (np.minimum(n_ref, n_hyp) - correct).sum() / total
    return {"der": float(missed + false_alarm + confusion), "missed": float(missed),
            "false_alarm": float(false_alarm), "confusion": float(confusion),
            "scored_s": round(float(n_ref.sum()) * FRAME_S, 2)}  # fmt: skip


VARIANTS = {  # name: (collar, skip_overlap)
    "collar 0, overlap scored": (0.0, False),
    "collar 0.25, overlap scored": (0.25, False),
    "collar 0, overlap excluded": (0.0, True),
    "collar 0.25, overlap excluded": (0.25, True),
}


def all_variants(reference: Turns, hypothesis: Turns, duration: float) -> dict:
    return {name: der(reference, hypothesis, duration, *how) for name, how in VARIANTS.items()}
