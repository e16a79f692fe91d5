"""Known speakers on the project's own synthesised voices: how often a reference names the right speaker
(precision and recall of names) and what the references cost in time.

Each recording mixes 3-5 espeak voices out of POOL (seeded), taking turns on the lines of LINES; each
voice's reference is another sentence. The service runs with WHISPERX_KNOWN_SPEAKER_THRESHOLD=-1, so every
one-to-one assignment comes back with its similarity. Each recording is transcribed three ways,
interleaved: with the references of its own voices plus two absent ones (genuine and impostor scores),
with absent voices only (an impostor score for every speaker), and without references (the time they
cost). A threshold only drops pairs from the assignment, so every threshold's precision and recall
follow from these scores.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import httpx
import numpy as np

from scripts.bench.recordings import RATE, read_pcm, write_pcm
from scripts.fixtures import speak

POOL = {  # espeak-ng voice variants and pitches that sound clearly different
    "ann": {"voice": "en-gb+f4", "pitch": "75", "speed": "150"},
    "bob": {"voice": "en-us+m3", "pitch": "25", "speed": "155"},
    "cy": {"voice": "en-us+f2", "pitch": "50", "speed": "170"},
    "dan": {"voice": "en-us+m7", "pitch": "45", "speed": "160"},
    "eve": {"voice": "en-us+f5", "pitch": "60", "speed": "145"},
    "fin": {"voice": "en-gb-scotland+m4", "pitch": "40", "speed": "165"},
    "gil": {"voice": "en-gb+m2", "pitch": "30", "speed": "150"},
    "hal": {"voice": "en-us+m1", "pitch": "55", "speed": "175"},
}
LINES = [
    "Let us start with the numbers from last week and then move on to the hiring plan.",
    "The supplier called again this morning about the late delivery of the cables.",
    "I think we should postpone the launch until the testing team has signed off.",
    "Could you send me the slides before lunch so that I can read them properly?",
    "The customer survey came back and most people liked the new checkout page.",
    "We are still waiting for the legal review of the contract with the landlord.",
    "My team can take the migration if somebody else covers the support rota.",
    "The budget for the conference is smaller than last year, so plan carefully.",
    "Please remember to book the meeting room for the workshop on Tuesday.",
    "I will write the summary tonight and share it with everyone tomorrow.",
]
REFERENCE = "This is my voice, recorded for the meeting notes, reading a short sentence aloud."
RECORDINGS = 6
PAUSE_S = 0.5


def data_url(path: Path) -> str:
    return "data:audio/wav;base64," + base64.b64encode(path.read_bytes()).decode()


def build(work: Path) -> tuple[list[dict], dict[str, str]]:
    """The recordings (path, voices, true turns) and a reference data URL per voice of the pool."""
    work.mkdir(parents=True, exist_ok=True)
    references = {}
    for name, voice in POOL.items():
        speak(REFERENCE, work / f"ref-{name}.wav", **voice)
        references[name] = data_url(work / f"ref-{name}.wav")
    recordings = []
    for r in range(RECORDINGS):
        rng = np.random.default_rng(r)
        voices = [str(v) for v in rng.choice(sorted(POOL), 3 + r % 3, replace=False)]
        order = [str(v) for v in rng.permutation([voices[i % len(voices)] for i in range(len(LINES))])]
        pcm, turns = [np.zeros(int(PAUSE_S * RATE), "<i2")], []
        at = PAUSE_S
        for i, (who, line) in enumerate(zip(order, LINES, strict=True)):
            clip = work / f"rec{r}-{i}.wav"
            speak(line, clip, **POOL[who])
            samples = read_pcm(clip)
            turns.append((at, at + len(samples) / RATE, who))
            pcm += [samples, np.zeros(int(PAUSE_S * RATE), "<i2")]
            at += len(samples) / RATE + PAUSE_S
        path = work / f"voices-{r}.wav"
        write_pcm(path, np.concatenate(pcm))
        recordings.append({"path": path, "voices": sorted(set(order)), "turns": turns})
    return recordings, references


def true_voice(segments: list[dict], label: str, turns: list[tuple[float, float, str]]) -> str | None:
    """The voice whose turns the label's segments overlap most."""
    overlap: dict[str, float] = {}
    for seg in segments:
        if seg["speaker"] == label:
            for start, end, who in turns:
                overlap[who] = overlap.get(who, 0.0) + max(0.0, min(end, seg["end"]) - max(start, seg["start"]))
    return max(overlap, key=overlap.get) if overlap else None


def transcribe(url: str, path: Path, names: list[str], references: dict[str, str]) -> tuple[dict, float]:
    form = {"known_speaker_names[]": names, "known_speaker_references[]": [references[n] for n in names]}
    began = time.perf_counter()
    with path.open("rb") as f:
        response = httpx.post(f"{url}/v1/audio/transcribe-with-speakers", files={"file": (path.name, f)},
                              data=form if names else {}, timeout=600)  # fmt: skip
    response.raise_for_status()
    return response.json(), time.perf_counter() - began


def scores(body: dict, turns: list) -> list[dict]:
    """Each named speaker: the reference it matched, its true voice and the similarity."""
    out = []
    for speaker in body["speakers"]:
        if speaker.get("match"):
            voice = true_voice(body["segments"], speaker["id"], turns)
            out.append({"name": speaker["name"], "voice": voice, "similarity": speaker["match"]["similarity"]})
    return out


def benchmark(url: str, work: Path) -> dict:
    recordings, references = build(work)
    genuine, impostor, per_recording = [], [], []
    for rec in recordings:
        absent = [n for n in sorted(POOL) if n not in rec["voices"]]
        own, with_s = transcribe(url, rec["path"], rec["voices"] + absent[:2], references)
        others, _ = transcribe(url, rec["path"], absent, references)
        plain, without_s = transcribe(url, rec["path"], [], references)
        found = scores(own, rec["turns"])
        genuine += [s["similarity"] for s in found if s["name"] == s["voice"]]
        impostor += [s["similarity"] for s in found if s["name"] != s["voice"]]
        impostor += [s["similarity"] for s in scores(others, rec["turns"])]
        per_recording.append({
            "voices": rec["voices"], "speakers_found": len(plain["speakers"]), "with_s": round(with_s, 2),
            "without_s": round(without_s, 2), "references": len(rec["voices"]) + 2, "named": found,
        })  # fmt: skip
        print(f"voices: {rec['voices']}: {found}", flush=True)
    return {"genuine": sorted(genuine), "impostor": sorted(impostor), "recordings": per_recording,
            "duration_s": [round(len(read_pcm(r["path"])) / RATE, 1) for r in recordings]}  # fmt: skip


def at_threshold(result: dict, threshold: float) -> dict:
    """Precision and recall of names at a threshold: named = pairs at or above it; a speaker to name is each
    voice of a recording (each had its reference)."""
    named = right = 0
    for rec in result["recordings"]:
        for s in rec["named"]:
            if s["similarity"] >= threshold:
                named += 1
                right += s["name"] == s["voice"]
    wrong_absent = sum(1 for s in result["impostor"] if s >= threshold)  # includes the absent-only runs
    to_name = sum(len(rec["voices"]) for rec in result["recordings"])
    return {"threshold": threshold, "precision": right / max(named, 1), "recall": right / max(to_name, 1),
            "false_names": wrong_absent}  # fmt: skip
