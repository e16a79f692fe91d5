"""The offline bundle's CAM++ speaker embedding, shaped the way pyannote's diarization pipeline calls it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchaudio

from app.inference.campplus import CAMPPlus

FBANK_SHIFT_S = 0.010  # kaldi fbank frame shift


class CamPlusEmbedding:
    """pyannote's embedding interface: `__call__(waveforms (B,1,N), masks (B,F)) -> (B,192)`.

    Features are 80-bin kaldi fbank with per-segment mean normalisation (as in 3D-Speaker); a mask
    keeps only the frames where the local speaker is active. Masks too short to embed give NaN, which
    pyannote's clustering skips, so inactive (chunk, speaker) pairs cost nothing.

    The network runs on batches: the selected frames of several (chunk, speaker) pairs, shortest first,
    zero-padded to the longest of the batch rounded up to `pad_frames` (CAM++ ignores the padding, so
    each embedding is the one it would get alone; few distinct shapes keep oneDNN's per-shape cache
    small and warm on the CPU). A batch holds at most `batch_frames` frames of features, padding included, so
    memory stays flat whatever batch size pyannote asks for.
    """

    sample_rate = 16000
    dimension = 192
    metric = "cosine"
    min_num_samples = 400  # one fbank frame
    min_frames = 30  # 0.3 s of active speech
    batch_frames = 2000  # 20 s of features per network call (docs/service.md: 8000 was slower and kept more memory)
    pad_frames = 100  # 1 s

    def __init__(self, checkpoint: Path, device: torch.device):
        self.device = device
        self.model = CAMPPlus(feat_dim=80, embedding_size=self.dimension)
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        self.model.load_state_dict(state)
        self.model.eval().to(device)

    def to(self, device: torch.device) -> CamPlusEmbedding:
        self.device = device
        self.model.to(device)
        return self

    def features(self, waveforms: torch.Tensor, masks: torch.Tensor | None) -> list[tuple[int, torch.Tensor]]:
        """(index in the batch, mean-normalised fbank frames of the active speaker) for each embeddable pair."""
        out, fbank, previous = [], None, None
        for b in range(waveforms.shape[0]):
            waveform = waveforms[b, :1]
            if previous is None or not torch.equal(waveform, previous):  # pyannote repeats a chunk per speaker
                fbank = torchaudio.compliance.kaldi.fbank(
                    waveform.float(), num_mel_bins=80, sample_frequency=self.sample_rate, dither=0.0
                )
                previous = waveform
            feats = fbank
            if masks is not None:
                mask = masks[b]
                # map each fbank frame onto the segmentation frame that covers it
                frames = torch.arange(feats.shape[0]) * mask.shape[0] // feats.shape[0]
                idx = torch.clamp(frames, max=mask.shape[0] - 1)
                feats = feats[mask[idx] > 0.5]
            if feats.shape[0] >= self.min_frames:
                out.append((b, feats - feats.mean(dim=0, keepdim=True)))
        return out

    def batches(self, items: list[tuple[int, torch.Tensor]]) -> list[list[tuple[int, torch.Tensor]]]:
        """Shortest first, as many as fit in batch_frames once padded (always at least one)."""
        out, current = [], []
        for item in sorted(items, key=lambda it: it[1].shape[0]):
            if current and (len(current) + 1) * self.padded(item[1].shape[0]) > self.batch_frames:
                out.append(current)
                current = []
            current.append(item)
        return [*out, current] if current else out

    def padded(self, frames: int) -> int:
        """Batches are padded to a multiple of pad_frames: a few shapes, each compiled once on the CPU."""
        return -(-frames // self.pad_frames) * self.pad_frames

    @torch.inference_mode()
    def __call__(self, waveforms: torch.Tensor, masks: torch.Tensor | None = None) -> np.ndarray:
        embeddings = np.full((waveforms.shape[0], self.dimension), np.nan, dtype=np.float32)
        for batch in self.batches(self.features(waveforms, masks)):
            lengths = torch.tensor([feats.shape[0] for _, feats in batch])
            padded = batch[0][1].new_zeros(len(batch), self.padded(int(lengths.max())), batch[0][1].shape[1])
            for row, (_, feats) in enumerate(batch):
                padded[row, : feats.shape[0]] = feats
            result = self.model(padded.to(self.device), lengths.to(self.device)).cpu().numpy()
            for (b, _), embedding in zip(batch, result, strict=True):
                embeddings[b] = embedding
        return embeddings
