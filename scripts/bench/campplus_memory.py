"""CAM++ alone: resident memory and seconds per round of pyannote-sized embedding batches.

Runs inside the service image, with the model bundle at /models and, to try another version of the
embedding code, that `app/` mounted over /srv/app:

    docker run --rm -e BF=2000 -e ONEDNN_PRIMITIVE_CACHE_CAPACITY=128 \\
      -v "$SPARK_MODELS_DIR:/models:ro" -v "$PWD/scripts/bench:/bench:ro" \\
      --entrypoint python spark-inference/whisperx-asr:cpu /bench/campplus_memory.py

BF sets batch_frames (1: one pair at a time), ROUNDS the rounds of 40 batches of 32 random-length
pairs, NO_MKLDNN=1 turns PyTorch's oneDNN convolutions off. Results: docs/service.md.
"""

from __future__ import annotations

import os
import resource
import sys
import time

import numpy as np
import torch

sys.path.insert(0, "/srv")
from app.inference.embedding import CamPlusEmbedding


def rss_mb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS"))


def main() -> None:
    if os.environ.get("NO_MKLDNN"):
        torch.backends.mkldnn.enabled = False
    embedding = CamPlusEmbedding("/models/campplus/campplus_cn_en_common.pt", torch.device("cpu"))
    embedding.batch_frames = int(os.environ.get("BF", str(CamPlusEmbedding.batch_frames)))
    rng = np.random.default_rng(0)
    print("loaded", rss_mb(), "MB", flush=True)
    start = time.time()
    for round_ in range(int(os.environ.get("ROUNDS", "4"))):
        for _ in range(40):
            waveforms = torch.randn(32, 1, 160000) * 0.1  # 10 s chunks
            masks = (rng.random((32, 589)) < rng.random((32, 1))).astype(np.float32)  # 0-100 % active
            embedding(waveforms, torch.from_numpy(masks))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        print(f"round {round_}: rss {rss_mb()} MB, peak {peak} MB, {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
