"""Image builds can be given extra CA certificates, as a user behind an intercepting proxy needs."""

from __future__ import annotations

import subprocess
from pathlib import Path

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def run(repo: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(repo / "scripts" / "extra-ca-certs.sh"), *args], capture_output=True, text=True, env=env)


def test_certificates_from_files_and_directories_land_in_the_build_context(repo: Path, tmp_path: Path):
    ca_dir = tmp_path / "corp"
    ca_dir.mkdir()
    (ca_dir / "root.crt").write_text(PEM)
    (ca_dir / "notes.txt").write_text("not a certificate")
    single = tmp_path / "proxy.pem"
    single.write_text(PEM)
    dest = tmp_path / "context" / "certs"

    result = run(repo, str(dest), str(ca_dir), str(single))

    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["proxy.crt", "root.crt"]


def test_stale_certificates_are_removed_and_none_is_fine(repo: Path, tmp_path: Path):
    dest = tmp_path / "certs"
    dest.mkdir()
    (dest / "old.crt").write_text(PEM)

    result = run(repo, str(dest), env={"PATH": "/usr/bin:/bin", "EXTRA_CA_CERTS": ""})

    assert result.returncode == 0, result.stderr
    assert list(dest.iterdir()) == []
    assert "0 extra CA certificate(s)" in result.stdout


def test_a_file_that_is_not_a_certificate_is_refused(repo: Path, tmp_path: Path):
    bogus = tmp_path / "bogus.crt"
    bogus.write_text("hello")

    result = run(repo, str(tmp_path / "certs"), str(bogus))

    assert result.returncode == 1
    assert "not a PEM certificate" in result.stderr
