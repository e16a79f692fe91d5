"""The repository builds as the Ansible collection spark.inference."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import yaml


def test_galaxy_build_produces_a_tarball_without_tests_or_caches(repo: Path, tmp_path: Path):
    galaxy = yaml.safe_load((repo / "galaxy.yml").read_text())
    assert (galaxy["namespace"], galaxy["name"]) == ("spark", "inference")

    subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-galaxy")),
            "collection",
            "build",
            str(repo),
            "--output-path",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
    )
    tarball = tmp_path / f"spark-inference-{galaxy['version']}.tar.gz"
    with tarfile.open(tarball) as tar:
        names = tar.getnames()

    top = {n.split("/")[0] for n in names}
    assert {"MANIFEST.json", "meta", "roles", "playbooks", "plugins", "whisperx_container"} <= top
    assert not top & {"tests", "molecule", ".venv", ".cache", ".git", "scripts", "requirements"}
    assert not [n for n in names if "__pycache__" in n]
