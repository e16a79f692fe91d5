"""One request through the models: windows of audio, VAD + diarization overlapped with transcription.

A front thread walks the recording window by window: it reads the window from disk, runs the
segmentation model once (that is the VAD) and hands Whisper's chunks to the transcription loop, then
diarizes the same window while Whisper works. A one-slot queue between them keeps the front thread
at most one window ahead, so memory is bounded by the window size whatever the recording's length.
"""

from __future__ import annotations

import copy
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from pyannote.core import SlidingWindow, SlidingWindowFeature
from whisperx.diarize import assign_word_speakers

from app.inference.asr import WhisperTranscriber
from app.inference.audio import PcmAudio
from app.inference.diarize import SAMPLE_RATE, EmbeddingReplay, diarize_window, embed_voice, speech_chunks
from app.inference.speech import VadOptions
from app.inference.transcript import Transcript
from app.inference.windows import Match, SpeakerLinker, Speakers, WindowSpeakers, cut_windows, name_speakers

log = logging.getLogger(__name__)


@dataclass
class KnownSpeaker:
    """A voice to name: its name and a 2-10 s reference clip (16 kHz mono float32)."""

    name: str
    samples: np.ndarray


@dataclass
class Options:
    language: str | None = None
    prompt: str | None = None
    hotwords: str | None = None  # faster-whisper's: words to bias the decoder towards, in the prompt's place
    temperature: float = 0.0
    diarize: bool = True
    vad: VadOptions = field(default_factory=VadOptions)
    known_speakers: list[KnownSpeaker] = field(default_factory=list)  # named where a speaker's voice matches
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    cancel: threading.Event | None = None  # set when the caller went away: the run stops at the next window

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()


