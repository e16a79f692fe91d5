"""The real recordings with reference speaker turns that installable packages carry (`make eval`).

- pyannote's sample: the 30-s two-person excerpt in the pyannote.audio wheel (sample.wav, .rttm, .stm),
  copied out of the service image, where that wheel is installed.
- pyAudioAnalysis 0.1.3's source distribution (fetched from PyPI by its URL and checked against the sha256
  pinned below; never installed, nothing in it runs): diarizationExample.wav, 42 s of an English radio
  phone-in, four people in seven turns; diarizationExample2.wav, 22 s of six people each saying a German
  voice-assistant command. Their `.segments` (start,end,speaker; 0.1 s resolution) tile the recording,
  pauses inside a turn included. No transcript comes with them, so they have no WER.

The test data inside pyannote-audio's source distribution is reserved for checking this work independently
and is not used.
"""

from __future__ import annotations

import hashlib
import ssl
import tarfile
import uuid
import wave
from pathlib import Path

from scripts.bench.scoring import rttm_turns, stm_lines
from scripts.model_bundle import sha256 as file_sha256

SITE = "/opt/venv/lib/python3.11/site-packages"
PAA = "pyAudioAnalysis-0.1.3"
PAA_URL = ("https://files.pythonhosted.org/packages/e4/92/c3d26ceeef8f9f960224a8286114988db2cec6f342ad98a0031285ec364d/"
           f"{PAA}.tar.gz")  # fmt: skip
PAA_SHA256 = "58333557990b4503493fa2d2806591699f5651034086b241e170d2a2e75bac98"
PAA_LICENCE = "Apache-2.0 (pyAudioAnalysis)"


def duration(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def pyannote_sample(image: str, work: Path, docker) -> dict:
    sample = work / "pyannote-sample"
    if not (sample / "sample.wav").is_file():
        sample.mkdir(parents=True, exist_ok=True)
        tmp = f"eval-sample-{uuid.uuid4().hex[:6]}"
        docker("create", "--name", tmp, image)
        try:
            docker("cp", f"{tmp}:{SITE}/pyannote/audio/sample/.", str(sample))
        finally:
            docker("rm", "-f", tmp, check=False)
    path = work / "pyannote-sample.wav"
    path.write_bytes((sample / "sample.wav").read_bytes())
    turns = rttm_turns(sample / "sample.rttm")
    return {"name": "pyannote-sample", "path": path, "turns": turns,
            "text": " ".join(t for *_, t in stm_lines(sample / "sample.stm")),
            "speakers": len({t[2] for t in turns}), "real": True,
            "source": "pyannote.audio 4.0.7 wheel, pyannote/audio/sample/sample.wav (+ .rttm, .stm)",
            "licence": "MIT (pyannote.audio)"}  # fmt: skip


def fetch(url: str, sha256: str, dest: Path) -> Path:
    """`url` saved as `dest` once its sha256 is the pinned one (the system's CA store, as pip's; a proxy's CA too)."""
    import httpx

    if dest.is_file() and file_sha256(dest) == sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    body = httpx.get(url, verify=ssl.create_default_context(), follow_redirects=True, timeout=300).raise_for_status()
    if (got := hashlib.sha256(body.content).hexdigest()) != sha256:
        raise SystemExit(f"{url}: sha256 {got}, pinned {sha256}: refusing it")
    tmp = dest.with_suffix(".part")
    tmp.write_bytes(body.content)
    tmp.replace(dest)
    return dest


def segments_turns(path: Path) -> list[tuple[float, float, str]]:
    turns = []
    for line in path.read_text().splitlines():
        if line.strip():
            start, end, speaker = line.strip().split(",")
            turns.append((float(start), float(end), speaker))
    return turns


def pyaudioanalysis(work: Path) -> list[dict]:
    data = work / PAA
    if not (data / "diarizationExample2.segments").is_file():
        sdist = fetch(PAA_URL, PAA_SHA256, work / "packages" / f"{PAA}.tar.gz")
        data.mkdir(parents=True, exist_ok=True)
        with tarfile.open(sdist) as tar:
            for stem in ("diarizationExample", "diarizationExample2"):
                for ext in (".wav", ".segments"):
                    member = tar.getmember(f"{PAA}/pyAudioAnalysis/data/{stem}{ext}")
                    (data / f"{stem}{ext}").write_bytes(tar.extractfile(member).read())
    out = []
    for stem, name, what in (("diarizationExample", "paa-radio", "English radio phone-in"),
                             ("diarizationExample2", "paa-commands", "German voice commands")):  # fmt: skip
        path = work / f"{name}.wav"
        path.write_bytes((data / f"{stem}.wav").read_bytes())
        turns = segments_turns(data / f"{stem}.segments")
        out.append({"name": name, "path": path, "turns": turns, "text": None, "speakers": len({t[2] for t in turns}),
                    "real": True, "source": f"{PAA}.tar.gz (sdist), pyAudioAnalysis/data/{stem}.wav (+ .segments):"
                    f" {what}", "licence": PAA_LICENCE})  # fmt: skip
    return out
