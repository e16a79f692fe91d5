"""Batched CAM++ embeddings, in the service image with the bundle's checkpoint: the diarizer embeds
padded batches of (chunk, speaker) pairs, and each embedding must be the one the pair gets alone."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.service.conftest import Container

pytestmark = pytest.mark.integration

# Runs inside the service container (cwd /srv, so `app` is the image's own code). stdin: the dialogue
# wav; argv[1]: its reference turns. Builds pyannote-shaped input (10 s chunks, each repeated once per
# mask, 589 segmentation frames per chunk) and prints the embeddings computed three ways as JSON.
SCRIPT = r"""
import io, json, sys, wave

import numpy as np
import torch

from app.inference.embedding import CamPlusEmbedding

SR, CHUNK_S, SEG_FRAMES = 16000, 10.0, 589
with wave.open(io.BytesIO(sys.stdin.buffer.read())) as w:
    assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (SR, 1, 2)
    audio = torch.from_numpy(np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768)
turns = json.loads(sys.argv[1])
times = np.arange(SEG_FRAMES) * CHUNK_S / SEG_FRAMES

waveforms, masks, labels = [], [], []
for c, start in enumerate(np.arange(0.0, 27.01, 4.5)):
    chunk = audio[int(start * SR) : int(start * SR) + int(CHUNK_S * SR)]
    chunk_masks = {  # speaker turns, a stretch whose length differs per chunk, one too short to embed, nothing
        speaker: np.any([(times + start >= t["start"]) & (times + start < t["end"]) for t in turns
                         if t["speaker"] == speaker], axis=0)
        for speaker in ("alice", "bob")
    }
    chunk_masks["stretch"] = times < 0.35 + 1.45 * c
    chunk_masks["short"] = (times >= 2.0) & (times < 2.2)
    chunk_masks["none"] = np.zeros(SEG_FRAMES, bool)
    for label, mask in chunk_masks.items():
        waveforms.append(chunk[None])
        masks.append(torch.from_numpy(mask.astype(np.float32)))
        labels.append(label)
waveforms, masks = torch.stack(waveforms), torch.stack(masks)

emb = CamPlusEmbedding("/models/campplus/campplus_cn_en_common.pt", torch.device("cpu"))
frames = {b: feats.shape[0] for b, feats in emb.features(waveforms, masks)}  # embeddable pairs only
calls = []
emb.model.register_forward_pre_hook(lambda module, args: calls.append(list(args[0].shape[:2])))

def run(batch_frames):
    emb.batch_frames = batch_frames
    calls.clear()
    return emb(waveforms, masks).tolist(), list(calls)

feats = dict(emb.features(waveforms, masks))
with torch.inference_mode():  # alone: the network on the pair's own frames, no padding, no masks
    alone = [emb.model(feats[b][None])[0].tolist() if b in feats else [float("nan")] * emb.dimension
             for b in range(len(labels))]
batched, batched_calls = run(CamPlusEmbedding.batch_frames)
tiny, tiny_calls = run(1200)
print(json.dumps({
    "labels": labels, "frames": [frames.get(b, 0) for b in range(len(labels))], "min_frames": emb.min_frames,
    "default_batch_frames": CamPlusEmbedding.batch_frames, "alone": alone, "batched": batched,
    "batched_calls": batched_calls, "tiny": tiny, "tiny_calls": tiny_calls,
}).replace("NaN", "null"))
"""


def embed(service: Container, wav: Path, turns: list[dict]) -> dict:
    proc = subprocess.run(
        ["docker", "exec", "-i", service.name, "python", "-c", SCRIPT, json.dumps(turns)],
        input=wav.read_bytes(),
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return json.loads(proc.stdout)


def array(rows: list) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=np.float64)


def assert_same_embeddings(got: np.ndarray, want: np.ndarray, labels: list[str]) -> None:
    assert np.array_equal(np.isnan(got).all(axis=1), np.isnan(want).all(axis=1))
    for b in np.flatnonzero(~np.isnan(want).all(axis=1)):
        cosine = got[b] @ want[b] / (np.linalg.norm(got[b]) * np.linalg.norm(want[b]))
        # exact up to float rounding (1 - 1e-9 here); a padding frame leaking in at the end of one layer
        # costs ~1e-3 on the shortest pairs
        assert cosine > 0.99999, f"pair {b} ({labels[b]}): cosine {cosine:.7f} with its embedding alone"


@pytest.fixture(scope="module")
def embeddings(service: Container, audio: Path, dialogue: dict) -> dict:
    return embed(service, audio / "dialogue.wav", dialogue["turns"])


def test_the_pairs_have_clearly_different_lengths_and_some_are_too_short(embeddings: dict):
    frames, labels = embeddings["frames"], embeddings["labels"]
    embedded = sorted(f for f in frames if f)
    assert len(embedded) >= 15 and embedded[0] < 100 and embedded[-1] > 800, embedded
    assert len(set(embedded)) >= 10  # padding really happens: most of a batch is shorter than its longest
    alone = array(embeddings["alone"])
    for b, label in enumerate(labels):
        if label in ("short", "none"):  # 0.2 s of speech, or none: NaN, as pyannote expects
            assert frames[b] == 0 and np.isnan(alone[b]).all()
        if label == "stretch":  # 0.35 s and longer
            assert frames[b] >= embeddings["min_frames"] and not np.isnan(alone[b]).any()


def test_batched_embeddings_equal_the_ones_computed_alone(embeddings: dict):
    calls = embeddings["batched_calls"]
    assert any(batch > 1 for batch, _ in calls), calls  # several pairs shared a network call
    assert len(calls) < sum(1 for f in embeddings["frames"] if f)
    assert all(batch * frames <= embeddings["default_batch_frames"] or batch == 1 for batch, frames in calls)
    assert_same_embeddings(array(embeddings["batched"]), array(embeddings["alone"]), embeddings["labels"])


def test_batch_frames_bounds_each_network_call_without_changing_the_result(embeddings: dict):
    calls = embeddings["tiny_calls"]
    assert all(batch * frames <= 1200 or batch == 1 for batch, frames in calls), calls
    assert any(batch > 1 for batch, _ in calls) and len(calls) > len(embeddings["batched_calls"])
    assert_same_embeddings(array(embeddings["tiny"]), array(embeddings["alone"]), embeddings["labels"])


def test_the_real_checkpoint_tells_the_two_voices_apart(embeddings: dict):
    alone, labels = array(embeddings["alone"]), embeddings["labels"]
    unit = alone / np.linalg.norm(alone, axis=1, keepdims=True)
    alice = unit[[b for b, label in enumerate(labels) if label == "alice" and not np.isnan(unit[b]).any()]]
    bob = unit[[b for b, label in enumerate(labels) if label == "bob" and not np.isnan(unit[b]).any()]]
    assert len(alice) >= 3 and len(bob) >= 3
    same = np.mean(
        [(alice @ alice.T)[np.triu_indices(len(alice), 1)].mean(), (bob @ bob.T)[np.triu_indices(len(bob), 1)].mean()]
    )
    assert same > (alice @ bob.T).mean() + 0.2
