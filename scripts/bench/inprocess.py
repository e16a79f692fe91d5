"""The service's pipeline called in-process (no HTTP), to measure what the API layer costs.

Runs inside the service image: `python /bench/inprocess.py AUDIO` with the same environment as the
service. Loads the models the way the service does, decodes the file, runs SpeechPipeline.run and
prints one JSON line: wall and CPU seconds of each run (decode + pipeline), stage timings, peak RSS.
"""

from __future__ import annotations

import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from app.config import Settings
from app.inference.audio import decode
from app.inference.loader import ModelLoader, prepare_environment
from app.inference.pipeline import Options, StageTimer
from app.inference.state import ServiceState


def cpu_seconds() -> float:
    """User + system seconds of this process, all its threads (what the service's /proc stat counts)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    settings = Settings()
    prepare_environment(settings)
    state = ServiceState()
    ModelLoader(settings, state).run()
    assert state.status == "ready", state.error
    runs, cpu = [], []
    for _ in range(int(sys.argv[2]) if len(sys.argv) > 2 else 1):
        workdir = Path(tempfile.mkdtemp())
        try:
            began, cpu_began = time.perf_counter(), cpu_seconds()
            audio = decode(Path(sys.argv[1]), workdir / "audio.s16le")
            timer = StageTimer()
            transcript = state.pipeline.run(audio, Options(), timer)
            runs.append(time.perf_counter() - began)
            cpu.append(cpu_seconds() - cpu_began)
        finally:
            shutil.rmtree(workdir)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "wall_s": [round(r, 3) for r in runs],
                "cpu_s": [round(c, 2) for c in cpu],
                "stages": {k: round(v, 2) for k, v in timer.seconds.items()},
                "peak_rss_mb": round(peak_kb / 1024),
                "speakers": [s.id for s in transcript.speakers],
            }
        )
    )


if __name__ == "__main__":
    main()
