"""Windowed speaker diarization with pyannote.audio, linked across windows by speaker embeddings.

pyannote 4 diarizes a whole file at once, and its reconstruction allocates
chunks x frames x speakers float64 arrays, so memory grows with the recording (pyannote issue 1963).
Here the pipeline only ever sees one window (WHISPERX_WINDOW_S, 10 min by default); each window's
local speakers come back with a centroid embedding, and `windows.SpeakerLinker` maps them onto
global speakers by cosine similarity. Memory is bounded by the window, not the recording.

The window's segmentation is computed once and shared: it is both the voice activity detection that
cuts the audio for Whisper and the first step of diarization.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from pyannote.audio import Model
from pyannote.audio.core.inference import Inference
from pyannote.audio.core.io import Audio
from pyannote.audio.pipelines.clustering import AgglomerativeClustering, BaseClustering
from pyannote.audio.pipelines.speaker_diarization import SpeakerDiarization
from pyannote.core import SlidingWindowFeature
from pyannote.pipeline.parameter import ParamDict, Uniform
from whisperx.diarize import Segment as SegmentX
from whisperx.vads.pyannote import Binarize
from whisperx.vads.vad import Vad

from app.inference.spectral import spectral_clusters
from app.inference.speech import VadOptions, shape_regions
from app.inference.windows import WindowSpeakers

SAMPLE_RATE = 16000
SEGMENTS_KEY = "whisperx_asr/segmentations"  # where a precomputed segmentation rides along with the file
# a speaker's pauses shorter than this stay inside the reported turn (pyannote's min_duration_off, applied to
# the overlapping turns only, so the exclusive ones words are given to keep short interjections apart):
# chosen by `make eval-sweep`, docs/benchmarks/quality.md "Tuning"
TURN_GAP_S = 0.5


class SpectralClustering(BaseClustering):
    """pyannote's clustering step by `spectral.spectral_clusters`: the speaker count from the eigengap of the
    embeddings' pruned affinity graph; clusters whose mean embeddings are more alike than `threshold` (cosine
    similarity) then become one speaker. pyannote assigns every embedding to the nearest centroid after it.

    Fewer than FEW embeddings (a clip of a few seconds) make no graph to read a gap from: those are clustered
    as before, agglomeratively (centroid linkage, euclidean distance 0.7 between unit vectors).
    """

    FEW = 10

    def __init__(self, metric: str = "cosine"):
        super().__init__(metric=metric)
        self.threshold = Uniform(0.5, 1.0)
        self.neighbours = Uniform(0.02, 0.5)
        few = AgglomerativeClustering(metric=metric)
        few.instantiate({"method": "centroid", "min_cluster_size": 12, "threshold": 0.7})
        self.few = (few,)  # in a tuple: not a sub-pipeline whose parameters the parent would have to set

    def cluster(self, embeddings: np.ndarray, min_clusters: int, max_clusters: int, num_clusters: int | None = None,
                **_) -> np.ndarray:  # fmt: skip
        if len(embeddings) < self.FEW:
            return self.few[0].cluster(embeddings, min_clusters, max_clusters, num_clusters=num_clusters)
        return spectral_clusters(embeddings, min_clusters, max_clusters, num_clusters, merge=self.threshold,
                                 neighbours=self.neighbours)  # fmt: skip


class BundleDiarization(SpeakerDiarization):
    """pyannote's SpeakerDiarization on local checkpoints: segmentation-3.0 + CAM++, no PLDA.

    pyannote 4's constructor insists on loading a PLDA (VBx clustering); offline we have none, so this
    sets up the same attributes with spectral clustering on cosine similarity instead.
    """

    def __init__(self, segmentation: Model, embedding, step: float = 0.25, batch_size: int = 32):
        super(SpeakerDiarization, self).__init__()  # skip SpeakerDiarization.__init__, keep the rest of the MRO
        self.legacy = False
        self.segmentation_model = segmentation
        self.segmentation_step = step
        self.embedding = "campplus"
        self.embedding_batch_size = batch_size
        self.embedding_exclude_overlap = True
        self.plda, self._plda = None, None
        self.klustering = "SpectralClustering"
        self.der_variant = {"collar": 0.0, "skip_overlap": False}
        duration = segmentation.specifications.duration
        self._segmentation = Inference(
            segmentation, duration=duration, step=step * duration, skip_aggregation=True, batch_size=batch_size
        )
        self.segmentation = ParamDict(min_duration_off=Uniform(0.0, 1.0))
        self._embedding = embedding
        self._audio = Audio(sample_rate=embedding.sample_rate, mono="downmix")
        self.clustering = SpectralClustering(metric="cosine")
        self._expects_num_speakers = False
        self.instantiate(
            {
                "segmentation": {"min_duration_off": 0.0},  # gaps are filled in the reported turns (TURN_GAP_S)
                # spectral clustering: speakers counted by the eigengap; two found whose mean embeddings are at a
                # cosine similarity >= 0.8 are one (people sit near 0.3-0.6 with CAM++, two excerpts of one person
                # near 0.8); chosen by `make eval-sweep`, docs/benchmarks/quality.md "Tuning"
                "clustering": {"threshold": 0.8, "neighbours": 0.1},
            }
        )

    def get_segmentations(self, file, hook=None) -> SlidingWindowFeature:
        if SEGMENTS_KEY in file:
            return file[SEGMENTS_KEY]
        return super().get_segmentations(file, hook=hook)


def share_segmentations(pipeline: SpeakerDiarization) -> SpeakerDiarization:
    """Make a hub pipeline (community-1) reuse the segmentation already computed for VAD."""
    compute = pipeline.get_segmentations

    def get_segmentations(file, hook=None):
        return file[SEGMENTS_KEY] if SEGMENTS_KEY in file else compute(file, hook=hook)

    pipeline.get_segmentations = get_segmentations
    return pipeline


def speech_chunks(segmentations: SlidingWindowFeature, model: Model, offset: float, vad: VadOptions | None = None,
                  chunk_s: float = 30.0) -> list:  # fmt: skip
    """Whisper's input chunks (<= chunk_s, cut at pauses) from the diarization segmentation.

    Speech activity is "any local speaker active", averaged over overlapping windows, then binarised
    as whisperX does (hysteresis, regions split at their quietest point past chunk_s) with `vad`'s
    threshold, padding and shortest pause, and merged into chunks of up to chunk_s.
    """
    vad = vad or VadOptions()
    active = np.max(np.nan_to_num(segmentations.data), axis=2, keepdims=True).astype(np.float32)
    speech = Inference.aggregate(
        SlidingWindowFeature(active, segmentations.sliding_window), frames=model.receptive_field, hamming=False
    )
    speech.data = np.nan_to_num(speech.data).astype(np.float32)
    onset, off = vad.threshold, vad.threshold * VadOptions.OFFSET_RATIO
    binarize = Binarize(onset=onset, offset=off, max_duration=chunk_s)
    found = [(t.start, t.end) for t in binarize(speech).get_timeline()]
    regions = [SegmentX(s, e, "UNKNOWN") for s, e in shape_regions(found, vad.prefix_padding_s, vad.silence_s, chunk_s)]
    if not regions:
        return []
    chunks = Vad.merge_chunks(regions, chunk_s, onset, off)
    return [(offset + c["start"], offset + c["end"]) for c in chunks if c["end"] > c["start"]]


class EmbeddingReplay:
    """The pipeline's speaker embedding, handing back batches an interrupted run already embedded.

    pyannote embeds a window's (chunk, speaker) pairs in batches of a fixed size, in a fixed order, so
    batch k of a resumed run is batch k of the first one: the first `kept` batches are returned as they
    were, the rest computed and reported to `on_batch(k, embeddings)` (a job keeps them on disk).
    """

    def __init__(self, embedding, kept: list[np.ndarray], on_batch: Callable[[int, np.ndarray], None] | None):
        self.embedding = embedding
        self.kept = kept
        self.on_batch = on_batch
        self.calls = 0
        self.replayed = 0

    def __getattr__(self, name: str):  # sample_rate, min_num_samples, dimension, ... of the real one
        return getattr(self.embedding, name)

    def __call__(self, waveforms: torch.Tensor, masks: torch.Tensor | None = None) -> np.ndarray:
        k, self.calls = self.calls, self.calls + 1
        if k == self.replayed and k < len(self.kept) and self.kept[k].shape[0] == waveforms.shape[0]:
            self.replayed += 1
            return self.kept[k]
        embeddings = self.embedding(waveforms, masks=masks)
        if self.on_batch is not None:
            self.on_batch(k, embeddings)
        return embeddings


@contextmanager
def replaying(pipeline: SpeakerDiarization, replay: EmbeddingReplay | None) -> Iterator[None]:
    """`pipeline` embedding through `replay` for one call (the inference thread is its only user)."""
    if replay is None:
        yield
        return
    pipeline._embedding = replay
    try:
        yield
    finally:
        pipeline._embedding = replay.embedding


@torch.inference_mode()
def embed_voice(pipeline: SpeakerDiarization, samples: np.ndarray) -> np.ndarray:
    """One embedding of a whole clip (a known speaker's reference) by the pipeline's speaker embedding."""
    waveform = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))[None, None]
    return np.asarray(pipeline._embedding(waveform), dtype=np.float32)[0]


def diarize_window(
    pipeline: SpeakerDiarization,
    waveform: torch.Tensor,
    segmentations: SlidingWindowFeature,
    offset: float,
    num_speakers: int | None,
    min_speakers: int | None,
    max_speakers: int | None,
    replay: EmbeddingReplay | None = None,
) -> WindowSpeakers:
    file = {"waveform": waveform, "sample_rate": SAMPLE_RATE, "uri": "window", SEGMENTS_KEY: segmentations}
    with replaying(pipeline, replay):
        output = pipeline(file, num_speakers=num_speakers, min_speakers=min_speakers, max_speakers=max_speakers)
    labels = output.speaker_diarization.labels()
    centroids = {}
    if output.speaker_embeddings is not None:
        centroids = {label: np.asarray(output.speaker_embeddings[i], np.float32) for i, label in enumerate(labels)}
    turns, durations = [], {}
    for segment, _, label in output.exclusive_speaker_diarization.itertracks(yield_label=True):
        turns.append((offset + segment.start, offset + segment.end, label))
        durations[label] = durations.get(label, 0.0) + segment.duration
    # the reported turns: two people at once where they overlap, a speaker's short pauses inside the turn; only
    # speakers who also speak alone (pyannote adds a label without an embedding where it counts more voices
    # than it has clusters)
    heard = output.speaker_diarization.support(collar=TURN_GAP_S)
    overlapping = [(offset + segment.start, offset + segment.end, label)
                   for segment, _, label in heard.itertracks(yield_label=True) if label in durations]  # fmt: skip
    return WindowSpeakers(turns, centroids, durations, overlapping)
