"""The one place that defines the install phases and maps an ansible-runner event to one (CONTRACT section 2).

The role keeps one task file per phase (roles/whisperx/tasks/<phase>.yml), so the phase of an event
is the name of the role task file its task comes from. Tasks of other files (main.yml, handlers, the
internal helper role) leave the phase unchanged. The dashboard draws its stepper from PHASES, served
by GET /api/whisperx/options, so this list is the only one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    name: str
    title: str
    covers: str  # what the step does, in a few words (the stepper's hint)
    doing: str  # the status line while it runs


PHASES = (
    Phase("preflight", "Preflight", "host, Docker, GPU, disk", "Checking the host"),
    Phase("ship", "Ship", "build context to the host", "Shipping the build context to the host"),
    Phase("build", "Build", "image", "Building the image"),
    Phase("start", "Start", "container", "Starting the container"),
    Phase("load", "Load", "models on /health", "Waiting for the models to load"),
)
INSTALL_PHASES = tuple(phase.name for phase in PHASES)
READY, FAILED = "ready", "failed"
OUTCOME = Phase(READY, "Ready", "serving", "WhisperX is ready")

# .../roles/whisperx/tasks/build.yml:12
_ROLE_TASK_FILE = re.compile(r"/roles/whisperx/tasks/(?P<name>[A-Za-z0-9_-]+)\.yml:\d+$")


def phase_of(task_path: str | None) -> str | None:
    """The install phase a task belongs to, from its event's `task_path`; None when it names no phase."""
    if not task_path:
        return None
    match = _ROLE_TASK_FILE.search(task_path)
    if match and match.group("name") in INSTALL_PHASES:
        return match.group("name")
    return None


def final_phase(state: str) -> str:
    """The phase a finished install ends in: ready when it succeeded, failed otherwise."""
    return READY if state == "successful" else FAILED
