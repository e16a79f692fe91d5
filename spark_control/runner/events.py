"""From ansible-runner events to the stream's `phase`, `log` and `done` events.

One runner event becomes at most one stream event whose `id` is the runner's event counter, so a
client that reconnects with `Last-Event-ID: N` is owed exactly the events with an id above N. An
event that starts a new phase is sent as `phase` (carrying its log line too); the terminal
`phase` (ready/failed) and `done` take the two ids after the runner's last counter. The same
translator runs over live events and over the `job_events/` files on disk, so a replay after a
restart yields the very same ids and payloads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sse_starlette import JSONServerSentEvent, ServerSentEvent

from spark_control.runner.phases import final_phase, phase_of

MAX_LINE_CHARS = 8000
# The collection's playbooks turn an SSH failure into this task's failure, with the reason in its message.
UNREACHABLE_TASKS = ("Host is unreachable",)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
REDACTED = "********"


@dataclass(frozen=True, slots=True)
class StreamEvent:
    id: int
    event: Literal["phase", "log", "done"]
    data: dict[str, Any]

    def to_sse(self) -> ServerSentEvent:
        return JSONServerSentEvent(self.data, event=self.event, id=str(self.id))


@dataclass(frozen=True, slots=True)
class RunnerEvent:
    """The parts of a runner event spark-control keeps; the runner thread drops the rest at once."""

    counter: int
    event: str
    stdout: str
    created: str | None
    task_path: str | None
    pid: int | None
    stats: dict[str, Any] | None = None  # playbook_on_stats: set_stats data and per-host counts
    host: str | None = None
    task: str | None = None

    @classmethod
    def from_runner(cls, raw: dict[str, Any]) -> RunnerEvent:
        data = raw.get("event_data") or {}
        stats = None
        if raw.get("event") == "playbook_on_stats":
            stats = {
                "artifact_data": data.get("artifact_data") or {},
                "unreachable": sorted(data.get("dark") or {}),
                "failed": sorted(data.get("failures") or {}),
            }
        return cls(
            counter=int(raw["counter"]),
            event=str(raw.get("event", "")),
            stdout=str(raw.get("stdout") or ""),
            created=raw.get("created"),
            task_path=data.get("task_path"),
            pid=raw.get("pid"),
            stats=stats,
            host=data.get("host"),
            task=data.get("task"),
        )


def clean_line(stdout: str, redact: Sequence[str] = ()) -> str:
    """Plain text: no colour codes, no carriage returns, no secret, bounded length."""
    text = _ANSI.sub("", stdout).replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    for secret in redact:
        if secret:
            text = text.replace(secret, REDACTED)
    if len(text) > MAX_LINE_CHARS:
        text = text[:MAX_LINE_CHARS] + f"\n… ({len(text) - MAX_LINE_CHARS} more characters in the job's artifacts)"
    return text


@dataclass
class EventTranslator:
    """Turns one job's runner events, in counter order, into stream events."""

    track_phases: bool
    redact: Sequence[str] = ()
    phase: str | None = None
    last_counter: int = 0
    stats: dict[str, Any] | None = None
    pid: int | None = None
    last_failure: str | None = None
    unreachable: set[str] = field(default_factory=set)
    hosts: dict[str, str] = field(default_factory=dict)  # each host's phase (an install rolls one host at a time)
    last_host: str | None = None

    _FAILURES = ("runner_on_failed", "runner_on_unreachable", "runner_item_on_failed")

    def feed(self, event: RunnerEvent) -> StreamEvent | None:
        self.last_counter = max(self.last_counter, event.counter)
        if event.pid and not self.pid:
            self.pid = event.pid
        if event.stats is not None:
            self.stats = event.stats
        line = clean_line(event.stdout, self.redact)
        if event.event in self._FAILURES and line and "...ignoring" not in line:
            self.last_failure = line[:1000]
            if event.host and (event.event == "runner_on_unreachable" or event.task in UNREACHABLE_TASKS):
                self.unreachable.add(event.host)
        about = {"host": event.host} if event.host else {}  # which host a line is about
        new_phase = phase_of(event.task_path) if self.track_phases else None
        if new_phase and event.host:  # a task's start names no host; its results on each host do
            self.hosts[event.host] = new_phase
            self.last_host = event.host
        if new_phase and new_phase != self.phase:
            self.phase = new_phase
            return StreamEvent(event.counter, "phase", {"phase": new_phase, "at": event.created, "line": line, **about})
        if not line:
            return None
        return StreamEvent(event.counter, "log", {"line": line, **about})

    def finish(self, state: str, rc: int | None, at: str | None, note: str | None = None) -> list[StreamEvent]:
        """The closing events: spark-control's own note on how the job ended, if any, the terminal phase of an
        install, then `done`."""
        events = []
        next_id = self.last_counter + 1
        if note:
            events.append(StreamEvent(next_id, "log", {"line": f"── {note} ──"}))
            next_id += 1
        if self.track_phases:
            self.phase = final_phase(state)
            self.hosts = self.host_outcomes(state)
            final = {"phase": self.phase, "at": at, "line": "", **({"hosts": self.hosts} if self.hosts else {})}
            events.append(StreamEvent(next_id, "phase", final))
            next_id += 1
        events.append(StreamEvent(next_id, "done", {"state": state, "rc": rc}))
        return events

    def host_outcomes(self, state: str) -> dict[str, str]:
        """How each host the install reached ended: failed when it failed, could not be reached, or was the one
        working when the job ended without success; ready otherwise (hosts it never reached are absent)."""
        stats = self.stats or {}
        failed = set(stats.get("failed") or []) | set(stats.get("unreachable") or []) | self.unreachable
        if state != "successful" and self.last_host:
            failed.add(self.last_host)
        return {host: "failed" if host in failed else "ready" for host in self.hosts}


def read_runner_events(artifact_dir: Path) -> list[RunnerEvent]:
    """The events ansible-runner wrote to `job_events/` (complete files only), in counter order."""
    events_dir = artifact_dir / "job_events"
    if not events_dir.is_dir():
        return []
    numbered = []
    for path in events_dir.glob("*.json"):
        prefix = path.name.split("-", 1)[0]
        if prefix.isdigit():  # skips "<uuid>-partial.json" leftovers
            numbered.append((int(prefix), path))
    events = []
    for _, path in sorted(numbered):
        try:
            events.append(RunnerEvent.from_runner(json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError, KeyError):
            continue  # a torn file from a killed process is not worth failing a replay for
    return events


def translate(events: Iterable[RunnerEvent], translator: EventTranslator) -> list[StreamEvent]:
    return [out for out in (translator.feed(e) for e in events) if out is not None]
