"""Decoding uploads (whisperx_container/app/inference/audio.py) with the host's ffmpeg, without the image: a cut-short
Ogg file is refused like any other truncated file, a whole one in any Ogg flavour is not."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest
from app.inference import audio as audio_module
from app.inference.audio import BYTES_PER_S, AudioError, Probe, decode, decode_limit, ogg_ends_mid_page, probe


def encode(source: Path, target: Path, *codec: str) -> Path:
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(source), *codec, str(target)]
    subprocess.run(cmd, check=True)
    return target


@pytest.fixture(scope="module")
def ogg_flavours(audio: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The fixture's Vorbis .ogg, plus the same sentence as Opus and as FLAC in Ogg."""
    tmp = tmp_path_factory.mktemp("ogg")
    wav = audio / "sentence.wav"
    return [
        audio / "sentence.ogg",
        encode(wav, tmp / "sentence.opus", "-c:a", "libopus", "-b:a", "24k"),
        encode(wav, tmp / "sentence.oga", "-c:a", "flac"),
    ]


def test_whole_ogg_files_decode(ogg_flavours: list[Path], tmp_path: Path):
    for path in ogg_flavours:
        assert not ogg_ends_mid_page(path), path
        assert decode(path, tmp_path / f"{path.name}.s16le").duration == pytest.approx(5.1, abs=0.2)


def test_an_ogg_file_cut_inside_a_page_is_refused_as_truncated(ogg_flavours: list[Path], tmp_path: Path):
    for path in ogg_flavours:
        data = path.read_bytes()
        cut = tmp_path / f"cut-{path.name}"
        cut.write_bytes(data[: len(data) * 2 // 3])
        with pytest.raises(AudioError, match="truncated"):
            decode(cut, tmp_path / "cut.s16le")


def test_every_cut_of_an_ogg_file_is_found_unless_it_falls_between_pages(audio: Path, tmp_path: Path):
    data = (audio / "sentence.ogg").read_bytes()
    cut = tmp_path / "cut.ogg"
    for length in range(1, len(data), 37):
        cut.write_bytes(data[:length])
        at_a_page_boundary = data[length : length + 4] == b"OggS"  # what follows the cut is the next page
        assert ogg_ends_mid_page(cut) is not at_a_page_boundary, length


def test_other_containers_are_not_read_as_ogg(audio: Path):
    for ext in ("wav", "mp3", "m4a", "flac", "webm"):
        assert not ogg_ends_mid_page(audio / f"sentence.{ext}")


# -- decode bombs: what a decode would cost is known, and refused, before it starts ----------------------------
NOT_AUDIO = "not an audio or video file this service reads"
SBAGEN = b"-SE\nalpha: 200+10/50\nNOW alpha\n+23:59:00 alpha\n"  # a text file ffmpeg would decode to 24 hours


def wav_header(rate: int, data_bytes: int) -> bytes:
    """A 16-bit mono WAV header at `rate` Hz declaring `data_bytes` of samples."""
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, rate, 2 * rate, 2, 16)
    return b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt " + fmt + b"data" + struct.pack("<I", data_bytes)


def bombs(tmp: Path, audio: Path) -> dict[str, tuple[Path, str]]:
    """Each crafted file, with what its refusal must say."""
    files = {
        "sbagen": (SBAGEN, NOT_AUDIO),
        "1hz-wav": (wav_header(1, 1000) + b"\0" * 1000, "sample rate is 1 Hz"),
        "playlist": (f"#EXTM3U\n#EXTINF:5,\nfile://{audio / 'sentence.wav'}\n".encode(), NOT_AUDIO),
        "concat": (f"ffconcat version 1.0\nfile '{audio / 'sentence.wav'}'\n".encode(), NOT_AUDIO),
    }
    out = {}
    for name, (data, why) in files.items():
        path = tmp / f"{name}.bin"
        path.write_bytes(data)
        out[name] = (path, why)
    out["5h-flac"] = (silence(tmp / "5h.flac", 5 * 3600), "at most 4 h .WHISPERX_MAX_AUDIO_S.")
    return out


def silence(target: Path, seconds: float) -> Path:
    """A FLAC file of digital silence that declares `seconds` (a few hundred KB per hour)."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", str(seconds),
         "-c:a", "flac", str(target)],
        check=True,
    )  # fmt: skip
    return target


def test_decode_bombs_are_refused_before_decoding_and_write_nothing(audio: Path, tmp_path: Path):
    for name, (path, why) in bombs(tmp_path, audio).items():
        target = tmp_path / f"{name}.s16le"
        with pytest.raises(AudioError, match=why):
            decode(path, target)
        assert not target.exists(), f"{name}: nothing decoded"


def test_a_container_that_decodes_to_more_than_it_declares_is_stopped_at_the_cap(
    audio: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A lying header: the container says 1 s, the stream holds 5 s. The decode writes at most what 1 s needs."""
    liar = Probe("wav", 16000, 1.0)
    monkeypatch.setattr(audio_module, "probe", lambda source, max_audio_s: liar)
    target = tmp_path / "liar.s16le"
    with pytest.raises(AudioError, match="decodes to more audio than it declares"):
        decode(audio / "sentence.wav", target)
    assert not target.exists()
    assert decode_limit(liar, 4 * 3600) < 5 * BYTES_PER_S


def test_real_recordings_in_every_container_pass_the_probe(audio: Path, tmp_path: Path):
    for name in ("sentence.wav", "sentence.mp3", "sentence.m4a", "sentence.ogg", "sentence.flac", "sentence.webm"):
        declared = probe(audio / name, 4 * 3600)
        assert declared.sample_rate >= 8000 and declared.duration == pytest.approx(5.1, abs=0.3), name
        assert decode(audio / name, tmp_path / f"{name}.s16le").duration == pytest.approx(5.1, abs=0.3)
