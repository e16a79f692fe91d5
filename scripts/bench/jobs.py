"""Durable jobs against the synchronous request: wall time, peak memory, a kill at ~80 % and its resume.

Used by scripts/bench_service.py on a running service container (its `Service` object: url, pid, VmHWM
reset, restart, read). Every wait is on an event the service sends (the job's `done`, /health saying ready),
never on a fixed sleep, except the point of the kill, which is a fraction of a measured wall time.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
from httpx_sse import connect_sse

JOBS = "/v1/audio/jobs"
KILL_AT = 0.8  # of the uninterrupted job's wall time


def submit(url: str, path: Path) -> dict:
    with path.open("rb") as f:
        response = httpx.post(f"{url}{JOBS}", files={"file": (path.name, f)}, timeout=600)
    response.raise_for_status()
    return response.json()


def follow(url: str, job_id: str) -> list[dict]:
    """The job's events until `done`."""
    got = []
    with (
        httpx.Client(timeout=httpx.Timeout(30, read=7200)) as client,
        connect_sse(client, "GET", f"{url}{JOBS}/{job_id}/events") as source,
    ):
        for sse in source.iter_sse():
            if not sse.data:  # a keep-alive comment (httpx-sse dispatches it after an id; a browser does not)
                continue
            got.append({"id": int(sse.id), "event": sse.event, "data": json.loads(sse.data)})
            if sse.event == "done":
                break
    return got


def result(url: str, job_id: str) -> dict:
    response = httpx.get(f"{url}{JOBS}/{job_id}/result", timeout=60)
    response.raise_for_status()
    return response.json()


class PeakRss:
    """The service process's peak RSS over a block: VmHWM reset at the start, sampled as a fallback."""

    def __init__(self, service):
        self.service, self.samples, self.stop = service, [], threading.Event()

    def __enter__(self) -> PeakRss:
        try:
            Path(f"/proc/{self.service.pid}/clear_refs").write_text("5")
            self.hwm = True
        except OSError:
            self.hwm = False
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.stop.is_set():
            self.samples.append(self.service.status("VmRSS"))
            time.sleep(0.5)

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        self.mb = max([*self.samples, self.service.status("VmHWM") if self.hwm else 0])


def run_job(service, path: Path) -> dict:
    """One job from the first byte of the upload to its `done` event."""
    with PeakRss(service) as peak:
        began = time.perf_counter()
        job = submit(service.url, path)
        events = follow(service.url, job["id"])
        wall = time.perf_counter() - began
    assert events[-1]["data"]["status"] == "completed", events[-1]
    transcript = result(service.url, job["id"])
    windows = max(e["data"]["progress"]["windows_total"] for e in events if e["event"] == "progress")
    return {"id": job["id"], "wall_s": round(wall, 2), "peak_rss_mb": peak.mb, "text": transcript["text"],
            "windows": windows}  # fmt: skip


def run_sync(service, path: Path) -> dict:
    response, wall, peak, _ = service.transcribe(path)
    return {"wall_s": round(wall, 2), "peak_rss_mb": peak, "text": response["text"]}


def killed_and_resumed(service, path: Path, full_wall_s: float, uninterrupted_text: str) -> dict:
    """A job killed (`docker kill`) at KILL_AT of `full_wall_s`, started again, and followed to the end."""
    began = time.perf_counter()
    job = submit(service.url, path)
    kill_at = began + KILL_AT * full_wall_s
    while (now := time.perf_counter()) < kill_at:
        time.sleep(min(1.0, kill_at - now))
    view = httpx.get(f"{service.url}{JOBS}/{job['id']}", timeout=30).json()
    assert view["status"] == "running", view
    done_before = view["progress"]["windows_done"]
    restarted = time.perf_counter()
    load_s = service.restart()  # docker kill + docker start, until /health says ready
    events = follow(service.url, job["id"])
    resumed_s = time.perf_counter() - restarted
    assert events[-1]["data"]["status"] == "completed", events[-1]
    windows = [e["data"]["progress"]["windows_done"] for e in events if e["event"] == "progress"]
    redone = len(windows) - len(set(windows))  # a window done twice would be announced twice
    text = result(service.url, job["id"])["text"]
    saved = json.loads(service.read(f"/jobs/{job['id']}/result.json"))
    return {
        "killed_after_s": round(restarted - began, 1),
        "windows_done_at_kill": done_before,
        "windows_total": view["progress"]["windows_total"],
        "load_s": round(load_s, 1),
        "restart_to_done_s": round(resumed_s, 1),
        "work_after_load_s": round(resumed_s - load_s, 1),
        "share_of_full": (resumed_s - load_s) / full_wall_s,
        "windows_announced_twice": redone,
        "same_text": text == uninterrupted_text,
        "replayed": saved["replayed"],  # the work inside the unfinished windows the kill left on disk
    }


