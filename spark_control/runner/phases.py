"""The one place that maps an ansible-runner event to an install phase (CONTRACT section 2).

The role keeps one task file per phase (roles/whisperx/tasks/<phase>.yml), so the phase of an event
is the name of the role task file its task comes from. Tasks of other files (main.yml, handlers)
leave the phase unchanged.
"""

from __future__ import annotations

import re

INSTALL_PHASES = ("preflight", "ship", "build", "start", "load")
READY, FAILED = "ready", "failed"

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
    return READY if state == "successful" else FAILED
