#!/usr/bin/python
# Copyright (c) spark-inference developers
# Apache License 2.0 (see galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: whisperx_health
short_description: Waits until the WhisperX service reports its models loaded, or says why it never will
version_added: 1.0.0
description:
  - Polls the service's C(/health) endpoint until C(whisper_loaded) and C(diarizer_loaded) are true.
  - While waiting it watches the container through the Docker API, so a failure names its cause at once
    instead of at the timeout; the container exited (with its last log lines), was OOM-killed, keeps
    restarting, is starved at its memory cap, the models failed to load (the service's C(error)), or the
    wait timed out while loading.
  - A container too small for its models is not always killed. Under a cgroup v1 memory cap the kernel
    can keep reclaiming and re-reading the process's file-backed pages instead, and the service stays
    alive without answering. When the engine's stats show the container pinned at its cap (usage at
    the cap, or the cap's fail count rising) for O(starved_after) seconds in which C(/health) never
    answered, the wait fails with reason V(memory_starved) instead of waiting for the timeout. Where the
    engine reports no memory stats at all, the container's own cgroup files are read through an exec.
  - With O(wait=false) it probes once and reports the state without failing, for status reports.
  - Never changes anything, so it runs unchanged in check mode.
author:
  - spark-inference developers
extends_documentation_fragment:
  - community.docker.docker.api_documentation
options:
  url:
    description: The service's health URL as seen from the managed host.
    type: str
    default: http://127.0.0.1:8002/health
  container:
    description:
      - Name of the service container to watch while waiting.
      - When omitted only the URL is polled, and failures can only be told apart by the health body.
    type: str
  wait:
    description:
      - V(true) waits until the required models are loaded and fails when they never will be.
      - V(false) probes once and returns the state without failing.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for the models (model downloads on a first start count against it).
    type: int
    default: 600
  interval:
    description: Seconds between probes.
    type: float
    default: 2.0
  require:
    description: Which models must be loaded before the service counts as healthy.
    type: list
    elements: str
    choices: [whisper, diarizer]
    default: [whisper, diarizer]
  starved_after:
    description:
      - Seconds a running container may stay pinned at its memory cap without answering C(/health) before
        the wait fails with reason V(memory_starved). Only applies to containers with a memory cap.
      - V(0) turns the check off (the wait then runs into O(wait_timeout)).
    type: int
    default: 60
  log_lines:
    description: How many of the container's last log lines a failure message carries.
    type: int
    default: 20
  device:
    description:
      - The device C(/health) must report once the models are loaded (V(cuda) when GPUs were requested).
      - A service that loaded on another device is not healthy (reason V(wrong_device)), for example one that
        fell back to the CPU because the image's torch has no CUDA support or the container sees no GPU.
      - Omitted or empty, any device is accepted.
    type: str
attributes:
  check_mode:
    support: full
    description: Read-only; behaves the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is nothing to diff.
requirements:
  - Python C(requests) on the managed host (as for every community.docker module).
notes:
  - The module is read-only and always returns C(changed=false).
seealso:
  - module: community.docker.docker_container
"""

EXAMPLES = r"""
---
- name: Models are loaded (whisper and diarizer)
  spark.inference.whisperx_health:
    url: http://127.0.0.1:8002/health
    container: whisperx-asr
    wait_timeout: 1800
  register: whisperx_health

- name: Probe once for a status report, never failing
  spark.inference.whisperx_health:
    url: http://127.0.0.1:8002/health
    container: whisperx-asr
    wait: false
  register: whisperx_probe

- name: Show the health body
  ansible.builtin.debug:
    var: whisperx_probe.health
"""

RETURN = r"""
healthy:
  description: Whether the required models are loaded and the service reports no error.
  returned: always
  type: bool
  sample: true
reason:
  description:
    - Why the service is or is not healthy.
    - V(ready), V(loading), V(timeout), V(load_error), V(wrong_device) (loaded, but not on O(device)),
      V(exited), V(oom_killed), V(memory_starved) (alive at its memory cap, not answering), V(restarting),
      V(missing) (no such container) or V(unreachable) (no answer on the URL, probe-once mode only).
  returned: always
  type: str
  sample: ready
health:
  description: The last C(/health) body, or null when the service never answered.
  returned: always
  type: dict
  sample:
    status: ready
    whisper_loaded: true
    diarizer_loaded: true
    model: tiny.en
    device: cpu
    error: null
elapsed:
  description: Seconds spent waiting.
  returned: always
  type: float
  sample: 12.4
container:
  description: The watched container's state, or null without O(container) or when it does not exist.
  returned: always
  type: dict
  sample:
    status: running
    running: true
    exit_code: 0
    oom_killed: false
    restart_count: 0
    image: spark-inference/whisperx-asr:ctx-0123456789ab
memory:
  description:
    - The container's memory against its cap from the engine's stats, when it was read (while waiting
      without an answer); null otherwise.
  returned: always
  type: dict
  sample:
    usage: 268009472
    limit: 268435456
    failcnt: 120455
logs:
  description: The container's last log lines, on failure.
  returned: when the container stopped, restarted or the wait failed
  type: list
  elements: str
"""

# Ansible modules carry their documentation first, so the imports follow it. community.docker's module utils have
# no public API (5.0.0 declares them private), so galaxy.yml pins the major version these come from.
import json  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

from ansible.module_utils.common.text.converters import to_text  # noqa: E402
from ansible.module_utils.urls import open_url  # noqa: E402
from ansible_collections.community.docker.plugins.module_utils._api.errors import DockerException  # noqa: E402
from ansible_collections.community.docker.plugins.module_utils.common_api import (  # noqa: E402
    AnsibleDockerClient,
    RequestException,
)

PROBE_TIMEOUT = 5


def probe(url):
    """One GET of the health URL: (body or None, error text or None)."""
    try:
        response = open_url(url, method="GET", timeout=PROBE_TIMEOUT, validate_certs=False)
        body = json.loads(to_text(response.read()))
    except Exception as exc:  # an unreachable or half-started service is an expected state here
        return None, to_text(exc)
    if not isinstance(body, dict):
        return None, "the health body is not a JSON object"
    return body, None


def is_healthy(body, require):
    if not body or body.get("status") == "error" or body.get("error"):
        return False
    return all(body.get(f"{name}_loaded") is True for name in require)


# What to do when the service should run on the GPU and does not; one sentence for both the CPU fallback
# and the service's own "torch sees no CUDA device" load error.
CUDA_HINT = (
    "check that the image's torch has CUDA support (on an aarch64 host such as a DGX Spark it is built with "
    "PIP_EXTRA_INDEX_URL from whisperx_cuda_torch_index) and that the container sees the GPUs "
    '(nvidia-container-toolkit), or set whisperx_gpus to "" to run on the CPU'
)


def device_problem(body, device):
    """Why a loaded service does not count as healthy on `device`, or None."""
    if not device or not body:
        return None
    actual = body.get("diarizer_device", body.get("device"))  # Whisper's: the service refuses a silent CPU one
    if actual == device:
        return None
    return f"The WhisperX models loaded on {json.dumps(actual)} instead of {json.dumps(device)}: {CUDA_HINT}."


def load_error_message(body, device):
    message = f"The WhisperX models failed to load: {body.get('error') or 'status error'}."
    if device == "cuda" and "cuda" in str(body.get("error") or "").lower():
        message += f" {CUDA_HINT[0].upper()}{CUDA_HINT[1:]}."
    return message


def container_state(client, name):
    info = client.get_container(name)
    if info is None:
        return None
    state = info.get("State") or {}
    return {
        "id": info.get("Id"),
        "status": state.get("Status"),
        "running": bool(state.get("Running")),
        "restarting": bool(state.get("Restarting")),
        "exit_code": state.get("ExitCode"),
        "oom_killed": bool(state.get("OOMKilled")),
        "error": state.get("Error") or None,
        "restart_count": info.get("RestartCount", 0),
        "image": (info.get("Config") or {}).get("Image"),
        "memory": (info.get("HostConfig") or {}).get("Memory"),
        "tty": bool((info.get("Config") or {}).get("Tty")),
    }


def last_logs(client, state, lines):
    if not state or lines <= 0:
        return []
    try:
        params = {"stdout": 1, "stderr": 1, "timestamps": 0, "follow": 0, "tail": lines}
        # No public call demultiplexes the log stream; docker_container reads logs this way too.
        response = client._get(client._url("/containers/{0}/logs", state["id"]), params=params)
        output = client._get_result_tty(False, response, state["tty"])
    except (DockerException, RequestException) as exc:
        return [f"(could not read the logs: {exc})"]
    return to_text(output, errors="surrogate_or_replace").splitlines()[-lines:]


def memory_stats(client, state):
    """The container's memory against its cap, from the engine's stats: usage, limit, failcnt (cgroup v1 only)."""
    if not state or not state.get("memory") or not state["running"]:
        return None
    try:
        stats = client.get_json("/containers/{0}/stats", state["id"], params={"stream": 0, "one-shot": 1})
    except (DockerException, RequestException):
        return None
    memory = (stats or {}).get("memory_stats") or {}
    if not memory.get("usage"):
        return cgroup_memory(client, state)
    # The engine reports the host's memory as the limit when the cgroup has none; the cap is the container's.
    limit = min(memory.get("limit") or state["memory"], state["memory"])
    return {"usage": memory["usage"], "limit": limit, "failcnt": memory.get("failcnt")}


# The container's own cgroup as it sees it: v1 (usage, limit, failcnt), else v2 (usage, limit or "max").
CGROUP_READ = (
    "cd /sys/fs/cgroup/memory 2>/dev/null && cat memory.usage_in_bytes memory.limit_in_bytes memory.failcnt"
    " || cat /sys/fs/cgroup/memory.current /sys/fs/cgroup/memory.max"
)


def cgroup_memory(client, state):
    """Some engines report no memory stats at all (`docker stats` says 0B / 0B, seen on cgroup v1 hosts
    whose runtime cannot read them): read the container's cgroup files from inside it, by an exec."""
    try:
        created = client.post_json_to_json(
            "/containers/{0}/exec", state["id"], data={"Cmd": ["sh", "-c", CGROUP_READ], "AttachStdout": True}
        )
        stdout, _ = client.post_json_to_stream(
            "/exec/{0}/start", created["Id"], data={"Detach": False, "Tty": False}, stream=False, tty=False, demux=True
        )
    except (DockerException, RequestException):
        return None
    return parse_cgroup_memory(to_text(stdout or b""), state["memory"])


def parse_cgroup_memory(text, cap):
    """`usage limit [failcnt]` as CGROUP_READ prints them -> memory_stats' shape, or None."""
    fields = text.split()
    if len(fields) < 2 or not fields[0].isdigit() or not int(fields[0]):
        return None
    limit = int(fields[1]) if fields[1].isdigit() else cap  # v2 says "max" when unlimited
    failcnt = int(fields[2]) if len(fields) > 2 and fields[2].isdigit() else None
    return {"usage": int(fields[0]), "limit": min(limit, cap), "failcnt": failcnt}


# Memory within NEAR_SHARE of the cap counts as pinned at it; below ROOMY_SHARE, clearly not. In between
# (the kernel reclaiming file pages, usage swinging) neither starts nor ends a starved stretch.
NEAR_SHARE = 0.90
ROOMY_SHARE = 0.75


class StarvationWatch:
    """How long a container has been stuck at its memory cap while /health gave no answer.

    Evidence of the cap: usage within NEAR_SHARE of it, the cap's fail count risen since the last sample
    (cgroup v1, where the engine reports it), or an OOM event in the container although its main process
    lives on (the kernel killed another process in it). An answer from /health, or usage clearly below
    the cap, starts the count again; a round without stats neither starts nor ends it.
    """

    def __init__(self, after_s):
        self.after_s = after_s
        self.since = None
        self.last_failcnt = None
        self.oom_seen = False

    def observe(self, now, answered, memory, oom=False):
        """Feed one round; True once the container has been at its cap and silent for `after_s` seconds."""
        self.oom_seen = self.oom_seen or oom
        failcnt = memory.get("failcnt") if memory else None
        rising = failcnt is not None and self.last_failcnt is not None and failcnt > self.last_failcnt
        self.last_failcnt = failcnt if failcnt is not None else self.last_failcnt
        roomy = bool(memory) and memory["usage"] < ROOMY_SHARE * memory["limit"] and not rising and not self.oom_seen
        near = self.oom_seen or rising or (bool(memory) and memory["usage"] >= NEAR_SHARE * memory["limit"])
        if answered or roomy:
            self.since = None
            return False
        if near and self.since is None:
            self.since = now
        return self.after_s > 0 and self.since is not None and now - self.since >= self.after_s

    def at_cap(self):
        """Whether the current silent stretch began at the memory cap."""
        return self.since is not None

    def silent_for(self, now):
        return 0 if self.since is None else now - self.since


def container_events(client, state, since):
    """The container's oom, die and kill events since `since` (unix seconds), oldest first."""
    if not state:
        return []
    params = {
        "since": str(int(since)),
        "until": str(int(time.time()) + 1),
        "filters": json.dumps({"type": ["container"], "container": [state["id"]], "event": ["oom", "die", "kill"]}),
    }
    try:
        lines = to_text(client.get_binary("/events", params=params), errors="surrogate_or_replace").splitlines()
    except (DockerException, RequestException):
        return []
    events = []
    for line in lines:
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def event_action(event):
    return event.get("Action") or event.get("status")


def killed_by_kernel(state, events):
    """SIGKILL (exit 137) under a memory cap that nobody sent through Docker: the OOM killer.

    Some kernels and nested engines never deliver Docker's oom event, so the exit code tells instead.
    """
    sent = any(event_action(event) == "kill" for event in events)
    return bool(state.get("memory")) and str(last_exit_code(state, events)) == "137" and not sent


def collapse_repeats(lines):
    """A crash loop prints the same lines on every start; show each run of repeats once, counted."""
    out = []
    for line in lines:
        if out and out[-1][0] == line:
            out[-1][1] += 1
        else:
            out.append([line, 1])
    return [line if count == 1 else f"{line}  (x{count})" for line, count in out]


def stopped_reason(state, restarts_at_start, events):
    """Why a watched container can no longer become healthy, or None while it still can."""
    restarted = state["restarting"] or state["restart_count"] > restarts_at_start
    if state["running"] and not restarted:
        return None
    if state["oom_killed"] or any(event_action(event) == "oom" for event in events):
        return "oom_killed"
    if killed_by_kernel(state, events):
        return "oom_killed"
    return "restarting" if restarted else "exited"


def last_exit_code(state, events):
    for event in reversed(events):
        if event_action(event) == "die":
            code = (event.get("Actor") or {}).get("Attributes", {}).get("exitCode")
            if code is not None:
                return code
    return state["exit_code"]


def memory_size(size):
    """Bytes as an operator writes a memory cap: 256 MiB, 4 GiB, 1.5 GiB."""
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= factor:
            return f"{size / factor:.4g} {unit}"
    return f"{size} bytes"


def starved_message(name, memory, silent_s, cap, oom=False):
    """A container alive at its memory cap whose service does not answer, in one sentence with the fix."""
    if oom:
        what = "the kernel killed a process in it (OOM kill) while its main process lives on"
    else:
        what = "the kernel keeps reclaiming its memory instead of killing it"
    used = f"it uses {memory_size(memory['usage'])}" if memory else "its memory use could not be read"
    hits = f", the cap was hit {memory['failcnt']} times" if memory and memory.get("failcnt") else ""
    return (
        f"Container {name} is starved at its memory cap of {memory_size(cap)}: {used}{hits}, and /health has not "
        f"answered for {silent_s:.0f} s before its models loaded ({what}): raise whisperx_memory or choose a "
        "smaller whisperx_model."
    )


def stopped_message(name, reason, state, events):
    if reason == "oom_killed":
        code = last_exit_code(state, events)
        cap = state.get("memory") or 0
        if not cap:
            return (
                f"Container {name} was killed by the kernel for lack of memory (OOM kill, exit code {code}) before "
                "its models loaded: free memory on the host or choose a smaller whisperx_model."
            )
        return (
            f"Container {name} was killed for exceeding its memory cap of {memory_size(cap)} (OOM kill, exit code "
            f"{code}) before its models loaded: raise whisperx_memory or choose a smaller whisperx_model."
        )
    code = last_exit_code(state, events)
    if reason == "restarting":
        return (
            f"Container {name} keeps restarting (it exited with code {code}, {state['restart_count']} restarts) "
            "before its models loaded."
        )
    detail = f" ({state['error']})" if state.get("error") else ""
    return f"Container {name} exited with code {code}{detail} before its models loaded."


def health_summary(body):
    if not body:
        return "no answer"
    return ", ".join(f"{key} {json.dumps(body.get(key))}" for key in ("status", "whisper_loaded", "diarizer_loaded"))


def run(module, client):
    params = module.params
    url, name, require = params["url"], params["container"], params["require"]
    started = time.monotonic()
    # Docker events are kept by wall-clock time; a little slack catches a crash right before this module ran.
    events_since = time.time() - 5
    deadline = started + max(params["wait_timeout"], 0)
    result = {"changed": False, "healthy": False, "health": None, "container": None, "logs": []}

    restarts_at_start = None
    body, error = None, None
    starvation = StarvationWatch(params["starved_after"])
    result["memory"] = None
    while True:
        state = None
        if name:
            state = container_state(client, name)
            if state is None:
                result.update(reason="missing", elapsed=round(time.monotonic() - started, 1))
                if params["wait"]:
                    module.fail_json(msg=f"Container {name} does not exist, so it cannot become healthy.", **result)
                return result
            if restarts_at_start is None:
                restarts_at_start = state["restart_count"]
            result["container"] = {k: v for k, v in state.items() if k not in ("id", "tty", "memory")}

        body, error = probe(url)
        result["health"] = body
        result["elapsed"] = round(time.monotonic() - started, 1)
        if is_healthy(body, require):
            problem = device_problem(body, params["device"])
            if not problem:
                result.update(healthy=True, reason="ready")
                return result
            result["reason"] = "wrong_device"
            if params["wait"]:
                module.fail_json(msg=problem, **result)
            return result

        if body and (body.get("status") == "error" or body.get("error")):
            result["reason"] = "load_error"
            result["logs"] = last_logs(client, state, params["log_lines"])
            if params["wait"]:
                module.fail_json(msg=load_error_message(body, params["device"]), **result)
            return result

        reason = None
        if state:
            events = (
                container_events(client, state, events_since)
                if not state["running"] or state["restarting"] or state["restart_count"] > restarts_at_start
                else []
            )
            reason = stopped_reason(state, restarts_at_start, events)
        capped = bool(state and state.get("memory"))
        if not reason and capped and params["wait"] and not body:
            memory = memory_stats(client, state)
            result["memory"] = memory or result["memory"]
            oom = any(event_action(e) == "oom" for e in container_events(client, state, events_since))
            if starvation.observe(time.monotonic(), False, memory, oom):
                reason = "memory_starved"
        elif body:
            starvation.observe(time.monotonic(), True, None)
        if reason:
            result["reason"] = reason
            result["logs"] = last_logs(client, state, params["log_lines"])
            if params["wait"]:
                if reason == "memory_starved":
                    message = starved_message(
                        name,
                        result["memory"],
                        starvation.silent_for(time.monotonic()),
                        state["memory"],
                        starvation.oom_seen,
                    )
                else:
                    message = stopped_message(name, reason, state, events)
                if result["logs"]:
                    message += " Last log lines:\n" + "\n".join(collapse_repeats(result["logs"]))
                module.fail_json(msg=message, **result)
            return result

        if not params["wait"]:
            result["reason"] = "loading" if body else "unreachable"
            return result

        if time.monotonic() >= deadline:
            result["logs"] = last_logs(client, state, params["log_lines"])
            if not body and capped and starvation.at_cap():  # at its cap since before the timeout: that is why
                result["reason"] = "memory_starved"
                silent = starvation.silent_for(time.monotonic())
                message = starved_message(name, result["memory"], silent, state["memory"], starvation.oom_seen)
                module.fail_json(msg=message, **result)
            result["reason"] = "timeout"
            where = f"{url} answered: {health_summary(body)}" if body else f"{url} never answered ({error})"
            module.fail_json(
                msg=(
                    f"Timed out after {params['wait_timeout']} s while the models were loading ({where}): "
                    "raise whisperx_health_timeout if downloads are slow, or read the container's logs."
                ),
                **result,
            )
        time.sleep(max(params["interval"], 0.1))


def main():
    argument_spec = dict(
        url=dict(type="str", default="http://127.0.0.1:8002/health"),
        container=dict(type="str"),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=600),
        interval=dict(type="float", default=2.0),
        require=dict(type="list", elements="str", choices=["whisper", "diarizer"], default=["whisper", "diarizer"]),
        log_lines=dict(type="int", default=20),
        device=dict(type="str"),
        starved_after=dict(type="int", default=60),
    )
    client = AnsibleDockerClient(argument_spec=argument_spec, supports_check_mode=True)
    try:
        client.module.exit_json(**run(client.module, client))
    except (DockerException, RequestException) as exc:
        client.fail(
            f"The Docker engine stopped answering while waiting for WhisperX: {exc}", exception=traceback.format_exc()
        )


if __name__ == "__main__":
    main()
