"""Decoding uploads (whisperx_container/app/inference/audio.py) with the host's ffmpeg, without the image: a cut-short
Ogg file is refused like any other truncated file, a whole one in any Ogg flavour is not."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from app.inference.audio import AudioError, decode, ogg_ends_mid_page


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