@dataclass
class StageTimer:
    """Seconds per pipeline stage, summed over windows and threads."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    replayed: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # work an earlier run kept
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def stage(self, name: str):
        began = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - began)

    def add(self, name: str, seconds: float) -> None:
        with self.lock:
            self.seconds[name] += seconds

    def replay(self, name: str, count: int = 1) -> None:
        if count:
            with self.lock:
                self.replayed[name] += count


class Cancelled(Exception):
    """The run was stopped between windows (Options.cancel)."""


@dataclass
class WindowResult:
    """One finished window: what a job's checkpoint holds and what a resumed run starts from.

    `segments` are as Whisper found them (absolute times, no speakers yet); `speakers` is the window's
    diarization (None without speech or diarization). Replaying the results of windows 0..k into a new
    run leaves it exactly where the first run was after window k.
    """

    index: int
    start: float
    end: float
    segments: list[dict]
    speakers: WindowSpeakers | None
    language: str | None

    def to_json(self) -> dict:
        return {
            "index": self.index,
            "start": self.start,
            "end": self.end,
            "segments": self.segments,
            "speakers": self.speakers.to_json() if self.speakers else None,
            "language": self.language,
        }

    @classmethod
    def from_json(cls, data: dict) -> WindowResult:
        speakers = data.get("speakers")
        return cls(
            index=int(data["index"]),
            start=float(data["start"]),
            end=float(data["end"]),
            segments=list(data["segments"]),
            speakers=WindowSpeakers.from_json(speakers) if speakers else None,
            language=data.get("language"),
        )


# Called once a window is finished: its result, and its segments with the speakers known so far.
WindowDone = Callable[[WindowResult, list[dict]], None]


class Scratch(Protocol):
    """Where a run keeps the work it has done inside windows that are not finished yet, so that a run
    resumed after a crash skips that too (a job: app.jobs.store.Scratch). Values by name: `.npy` an
    array, `.npz` a dict of arrays, `.json` plain JSON; `get` is None for what was not kept or cannot be
    read back, and that work is simply done again."""

    def get(self, index: int, name: str) -> Any: ...

    def put(self, index: int, name: str, value: Any) -> None: ...


class NoScratch:
    """A synchronous request keeps nothing."""

    def get(self, index: int, name: str) -> Any:
        return None

    def put(self, index: int, name: str, value: Any) -> None:
        pass


class SpeechPipeline:
    def __init__(self, transcriber: WhisperTranscriber, diarization, segmentation, *, model_name: str,
                 window_s: float, max_speakers: int, aligner=None, link_threshold: float = 0.65,
                 known_speaker_threshold: float = 0.85):  # fmt: skip
        self.transcriber = transcriber
        self.diarization = diarization  # a pyannote SpeakerDiarization whose segmentation is shared
        self.segmentation = segmentation  # pyannote Inference: (chunks, frames, local speakers)
        self.model_name = model_name
        self.window_s = window_s
        self.max_speakers = max_speakers
        self.aligner = aligner  # app.inference.align.Wav2Vec2Aligner or None: word times from Whisper
        self.link_threshold = link_threshold
        self.known_speaker_threshold = known_speaker_threshold

    def windows(self, audio: PcmAudio) -> list[tuple[float, float]]:
        return cut_windows(audio, self.window_s)

    def run(
        self,
        audio: PcmAudio,
        options: Options,
        timings: StageTimer,
        *,
        windows: list[tuple[float, float]] | None = None,
        done: Sequence[WindowResult] = (),
        on_window: WindowDone | None = None,
        scratch: Scratch | None = None,
    ) -> Transcript:
        """The transcript of `audio`. `done` are the results of its first windows from an earlier run (a job
        resumed after a restart): they are replayed, not computed again. `on_window` hears of each window
        this run finishes; `scratch` keeps (and gives back) the work done inside the unfinished ones: the
        window's segmentation, its embedding batches, its diarization and its Whisper batches."""
        scratch = scratch or NoScratch()
        windows = windows or self.windows(audio)
        single = len(windows) == 1
        log.info("%.1f s of audio in %d diarization window(s), %d done before", audio.duration, len(windows), len(done))
        cap = min(options.max_speakers or self.max_speakers, self.max_speakers)
        if options.num_speakers:
            cap = max(cap, options.num_speakers)
        linker = SpeakerLinker(threshold=self.link_threshold, max_speakers=cap)
        references = []  # each known voice embedded by the diarizer's own speaker embedding
        if options.known_speakers and options.diarize:
            with timings.stage("known_speakers"):
                references = [(k.name, embed_voice(self.diarization, k.samples)) for k in options.known_speakers]
        segments: list[dict] = []
        language = options.language or self.transcriber.fixed_language
        for result in done:
            if result.speakers is not None:
                linker.add(result.speakers)
            segments.extend(result.segments)
            language = language or result.language
        handoff: queue.Queue = queue.Queue(maxsize=1)
        diarized: dict[int, WindowSpeakers | None] = {}
        ready = threading.Condition()
        stop = threading.Event()
        failure: list[BaseException] = []

        def put(item) -> None:
            while True:
                if stop.is_set():
                    raise Cancelled
                try:
                    handoff.put(item, timeout=0.2)
                    return
                except queue.Full:
                    continue

        def front() -> None:
            try:
                for index in range(len(done), len(windows)):
                    start, end = windows[index]
                    if options.cancelled():
                        raise Cancelled
                    waveform = torch.from_numpy(audio.read(start, end))[None]
                    with timings.stage("vad"):
                        segmentations = self.segment(index, waveform, scratch, timings)
                        chunks = speech_chunks(segmentations, self.segmentation.model, start, options.vad)
                    put((index, start, end, chunks))
                    speakers = None
                    if options.diarize and chunks:
                        kept = scratch.get(index, "speakers.json")
                        if kept is not None:
                            speakers = WindowSpeakers.from_json(kept)
                            timings.replay("diarization")
                        else:
                            replay = self.embedding_replay(index, scratch)
                            with timings.stage("diarize"):
                                speakers = diarize_window(
                                    self.diarization, waveform, segmentations, start,
                                    num_speakers=options.num_speakers if single else None,
                                    min_speakers=options.min_speakers if single else None,
                                    max_speakers=cap, replay=replay,
                                )  # fmt: skip
                            timings.replay("embedding_batches", replay.replayed)
                            scratch.put(index, "speakers.json", speakers.to_json())
                    with ready:
                        diarized[index] = speakers
                        ready.notify_all()
                    del waveform, segmentations
            except Cancelled:
                pass
            except BaseException as exc:  # re-raised in the request's thread
                failure.append(exc)
            finally:
                with ready:
                    ready.notify_all()
                with suppress(Cancelled):
                    put(None)

        def speakers_of(index: int) -> WindowSpeakers | None:
            with ready:
                while index not in diarized:
                    if failure or stop.is_set():
                        raise Cancelled
                    ready.wait(0.2)
                return diarized.pop(index)

        thread = threading.Thread(target=front, name="vad-diarize", daemon=True)
        thread.start()
        try:
            while (item := handoff.get()) is not None:
                if options.cancelled():
                    raise Cancelled
                index, start, end, chunks = item
                found: list[dict] = []
                if chunks:
                    found, language = self.transcribe(index, start, end, chunks, audio, language, options,
                                                      scratch, timings)  # fmt: skip
                speakers = speakers_of(index)
                if speakers is not None:
                    linker.add(speakers)
                segments.extend(found)
                if on_window is not None:
                    result = WindowResult(index, start, end, plain(found), speakers, language)
                    so_far = (
                        named(linker.speakers(), references, self.known_speaker_threshold)[0].turns
                        if options.diarize
                        else []
                    )
                    on_window(result, by_speaker(copy.deepcopy(result.segments), so_far) if so_far else result.segments)
        except Cancelled:
            if not failure:
                raise
        finally:
            stop.set()
            thread.join()
        if failure:
            raise failure[0]
        if options.cancelled():
            raise Cancelled

        found = Speakers([], [], {})
        if options.diarize:
            found = linker.speakers(options.num_speakers if not single else None)
        found, matches = named(found, references, self.known_speaker_threshold)
        if found.turns:
            segments = by_speaker(segments, found.turns)  # each word to one speaker
        language = language or "en"
        return Transcript.from_segments(
            segments, found.overlapping, language=language, duration=audio.duration, model=self.model_name,
            diarized=options.diarize, matches=matches,
        )  # fmt: skip

    def segment(self, index: int, waveform: torch.Tensor, scratch: Scratch,
                timings: StageTimer) -> SlidingWindowFeature:  # fmt: skip
        """The window's segmentation (chunks x frames x local speakers): VAD and diarization's first step."""
        kept = scratch.get(index, "segmentation.npz")
        if kept is not None and {"data", "window"} <= kept.keys():
            timings.replay("segmentation")
            start, duration, step = (float(v) for v in kept["window"])
            return SlidingWindowFeature(kept["data"], SlidingWindow(start=start, duration=duration, step=step))
        segmentations = self.segmentation({"waveform": waveform, "sample_rate": SAMPLE_RATE})
        frames = segmentations.sliding_window
        window = np.array([frames.start, frames.duration, frames.step], dtype=np.float64)
        scratch.put(index, "segmentation.npz", {"data": segmentations.data, "window": window})
        return segmentations

    def embedding_replay(self, index: int, scratch: Scratch) -> EmbeddingReplay:
        kept: list[np.ndarray] = []
        while (batch := scratch.get(index, f"embeddings-{len(kept):04d}.npy")) is not None:
            kept.append(batch)
        return EmbeddingReplay(
            self.diarization._embedding, kept, lambda k, batch: scratch.put(index, f"embeddings-{k:04d}.npy", batch)
        )

    def transcribe(self, index: int, start: float, end: float, chunks: list[tuple[float, float]], audio: PcmAudio,
                   language: str | None, options: Options, scratch: Scratch,
                   timings: StageTimer) -> tuple[list[dict], str]:  # fmt: skip
        """The window's segments (absolute times, words timed) and the language, batch by batch; each batch
        kept in `scratch` as `whisper.json` (the segments so far, how many chunks they cover, whether their
        words are aligned), so a resumed run goes on from the first batch that was not finished."""
        kept = scratch.get(index, "whisper.json") or {"chunks": 0, "segments": [], "language": None, "final": False}
        found, done = list(kept["segments"]), int(kept["chunks"])
        language = language or kept["language"]
        if done:
            timings.replay("whisper_chunks", done)
        if kept["final"]:
            return found, language or "en"
        pieces = [(s, audio.read(s, e)) for s, e in chunks[done:]]
        word_s = 0.0
        with timings.stage("transcribe"):
            if language is None:
                language = self.transcriber.detect_language(pieces[0][1])
            aligner = self.aligner.for_language(language) if self.aligner else None
            batches = self.transcriber.transcribe(
                pieces, language, options.prompt, options.temperature, words=aligner is None, hotwords=options.hotwords
            )
            for size, segments, seconds in batches:
                found.extend(plain(segments))
                done, word_s = done + size, word_s + seconds
                final = aligner is None and done == len(chunks)
                scratch.put(index, "whisper.json", {"chunks": done, "segments": found, "language": language,
                                                    "final": final})  # fmt: skip
        timings.add("transcribe", -word_s)
        timings.add("align", word_s)
        if aligner is not None and found:
            with timings.stage("align"):
                found = plain(aligner.align(found, audio.read(start, end), start))
            scratch.put(index, "whisper.json", {"chunks": done, "segments": found, "language": language, "final": True})
        return found, language