def overhead(service, path: Path, runs: int) -> dict:
    """The 5-minute file through HTTP, as a job and in-process, interleaved: the fastest of each kind.

    Wall seconds, CPU seconds (user + system, every thread of the process) and peak RSS. The peaks of
    these interleaved runs are the fair comparison of the two paths' memory: a process's first long
    request peaks lower than every later one (the allocator keeps what it grew), whatever its kind.
    The in-process script runs twice in its fresh process and the second, warm run counts, as the
    service's requests run in a process that has served before.
    """
    kinds = {"http": [], "job": [], "inprocess": []}
    cpu = {"http": [], "job": [], "inprocess": []}
    peaks = {"http": [], "job": []}
    for _ in range(runs):
        for kind, run in (("http", run_sync), ("job", run_job)):
            began = service.cpu_s()
            done = run(service, path)
            kinds[kind].append(done["wall_s"])
            cpu[kind].append(round(service.cpu_s() - began, 2))
            peaks[kind].append(done["peak_rss_mb"])
        warm = service.inprocess(f"/data/{path.name}", 2)
        kinds["inprocess"].append(warm["wall_s"][-1])
        cpu["inprocess"].append(warm["cpu_s"][-1])
    best = {k: min(v) for k, v in kinds.items()}
    least = {k: min(v) for k, v in cpu.items()}
    return {
        "runs": runs,
        "all": kinds,
        "best": best,
        "cpu_all": cpu,
        "cpu_best": least,
        "peak_rss_mb": peaks,
        "http_overhead": best["http"] / best["inprocess"] - 1,
        "job_overhead": best["job"] / best["inprocess"] - 1,
        "http_cpu_overhead": least["http"] / least["inprocess"] - 1,
        "job_cpu_overhead": least["job"] / least["inprocess"] - 1,
    }


def resume_only(service, path: Path) -> dict:
    """An uninterrupted job, then the same job killed at KILL_AT and resumed (the job keeps its text)."""
    job = run_job(service, path)
    print(f"jobs: job {job['wall_s']} s, peak {job['peak_rss_mb']} MB, {job['windows']} windows", flush=True)
    resume = killed_and_resumed(service, path, job["wall_s"], job["text"])
    print(f"jobs: killed and resumed {resume}", flush=True)
    return {"job": job, "resume": resume}


def without_text(run: dict) -> dict:
    return {k: v for k, v in run.items() if k != "text"}


def benchmark(service, long_path: Path, short_path: Path, runs: int) -> dict:
    """Everything the report's "Jobs" section shows for one container's settings."""
    sync = run_sync(service, long_path)
    print(f"jobs: synchronous {sync['wall_s']} s, peak {sync['peak_rss_mb']} MB", flush=True)
    resumed = resume_only(service, long_path)
    job = resumed["job"]
    # a second synchronous request and job, interleaved with the first ones: single long runs on a shared
    # machine spread by more than the 2 % the checkpoints may cost, so the least of each kind counts
    again = run_sync(service, long_path), run_job(service, long_path)
    print(f"jobs: again synchronous {again[0]['wall_s']} s, job {again[1]['wall_s']} s", flush=True)
    sync_walls, job_walls = [sync["wall_s"], again[0]["wall_s"]], [job["wall_s"], again[1]["wall_s"]]
    short = overhead(service, short_path, runs)
    print(f"jobs: 5-minute overhead {short}", flush=True)
    return {
        "sync": without_text(sync),
        "job": without_text(job),
        "job_same_text": job["text"] == sync["text"] and again[1]["text"] == again[0]["text"] == sync["text"],
        "walls": {"sync": sync_walls, "job": job_walls},
        "checkpoint_cost": min(job_walls) / min(sync_walls) - 1,
        "resume": resumed["resume"],
        "overhead": short,
    }
