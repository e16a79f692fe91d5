"""The plain sequential whisperX pipeline, for comparison: transcribe, then align, then diarize.

Runs inside the service image (`python /bench/baseline.py AUDIO BUNDLE`) on the same models as the
service: Whisper from the bundle with whisperX's own pyannote VAD, no alignment (no wav2vec2 weights
offline), then pyannote's SpeakerDiarization over the whole file with its default settings
(segmentation step 10 %, every chunk embedded, speaker-diarization-3.1's clustering hyperparameters) on
the bundle's segmentation-3.0 + CAM++, then whisperX's assign_word_speakers. Prints one JSON line: seconds
per stage, peak RSS, speakers.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
os.environ["HF_HUB_OFFLINE"] = "1"


def agglomerative(diarizer):
    """`diarizer` (a BundleDiarization) with pyannote's agglomerative clustering, as speaker-diarization-3.1 has."""
    from pyannote.audio.pipelines.clustering import AgglomerativeClustering

    diarizer.klustering = "AgglomerativeClustering"
    diarizer.clustering = AgglomerativeClustering(metric="cosine")
    return diarizer


def main() -> None:
    audio_path, bundle = sys.argv[1], Path(sys.argv[2])
    threads = os.cpu_count() or 1
    import pandas as pd
    import torch
    import whisperx
    from app.inference.diarize import BundleDiarization
    from app.inference.embedding import CamPlusEmbedding
    from pyannote.audio import Model

    torch.set_num_threads(threads)
    timings = {}
    began = time.perf_counter()
    model = whisperx.load_model(str(bundle / "whisper-tiny.en"), "cpu", compute_type="int8", threads=threads)
    segmentation = Model.from_pretrained(str(bundle / "pyannote-segmentation-3.0/pytorch_model.bin"))
    embedding = CamPlusEmbedding(bundle / "campplus/campplus_cn_en_common.pt", torch.device("cpu"))
    diarizer = agglomerative(BundleDiarization(segmentation, embedding, step=0.1, batch_size=32))  # its default step
    # pyannote/speaker-diarization-3.1's published hyperparameters (whisperX's default pipeline), set here so
    # that tuning the service's own defaults never moves the baseline
    diarizer.instantiate(
        {
            "segmentation": {"min_duration_off": 0.0},
            "clustering": {"method": "centroid", "min_cluster_size": 12, "threshold": 0.7045654963945799},
        }
    )
    timings["load_s"] = time.perf_counter() - began

    t = time.perf_counter()
    audio = whisperx.load_audio(audio_path)
    timings["decode_s"] = time.perf_counter() - t
    t = time.perf_counter()
    result = model.transcribe(audio, batch_size=8)
    timings["transcribe_s"] = time.perf_counter() - t  # includes whisperX's VAD
    timings["align_s"] = 0.0  # no alignment model offline: whisperX keeps segment times
    t = time.perf_counter()
    output = diarizer({"waveform": torch.from_numpy(audio[None, :]), "sample_rate": 16000, "uri": "file"})
    frame = pd.DataFrame(
        [(s.start, s.end, label) for s, _, label in output.speaker_diarization.itertracks(yield_label=True)],
        columns=["start", "end", "speaker"],
    )
    result = whisperx.assign_word_speakers(frame, result)
    timings["diarize_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - began - timings["load_s"]
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "timings": {k: round(v, 2) for k, v in timings.items()},
                "peak_rss_mb": round(peak_kb / 1024),
                "duration_s": round(len(audio) / 16000, 1),
                "speakers": sorted(output.speaker_diarization.labels()),
                "turns": [
                    (round(s.start, 3), round(s.end, 3), label)
                    for s, _, label in output.speaker_diarization.itertracks(yield_label=True)
                ],
                "segments": [
                    {"start": s["start"], "end": s["end"], "speaker": s.get("speaker"), "text": s["text"]}
                    for s in result["segments"]
                ],
            }
        )
    )


if __name__ == "__main__":
    main()
