"""Pin spark_control/requirements.txt (the image's runtime) from spark_control/requirements.in.

The versions are the ones requirements/dev.txt pins, which the tests run, so the image runs what was tested:
pip resolves the runtime under that file as a constraint and reports what it would install.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEADER = """\
# spark-control's image: its runtime, at the versions requirements/dev.txt pins (the tests run those).
# Regenerate with `make spark-control-lock`. The Ansible collections come from the pinned ansible package
# (ANSIBLE_PACKAGE in spark_control/Dockerfile), only community.docker and community.general.
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
             "--report", str(report), "-c", str(REPO / "requirements/dev.txt"),
             "-r", str(REPO / "spark_control/requirements.in")],
            check=True,
        )  # fmt: skip
        installs = json.loads(report.read_text())["install"]
    pins = sorted(f"{i['metadata']['name']}=={i['metadata']['version']}" for i in installs)
    (REPO / "spark_control/requirements.txt").write_text(HEADER + "\n".join(sorted(pins, key=str.lower)) + "\n")
    print(f"pinned {len(pins)} packages in spark_control/requirements.txt")


if __name__ == "__main__":
    main()
