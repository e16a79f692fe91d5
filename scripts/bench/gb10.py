"""The "On paper: a 90-minute meeting on a GB10" section of docs/benchmarks/service.md.

No GB10 (nor any GPU) is on the machines this project is measured on, so this is an estimate derived from
published figures, each cited, written out so the arithmetic can be checked; `make gpu-smoke` on a Spark
prints the real per-stage real-time factors to replace it with.
"""

from __future__ import annotations

MEETING_MIN = 90
# faster-whisper's README ("Benchmark", Large-v2 model on GPU: 13 minutes of audio, RTX 3070 Ti 8 GB, CUDA 12.4)
FW_AUDIO_S = 13 * 60
FW_SEQUENTIAL_S = 63  # fp16, beam 5
FW_BATCHED_S = 17  # fp16, beam 5, batch_size=8 (the service's WHISPERX_BATCH_SIZE)
MEDIUM_OVER_LARGE = (0.5, 0.7)  # medium (769 M parameters) against large-v2 (1550 M): half the weights to read
# GB10 against the RTX 3070 Ti: 273 GB/s against 608 GB/s of memory bandwidth (decoding is bandwidth-bound),
# tensor compute of the same order: from as fast to 2.2 times slower.
GB10_OVER_3070TI = (1.0, 608 / 273)
# pyannote/speaker-diarization-3.1's model card: real-time factor around 2.5 % on one V100 SXM2 (neural part)
# and a Cascade Lake CPU (clustering): "approximately 1.5 minutes to process a one hour conversation".
PYANNOTE_RTF_V100 = 0.025
GB10_OVER_V100 = (1.0, 900 / 273)  # V100 SXM2: 900 GB/s, 125 TFLOPS fp16 tensor; GB10: 273 GB/s
SEED_MIN = {"stt": 3, "diarize": 9}  # the legacy Parakeet + Sortformer path on Spark 2, serial (the mission)


def minutes(rtf: float) -> float:
    return rtf * MEETING_MIN


def section() -> list[str]:
    stt = [FW_BATCHED_S / FW_AUDIO_S * m * g for m, g in zip(MEDIUM_OVER_LARGE, GB10_OVER_3070TI, strict=True)]
    seq = [FW_SEQUENTIAL_S / FW_AUDIO_S * m * g for m, g in zip(MEDIUM_OVER_LARGE, GB10_OVER_3070TI, strict=True)]
    diar = [PYANNOTE_RTF_V100 * g for g in GB10_OVER_V100]
    overlapped = [max(s, d) for s, d in zip(stt, diar, strict=True)]
    serial = [s + d for s, d in zip(stt, diar, strict=True)]
    lo = hi = "{:.1f}".format
    saved = [1 - o / s for o, s in zip(overlapped, serial, strict=True)]
    seed = [minutes(o) / sum(SEED_MIN.values()) for o in overlapped]
    return [
        "",
        f"## On paper: a {MEETING_MIN}-minute meeting on a GB10",
        "",
        "Not measured: no GPU here. Derived from published figures (`scripts/bench/gb10.py` holds the"
        " arithmetic); `make gpu-smoke` on a Spark prints the real per-stage real-time factors.",
        "",
        "| stage | published figure | scaled to `medium` on a GB10 | 90 minutes |",
        "|---|---|---|---|",
        f"| transcription, batched (`batch_size=8`, fp16) | large-v2: {FW_BATCHED_S} s for 13 min of audio on an"
        f" RTX 3070 Ti (faster-whisper README, Benchmark) | x{MEDIUM_OVER_LARGE[0]}-{MEDIUM_OVER_LARGE[1]} for"
        f" medium's half-size weights, x{GB10_OVER_3070TI[0]:.1f}-{GB10_OVER_3070TI[1]:.1f} for 273 against 608"
        f" GB/s | {lo(minutes(stt[0]))}-{hi(minutes(stt[1]))} min |",
        f"| transcription, sequential (beam 5) | large-v2: {FW_SEQUENTIAL_S} s for the same 13 min (same"
        f" source) | same factors | {lo(minutes(seq[0]))}-{hi(minutes(seq[1]))} min |",
        f'| diarization | real-time factor {PYANNOTE_RTF_V100:.1%} on a V100 SXM2, "approximately 1.5 minutes'
        ' to process a one hour conversation" (pyannote/speaker-diarization-3.1 model card) |'
        f" x{GB10_OVER_V100[0]:.1f}-{GB10_OVER_V100[1]:.1f} for 273 against 900 GB/s |"
        f" {lo(minutes(diar[0]))}-{hi(minutes(diar[1]))} min |",
        f"| **the service** (transcription beside diarization) | | the longer of the two |"
        f" **{lo(minutes(overlapped[0]))}-{hi(minutes(overlapped[1]))} min** |",
        f"| the same stages one after the other | | the sum | {lo(minutes(serial[0]))}-{hi(minutes(serial[1]))} min |",
        f"| the seed (Parakeet + Sortformer, serial) | {SEED_MIN['stt']} min STT + {SEED_MIN['diarize']} min"
        " diarization (the mission) | | 12 min |",
        "",
        "Diarization dominates, as in the seed (9 of its 12 minutes) and in every CPU run above (the 90-minute"
        " run: VAD + diarization 326 s of work against transcription's 262 s, wall 327 s). Running"
        ' transcription beside it (docs/service.md, "Sharing work, overlapping the rest") hides the'
        f" transcription: the meeting costs about the diarization alone, {min(saved):.0%}-{max(saved):.0%} less than"
        f" the same stages in series, {seed[0]:.0%}-{seed[1]:.0%} of the seed's 12 minutes. Two cautions: the"
        " GB10's CPU and GPU share its 273 GB/s, so the two threads slow each other more than on a discrete GPU (the"
        " wall then lies between the overlapped and the serial figure); and the diarization figure is"
        " pyannote 3.1's, while the service runs community-1 online (segmentation-3.0 + CAM++ offline),"
        " with its own windows and batched embeddings.",
    ]
