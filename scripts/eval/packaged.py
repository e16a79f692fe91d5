"""The real recordings with reference speaker turns that installable packages carry (`make eval`).

- pyannote's sample: the 30-s two-person excerpt in the pyannote.audio wheel (sample.wav, .rttm, .stm),
  copied out of the service image, where that wheel is installed.
- pyAudioAnalysis 0.1.3's source distribution (fetched from PyPI by its URL and checked against the sha256
  pinned below; never installed, nothing in it runs): diarizationExample.wav, 42 s of an English radio
  phone-in, four people in seven turns; diarizationExample2.wav, 22 s of six people each saying a German
  voice-assistant command. Their `.segments` (start,end,speaker; 0.1 s resolution) tile the recording,
  pauses inside a turn included. No transcript comes with them, so they have no WER.
- silero-vad 6.2.3's source distribution carries `examples/c++/aepyx.wav`, 169 s of an English US news
  talk show with four people: VoxConverse's test file `aepyx` (CC BY 4.0). Its reference turns are
  VoxConverse's RTTM, committed in `references/` (the package does not carry it).
- pyannotebook 0.1.0.dev0's source distribution carries `examples/DH_EVAL_0001.flac` with its `.rttm`:
  617 s of an English broadcast interview, four people, 124 turns; a DIHARD III evaluation file
  (distributed by the LDC under its own terms). It is fetched for measuring only; nothing of it is
  committed or redistributed.

Splits (set when the recordings were added, before either was measured): the longest real recording is
test, the talk show dev, so the goals are measured on meeting-length real speech and the choice of settings
sees four real voices of its own.

The test data inside pyannote-audio's source distribution is reserved for checking this work independently
and is not used.
"""

from __future__ import annotations

import hashlib
import ssl
import subprocess
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
SILERO = "silero_vad-6.2.3"
SILERO_URL = ("https://files.pythonhosted.org/packages/32/17/df6bfc8f659fc5c1e082c18275be67c5a581bd2d07734a65b141fc983ccf/"
              f"{SILERO}.tar.gz")  # fmt: skip
SILERO_SHA256 = "d7a23b09202be4953915cb9173089bb307eed0418a9bd4794d9ec5af07fa1996"
AEPYX_SHA256 = "a622cb1cdd8a52db84b0d4bb524fa9a93f9ed387de40530f87c3a57d7493fd49"
PBOOK = "pyannotebook-0.1.0.dev0"
PBOOK_URL = ("https://files.pythonhosted.org/packages/74/49/8687f716dc452805692aec4a18de5e0d6d9af3c8236403baa1ec5d314d23/"
             f"{PBOOK}.tar.gz")  # fmt: skip
PBOOK_SHA256 = "f52804fedb71ef9af9b5005be36ef0d76e360d201f5640a2a0257584bff3f11f"
DIHARD_SHA256 = "6f8a66f363b4575cfcc6c6c5b37ad8f33df406861b03fc5bef058a23b1c993c3"  # the .flac
REFERENCES = Path(__file__).parent / "references"


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


def extracted(sdist: Path, members: dict[str, Path]) -> None:
    """Each `members` path of the archive written to its destination (nothing else is read out of it)."""
    with tarfile.open(sdist) as tar:
        for name, dest in members.items():
            tmp = dest.with_suffix(".part")
            tmp.write_bytes(tar.extractfile(tar.getmember(name)).read())
            tmp.replace(dest)


def checked(path: Path, sha256: str) -> Path:
    if (got := file_sha256(path)) != sha256:
        raise SystemExit(f"{path}: sha256 {got}, pinned {sha256}")
    return path


def voxconverse(work: Path) -> dict:
    audio = work / "packages" / "aepyx.wav"
    if not audio.is_file():
        sdist = fetch(SILERO_URL, SILERO_SHA256, work / "packages" / f"{SILERO}.tar.gz")
        extracted(sdist, {f"{SILERO}/examples/c++/aepyx.wav": audio})
    path = work / "voxconverse-aepyx.wav"
    path.write_bytes(checked(audio, AEPYX_SHA256).read_bytes())
    turns = rttm_turns(REFERENCES / "voxconverse-aepyx.rttm")
    return {"name": "voxconverse-aepyx", "path": path, "turns": turns, "text": None,
            "speakers": len({t[2] for t in turns}), "real": True,
            "source": f"{SILERO}.tar.gz (sdist), examples/c++/aepyx.wav; reference: VoxConverse test/aepyx.rttm"
            " (scripts/eval/references): English US news talk show", "licence": "CC BY 4.0 (VoxConverse)"}  # fmt: skip


def dihard(work: Path) -> dict:
    flac, rttm = work / "packages" / "DH_EVAL_0001.flac", work / "packages" / "DH_EVAL_0001.rttm"
    if not rttm.is_file():
        sdist = fetch(PBOOK_URL, PBOOK_SHA256, work / "packages" / f"{PBOOK}.tar.gz")
        extracted(sdist, {f"{PBOOK}/examples/DH_EVAL_0001.flac": flac, f"{PBOOK}/examples/DH_EVAL_0001.rttm": rttm})
    path = work / "dihard-eval-0001.wav"
    subprocess.run(["sox", "-R", str(checked(flac, DIHARD_SHA256)), "-r", "16000", "-c", "1", "-b", "16",
                    str(path)], check=True)  # fmt: skip
    turns = rttm_turns(rttm)
    return {"name": "dihard-eval-0001", "path": path, "turns": turns, "text": None,
            "speakers": len({t[2] for t in turns}), "real": True,
            "source": f"{PBOOK}.tar.gz (sdist), examples/DH_EVAL_0001.flac (+ .rttm): English broadcast interview",
            "licence": "DIHARD III evaluation data (LDC terms; measured here, never redistributed)"}  # fmt: skip