def named(found: Speakers, references: list, threshold: float) -> tuple[Speakers, dict[str, Match]]:
    """The speakers with each one a known voice matched (windows.name_speakers) relabelled by its name, and the
    matches by name."""
    matches = name_speakers(found.centroids, references, threshold) if references else {}

    def rename(turns: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
        return [(start, end, matches[label].name if label in matches else label) for start, end, label in turns]

    return found._replace(turns=rename(found.turns), overlapping=rename(found.overlapping)), {
        match.name: match for match in matches.values()
    }


def plain(value: Any) -> Any:
    """Segments as plain JSON values (numpy scalars as floats), as a checkpoint stores and a resume reads them."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def by_speaker(segments: list[dict], turns: list[tuple[float, float, str]]) -> list[dict]:
    """Words get the speaker they overlap most (whisperX's assign_word_speakers); segments split where it changes."""
    frame = pd.DataFrame(turns, columns=["start", "end", "speaker"])
    assigned = assign_word_speakers(frame, {"segments": segments}, fill_nearest=True)["segments"]
    out = []
    for seg in assigned:
        words = seg.get("words") or []
        for word in words:
            word.setdefault("speaker", seg.get("speaker"))
        if len({w["speaker"] for w in words}) <= 1:
            if words:
                seg["speaker"] = words[0]["speaker"]
            out.append(seg)
            continue
        run: list[dict] = []
        for word in words:
            if run and word["speaker"] != run[-1]["speaker"]:
                out.append(_segment_of(run, seg))
                run = []
            run.append(word)
        out.append(_segment_of(run, seg))
    return out


def _segment_of(words: list[dict], parent: dict) -> dict:
    return {
        "start": words[0]["start"],
        "end": words[-1]["end"],
        "text": join_words(w["word"] for w in words),
        "words": words,
        "speaker": words[0]["speaker"],
        "avg_logprob": parent.get("avg_logprob"),
    }


def join_words(words) -> str:
    """Words back into text: a space between words, none before punctuation or a clitic ('s, n't)."""
    text = ""
    for word in words:
        text += word if not text or word[:1] in "'\u2019.,!?;:%)" or word.startswith("n'") else " " + word
    return text
