"""The offline bundle's CAM++ speaker embedding, shaped the way pyannote's diarization pipeline calls it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchaudio

from app.campplus import CAMPPlus

FBANK_SHIFT_S = 0.010  # kaldi fbank frame shift


class CamPlusEmbedding:
    """pyannote's embedding interface: `__call__(waveforms (B,1,N), masks (B,F)) -> (B,192)`.

    Features are 80-bin kaldi fbank with per-segment mean normalisation (as in 3D-Speaker); a mask
    keeps only the frames where the local speaker is active. Masks too short to embed give NaN, which
    pyannote's clustering skips, so inactive (chunk, speaker) pairs cost nothing.
    """

    sample_rate = 16000
    dimension = 192
    metric = "cosine"
    min_num_samples = 400  # one fbank frame
    min_frames = 30  # 0.3 s of active speech

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

    @torch.inference_mode()
    def __call__(self, waveforms: torch.Tensor, masks: torch.Tensor | None = None) -> np.ndarray:
        batch = waveforms.shape[0]
        embeddings = np.full((batch, self.dimension), np.nan, dtype=np.float32)
        for b in range(batch):
            feats = torchaudio.compliance.kaldi.fbank(
                waveforms[b, :1].float(), num_mel_bins=80, sample_frequency=self.sample_rate, dither=0.0
            )
            if masks is not None:
                mask = masks[b]
                # map each fbank frame onto the segmentation frame that covers it
                frames = torch.arange(feats.shape[0]) * mask.shape[0] // feats.shape[0]
                idx = torch.clamp(frames, max=mask.shape[0] - 1)
                feats = feats[mask[idx] > 0.5]
            if feats.shape[0] < self.min_frames:
                continue
            feats = feats - feats.mean(dim=0, keepdim=True)
            embeddings[b] = self.model(feats.unsqueeze(0).to(self.device))[0].cpu().numpy()
        return embeddings
