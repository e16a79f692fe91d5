"""Batched Whisper transcription (whisperX's faster-whisper model) with word times.

whisperX's batched pipeline decodes each VAD chunk without timestamps; its word times come from a
wav2vec2 alignment model. When none is available (offline, or a language without one) the word
times come from Whisper itself: the same batch's encoder output is aligned against the decoded
tokens with cross-attention (faster-whisper's `find_alignment`), one extra pass per batch.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import replace

import numpy as np
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import merge_punctuations
from whisperx.asr import FasterWhisperPipeline
from whisperx.audio import N_SAMPLES, SAMPLE_RATE, log_mel_spectrogram

HOP = 160  # samples per mel frame
SENTENCE_END = (".", "?", "!", "\u3002", "\uff1f", "\uff01")  # and the CJK full stop, ? and !


def batched(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class WhisperTranscriber:
    def __init__(self, pipeline: FasterWhisperPipeline, batch_size: int):
        self.pipeline = pipeline
        self.model = pipeline.model
        self.options = pipeline.options
        self.batch_size = batch_size
        self.n_mels = self.model.feat_kwargs.get("feature_size") or 80
        self.multilingual = self.model.model.is_multilingual
        self.fixed_language = pipeline.preset_language  # "en" for *.en models

    def tokenizer(self, language: str) -> Tokenizer:
        return Tokenizer(self.model.hf_tokenizer, self.multilingual, task="transcribe", language=language)

    def features(self, audio: np.ndarray) -> np.ndarray:
        audio = audio[:N_SAMPLES]
        return log_mel_spectrogram(audio, n_mels=self.n_mels, padding=N_SAMPLES - audio.shape[0]).numpy()

    def detect_language(self, audio: np.ndarray) -> str:
        if self.fixed_language or not self.multilingual:
            return self.fixed_language or "en"
        encoded = self.model.encode(self.features(audio))
        token, _ = self.model.model.detect_language(encoded)[0][0]
        return token[2:-2]

    def transcribe(
        self,
        chunks: list[tuple[float, np.ndarray]],
        language: str,
        prompt: str | None = None,
        temperature: float = 0.0,
        words: bool = True,
        hotwords: str | None = None,
    ) -> Iterator[tuple[int, list[dict], float]]:
        """Transcribe (start_s, audio) chunks of at most 30 s: one segment per sentence, words timed.

        Yields one batch of `batch_size` chunks at a time: (chunks in it, its segments, seconds spent timing
        words). A batch's result does not depend on the batches before it, so a run that skips the first
        n * batch_size chunks gives the rest of the same transcript (a job resumed inside a window).
        """
        tokenizer = self.tokenizer(language)
        options = replace(self.options, initial_prompt=prompt or None)
        prompt_tokens = []
        if options.initial_prompt:
            prompt_tokens = tokenizer.encode(" " + options.initial_prompt.strip())
        sot = self.model.get_prompt(tokenizer, prompt_tokens, without_timestamps=True, hotwords=hotwords or None)
        sampling = {"sampling_temperature": temperature, "sampling_topk": 0} if temperature > 0 else {}
        beam = 1 if temperature > 0 else options.beam_size
        for batch in batched(chunks, self.batch_size):
            segments: list[dict] = []
            align_s = 0.0
            feats = np.stack([self.features(audio) for _, audio in batch])
            encoded = self.model.encode(feats)
            results = self.model.model.generate(
                encoded,
                [sot] * len(batch),
                beam_size=beam,
                patience=options.patience,
                length_penalty=options.length_penalty,
                max_length=self.model.max_length,
                suppress_blank=options.suppress_blank,
                suppress_tokens=options.suppress_tokens,
                no_repeat_ngram_size=options.no_repeat_ngram_size,
                repetition_penalty=options.repetition_penalty,
                return_scores=True,
                **sampling,
            )
            tokens = [[t for t in r.sequences_ids[0] if t < tokenizer.eot] for r in results]
            alignments: list[list[dict]] = [[] for _ in batch]
            if words and any(tokens):
                frames = [min(len(audio) // HOP, N_SAMPLES // HOP) for _, audio in batch]
                began = time.perf_counter()
                alignments = self._align(tokenizer, tokens, encoded, frames, options)
                align_s += time.perf_counter() - began
            for (start, audio), toks, result, aligned in zip(batch, tokens, results, alignments, strict=True):
                text = tokenizer.decode(toks).strip()
                if not text:
                    continue
                end = start + len(audio) / SAMPLE_RATE
                seq_len = len(result.sequences_ids[0])
                avg_logprob = result.scores[0] * (seq_len**options.length_penalty) / (seq_len + 1)
                timed = [
                    {
                        "word": w["word"],  # with its leading space until the segment text is built
                        "start": round(min(start + w["start"], end), 3),
                        "end": round(min(start + w["end"], end), 3),
                        "probability": round(float(w["probability"]), 3),
                    }
                    for w in aligned
                    if w["word"].strip()
                ]
                segments.extend(split_sentences(text, start, end, timed, avg_logprob))
            yield len(batch), segments, align_s

    def _align(self, tokenizer, tokens, encoded, frames, options) -> list[list[dict]]:
        # the batch's encoder output is aligned as a whole: rows with no text get a filler and are dropped
        filler = tokenizer.encode(".")
        aligned = self.model.find_alignment(tokenizer, [t or filler for t in tokens], encoded, frames)
        out: list[list[dict]] = []
        for toks, words in zip(tokens, aligned, strict=True):
            if toks:
                merge_punctuations(words, options.prepend_punctuations, options.append_punctuations)
            out.append(words if toks else [])
        return out


def split_sentences(text: str, start: float, end: float, words: list[dict], avg_logprob: float) -> list[dict]:
    """A chunk's text as one segment per sentence, each with its words and their times."""
    if not words:
        return [{"start": round(start, 3), "end": round(end, 3), "text": text, "words": [], "avg_logprob": avg_logprob}]
    segments, current = [], []
    for word in words:
        current.append(word)
        if word["word"].strip().endswith(SENTENCE_END):
            segments.append(current)
            current = []
    if current:
        segments.append(current)
    return [
        {
            "start": ws[0]["start"],
            "end": ws[-1]["end"],
            "text": "".join(w["word"] for w in ws).strip(),
            "words": [{**w, "word": w["word"].strip()} for w in ws],
            "avg_logprob": avg_logprob,
        }
        for ws in segments
    ]
