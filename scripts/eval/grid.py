"""The diarization settings grid, run inside the service image (`scripts/eval/sweep.py` starts it).

    python /scripts/eval/grid.py /data/sweep-input.json /models > result.json

For every recording and segmentation step the segmentation and the speaker embeddings are computed once
(they do not depend on what follows); every clustering setting then reuses them, so a grid of hundreds of
settings costs about what two diarizations of each recording cost. The settings: pyannote's agglomerative
clustering (linkage x threshold x minimum cluster size) and the service's spectral clustering (merge threshold
x neighbours kept), each at both segmentation steps; for the best three, the default and the setting before
the sweep also every shortest gap kept in a turn and shortest turn kept. Each setting is scored twice: by the
overlap-aware turns (pyannote's `speaker_diarization`) and by the exclusive ones (one speaker at a time).
The cross-window linker is swept by diarizing each split's synthesised meetings joined into one recording
(12 and 6 minutes; the voices recur across meetings) and the real recordings in windows of several lengths,
linking them at each threshold. Prints one JSON document.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
os.environ["HF_HUB_OFFLINE"] = "1"

STEPS = (0.1, 0.25)
METHODS = ("centroid", "average")  # agglomerative linkages
THRESHOLDS = tuple(round(0.45 + 0.05 * i, 2) for i in range(9))  # 0.45 .. 0.85
MIN_CLUSTER_SIZES = (1, 6, 12)
MERGES = (0.7, 0.75, 0.8, 0.85, 0.9, 1.0)  # spectral: clusters this alike (cosine) become one; 1.0: none merged
NEIGHBOURS = (0.05, 0.1, 0.25)  # spectral: the largest share of the embeddings kept as each one's neighbours
MIN_DURATIONS_OFF = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)
MIN_DURATIONS_ON = (0.0, 0.1, 0.25, 0.5)  # turns shorter than this dropped (after the gaps are filled)
LINK_THRESHOLDS = tuple(round(0.3 + 0.05 * i, 2) for i in range(12))  # 0.30 .. 0.85
WINDOW_LENGTHS = (20.0, 40.0, 80.0, 600.0)  # 600: the default before, one window for 12 minutes
BEFORE = {
    "step": 0.25,
    "method": "centroid",
    "threshold": 0.7,
    "min_cluster_size": 12,
    "min_duration_off": 0.0,
    "min_duration_on": 0.0,
    "neighbours": None,
}  # the default before the first sweep (agglomerative)
KEYS = ("step", "method", "threshold", "min_cluster_size", "neighbours", "min_duration_off", "min_duration_on")
GAP_S = 1.0  # silence between the meetings joined into one recording


def joined(parts: list, name: str, split: str):
    """One recording of several (their turns moved along), or None without any."""
    import numpy as np

    if not parts:
        return None
    pcm, turns, at = [], [], 0.0
    for rec, samples in parts:
        turns += [(start + at, end + at, who) for start, end, who in rec["turns"]]
        pcm += [samples, np.zeros(int(GAP_S * 16000), np.int16)]
        at += (len(samples) + int(GAP_S * 16000)) / 16000
    rec = {"name": name, "split": split, "real": False, "turns": turns, "duration": at}
    return rec, np.concatenate(pcm)


BEGAN = time.perf_counter()


def progress(what: str) -> None:
    """A line on stderr (`docker logs` of the running sweep); stdout carries only the result."""
    print(f"{time.perf_counter() - BEGAN:7.0f} s  {what}", file=sys.stderr, flush=True)


def main() -> None:
    import numpy as np
    import torch
    from app.config import Settings
    from app.inference import spectral
    from app.inference.audio import PcmAudio
    from app.inference.diarize import SEGMENTS_KEY, TURN_GAP_S, BundleDiarization, diarize_window
    from app.inference.embedding import CamPlusEmbedding
    from app.inference.windows import SpeakerLinker, cut_windows
    from pyannote.audio import Model
    from scipy.io import wavfile

    from scripts.bench.baseline import agglomerative
    from scripts.eval.metrics import der

    spec, bundle = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2])
    cap = Settings.model_fields["whisperx_max_speakers"].default  # the service's speaker cap, as it passes it
    torch.set_num_threads(os.cpu_count() or 1)
    segmentation = Model.from_pretrained(str(bundle / "pyannote-segmentation-3.0/pytorch_model.bin"))
    embedding = CamPlusEmbedding(bundle / "campplus/campplus_cn_en_common.pt", torch.device("cpu"))
    pipelines = {(step, kind): BundleDiarization(segmentation, embedding, step=step)
                 for step, kind in itertools.product(STEPS, ("spectral", "agglomerative"))}  # fmt: skip
    for (_, kind), pipeline in pipelines.items():
        if kind == "agglomerative":
            agglomerative(pipeline)
    own = BundleDiarization(segmentation, embedding)  # the service's defaults
    own_params = own.parameters(instantiated=True)
    # its overlapping turns are pyannote's with the gaps under TURN_GAP_S filled: min_duration_off here
    default = {"step": own.segmentation_step, "method": "spectral", "min_cluster_size": None,
               **own_params["clustering"], "min_duration_off": TURN_GAP_S, "min_duration_on": 0.0}  # fmt: skip
    assert default["step"] in STEPS, default
    kept: dict[int, tuple] = {}  # (segmentation, embeddings) by the id of the segmentation, for every pipeline

    for pipeline in pipelines.values():
        compute = pipeline.get_embeddings

        def get_embeddings(file, binarized, exclude_overlap=False, hook=None, compute=compute):
            key = id(file[SEGMENTS_KEY])  # the segmentation is kept with them, so its id is never reused
            if key not in kept:
                kept[key] = (file[SEGMENTS_KEY], compute(file, binarized, exclude_overlap=exclude_overlap, hook=hook))
            return kept[key][1]

        pipeline.get_embeddings = get_embeddings

    spectra: dict[tuple, tuple] = {}  # the eigengap search by (affinity, bounds, neighbours); the merge comes after
    search = spectral.spectrum

    def spectrum(affinity, low, high, neighbours):
        key = (hashlib.blake2b(affinity.tobytes(), digest_size=16).digest(), low, high, neighbours)
        if key not in spectra:
            spectra[key] = search(affinity, low, high, neighbours)
        return spectra[key]

    spectral.spectrum = spectrum  # the merge thresholds, gaps and shortest turns share one search

    recordings, cost = [], {}
    for rec in spec["recordings"]:
        rate, pcm = wavfile.read(Path(spec["root"]) / rec["path"])
        assert rate == 16000 and pcm.dtype == np.int16, rec["path"]
        waveform = torch.from_numpy(pcm.astype(np.float32) / 32768.0)[None]
        file = {"waveform": waveform, "sample_rate": 16000, "uri": rec["name"]}
        segs = {}
        for step in STEPS:
            pipeline = pipelines[(step, "spectral")]
            pipeline.instantiate(own_params)
            began = time.perf_counter()
            segs[step] = pipeline.get_segmentations(file)
            pipeline(file | {SEGMENTS_KEY: segs[step]}, max_speakers=cap)  # embeds once, kept for every setting
            cost[f"{rec['name']} step {step}"] = round(time.perf_counter() - began, 2)
            progress(f"embedded {rec['name']} at step {step}")
        recordings.append((rec, file, segs, pcm))

    def scores(rec: dict, turns: list) -> dict:
        reference = [tuple(t) for t in rec["turns"]]
        return {
            "c25": der(reference, turns, rec["duration"], 0.25),
            "c0": der(reference, turns, rec["duration"], 0.0),
            "speakers": len({t[2] for t in turns}),
        }

    def turns(annotation, shortest: float) -> list:
        return [(s.start, s.end, label) for s, _, label in annotation.itertracks(yield_label=True)
                if s.duration >= shortest]  # fmt: skip

    def run(step: float, params: dict, shortest: float = 0.0) -> dict:
        pipeline = pipelines[(step, "agglomerative" if "method" in params["clustering"] else "spectral")]
        pipeline.instantiate(params)
        out = {}
        for rec, file, segs, _ in recordings:
            output = pipeline(file | {SEGMENTS_KEY: segs[step]}, max_speakers=cap)
            out[rec["name"]] = {
                "overlapping": scores(rec, turns(output.speaker_diarization, shortest)),
                "exclusive": scores(rec, turns(output.exclusive_speaker_diarization, shortest)),
            }
        progress(f"step {step} {params} shortest turn {shortest}")
        return out

    def setting(row: dict, off: float) -> dict:
        if row["method"] == "spectral":
            clustering = {"threshold": row["threshold"], "neighbours": row["neighbours"]}
        else:
            clustering = {"method": row["method"], "min_cluster_size": row["min_cluster_size"],
                          "threshold": row["threshold"]}  # fmt: skip
        return {"segmentation": {"min_duration_off": off}, "clustering": clustering}

    shapes = [
        {"step": step, "method": method, "threshold": threshold, "min_cluster_size": size, "neighbours": None}
        for step, method, threshold, size in itertools.product(STEPS, METHODS, THRESHOLDS, MIN_CLUSTER_SIZES)
    ]
    shapes += [{"step": step, "method": "spectral", "threshold": merge, "min_cluster_size": None, "neighbours": share}
               for step, merge, share in itertools.product(STEPS, MERGES, NEIGHBOURS)]  # fmt: skip
    grid = [b | {"min_duration_off": 0.0, "min_duration_on": 0.0, "scores": run(b["step"], setting(b, 0.0))}
            for b in shapes]  # fmt: skip

    def dev_score(entry: dict) -> float:
        """The choice: the mean of the development split's real and synthesised pooled DER (overlapping turns,
        collar 0.25), so a minute of real speech weighs as much as ten minutes of espeak voices."""
        parts = []
        for real in (True, False):
            names = [r["name"] for r, *_ in recordings if r["split"] == "dev" and r["real"] == real]
            c25 = [entry["scores"][n]["overlapping"]["c25"] for n in names]
            if c25:
                parts.append(sum(d["der"] * d["scored_s"] for d in c25) / sum(d["scored_s"] for d in c25))
        return sum(parts) / len(parts)

    shape = ("step", "method", "threshold", "min_cluster_size", "neighbours")

    def same(a: dict, b: dict) -> bool:
        return all(a[k] == b[k] for k in shape)

    more = sorted(grid, key=dev_score)[:3]
    for wanted in (BEFORE, default):  # the setting before the sweep and the service's own get every gap too
        if not any(same(g, wanted) for g in more):
            more.append(next(g for g in grid if same(g, wanted)))
    for b, off, on in itertools.product(more, MIN_DURATIONS_OFF, MIN_DURATIONS_ON):
        if any(same(g, b) and (g["min_duration_off"], g["min_duration_on"]) == (off, on) for g in grid):
            continue
        grid.append({k: b[k] for k in shape} | {"min_duration_off": off, "min_duration_on": on,
                                                "scores": run(b["step"], setting(b, off), on)})  # fmt: skip

    # the windows and the linker: the synthesised meetings of each split joined into one long recording (their
    # voices recur across meetings) and the real recordings, diarized in windows of each length, linked at each
    # threshold
    chosen = min(grid, key=dev_score)
    spectra.clear()  # each window below is clustered once
    pipeline = pipelines[(default["step"], "spectral")]
    pipeline.instantiate(own_params)  # inside each window exactly what the service runs (diarize_window fills gaps)
    long = [joined([(r, pcm) for r, *_, pcm in recordings if r["split"] == s and not r["real"]], f"joined-{s}", s)
            for s in ("dev", "test")]  # fmt: skip
    linked = [r for r in long if r] + [(r, pcm) for r, *_, pcm in recordings if r["real"]]
    links = []
    with tempfile.TemporaryDirectory() as tmp:
        for window_s in WINDOW_LENGTHS:
            windows = {}
            for rec, pcm in linked:
                raw = Path(tmp) / f"{rec['name']}.raw"
                pcm.astype("<i2").tofile(raw)
                audio = PcmAudio(raw, len(pcm))
                found = []
                for start, end in cut_windows(audio, window_s, search_s=min(10.0, window_s / 5)):
                    waveform = torch.from_numpy(audio.read(start, end))[None]
                    segs = pipeline.get_segmentations({"waveform": waveform, "sample_rate": 16000})
                    found.append(diarize_window(pipeline, waveform, segs, start, None, None, cap))
                windows[rec["name"]] = found
                progress(f"{rec['name']} in {window_s:g}-s windows")
            for threshold in LINK_THRESHOLDS:
                out = {}
                for rec, _ in linked:
                    linker = SpeakerLinker(threshold=threshold, max_speakers=cap)
                    for w in windows[rec["name"]]:
                        linker.add(w)
                    found = linker.speakers()
                    out[rec["name"]] = {
                        "overlapping": scores(rec, found.overlapping),
                        "exclusive": scores(rec, found.turns),
                    }
                links.append({"window_s": window_s, "link_threshold": threshold, "scores": out,
                              "windows": {r: len(w) for r, w in windows.items()}})  # fmt: skip
    linked_recordings = [{k: r[k] for k in ("name", "split", "real", "duration")}
                         | {"speakers": len({t[2] for t in r["turns"]})} for r, _ in linked]  # fmt: skip
    windowing = {"window_s": Settings.model_fields["whisperx_window_s"].default,
                 "link_threshold": SpeakerLinker().threshold}  # the service's defaults  # fmt: skip
    print(json.dumps({"grid": grid, "links": links, "linked": linked_recordings, "embedding_cost_s": cost,
                      "windowing": windowing,
                      "chosen": {k: chosen[k] for k in KEYS}, "default": {k: default[k] for k in KEYS}}))  # fmt: skip


if __name__ == "__main__":
    main()
