"""Durable jobs against the real image: the same transcript as the synchronous endpoint, progress per window,
a kill mid-job resumed without redoing finished windows, reconnecting event streams, cancel, retention, the
size cap and a corrupt checkpoint (CONTRACT section 1, "Jobs").

One container with 60 s windows and its job store on a directory of this test, so a kill and a start keep it
and the test can look at (and break) the files; the recording is the dialogue six times over (about four
minutes: four windows).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse

from tests.service.conftest import Container, docker, remove, repeated, start, transcribe, wait_for

pytestmark = pytest.mark.integration
JOBS = "/v1/audio/jobs"
WINDOW_S = 60
RETENTION_H = 0.002  # about 7 s: finished jobs are deleted at the next start after that


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jobs")


def run(model_bundle: Path, store: Path, **env: str) -> Container:
    settings = {"WHISPERX_WINDOW_S": str(WINDOW_S), "WHISPERX_QUEUE_LIMIT": "4",
                "WHISPERX_JOBS_RETENTION_H": str(RETENTION_H), **env}  # fmt: skip
    container = start(model_bundle, "-v", f"{store}:/jobs", env=settings)
    assert wait_for(container, {"ready", "error"})["status"] == "ready", container.logs()[-3000:]
    return container


@pytest.fixture(scope="module")
def service(model_bundle: Path, store: Path) -> Iterator[Container]:
    container = run(model_bundle, store)
    try:
        yield container
    finally:
        remove(container)


@pytest.fixture(scope="module")
def recording(audio: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return repeated(audio / "dialogue.wav", 6, tmp_path_factory.mktemp("recording") / "meeting.wav")


def submit(service: Container, clip: Path, **form) -> dict:
    with clip.open("rb") as f:
        response = httpx.post(f"{service.url}{JOBS}", files={"file": (clip.name, f)}, data=form, timeout=120)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued" and job["object"] == "transcription.job"
    return job


def job(service: Container, job_id: str) -> dict:
    return httpx.get(f"{service.url}{JOBS}/{job_id}", timeout=30).json()


def finished(service: Container, job_id: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while (view := job(service, job_id))["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, view
        time.sleep(0.5)
    return view


def events(service: Container, job_id: str, last_id: int | None = None, stop=None) -> list[dict]:
    """The job's events from after `last_id` until `done` (or until stop(event) says to drop the connection)."""
    headers = {"Last-Event-ID": str(last_id)} if last_id is not None else {}
    got = []
    url = f"{service.url}{JOBS}/{job_id}/events"
    with (
        httpx.Client(timeout=httpx.Timeout(30, read=600)) as client,
        connect_sse(client, "GET", url, headers=headers) as source,
    ):
        for sse in source.iter_sse():
            if not sse.data:  # a keep-alive comment after an id: httpx-sse dispatches it, a browser does not
                continue
            event = {"id": int(sse.id), "event": sse.event, "data": json.loads(sse.data)}
            got.append(event)
            if sse.event == "done" or (stop and stop(event)):
                break
    return got


def speakers_agree(a: list[dict], b: list[dict]) -> bool:
    """The same segments, each said by the same voice, whatever the labels are called."""
    mapping: dict[str, str] = {}
    return len(a) == len(b) and all(
        x["text"] == y["text"] and mapping.setdefault(x["speaker"], y["speaker"]) == y["speaker"]
        for x, y in zip(a, b, strict=True)
    )


@pytest.fixture(scope="module")
def synchronous(service: Container, recording: Path) -> dict:
    return transcribe(service.url, recording, timeout=600)


def test_a_multi_window_job_gives_the_synchronous_transcript(service: Container, recording: Path, synchronous: dict):
    created = submit(service, recording)
    seen = events(service, created["id"])
    done = job(service, created["id"])
    assert done["status"] == "completed" and done["progress"]["windows_total"] >= 3, done
    result = httpx.get(f"{service.url}{JOBS}/{created['id']}/result", timeout=30).json()
    assert result["text"] == synchronous["text"]
    assert speakers_agree(result["segments"], synchronous["segments"])

    progress = [e["data"]["progress"] for e in seen if e["event"] == "progress"]
    assert [p["windows_done"] for p in progress] == list(range(1, done["progress"]["windows_total"] + 1))
    fractions = [p["fraction"] for p in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert [e["id"] for e in seen] == list(range(1, len(seen) + 1)), "numbered without a gap"
    said = " ".join(s["text"] for e in seen if e["event"] == "progress" for s in e["data"]["segments"])
    assert said.split() == result["text"].split(), "each window's segments arrive with its progress event"
    assert seen[-1] == {"id": seen[-1]["id"], "event": "done", "data": {"status": "completed", "error": None}}

    srt = httpx.get(f"{service.url}{JOBS}/{created['id']}/result", params={"format": "srt"}, timeout=30)
    assert srt.status_code == 200 and srt.text.startswith("1\n00:00:0") and "[SPEAKER_0" in srt.text
    listed = httpx.get(f"{service.url}{JOBS}", timeout=30).json()
    assert listed["object"] == "list" and listed["data"][0]["id"] == created["id"]


def test_a_reconnecting_client_gets_every_event_once(service: Container, recording: Path):
    created = submit(service, recording)
    first = events(service, created["id"], stop=lambda e: e["event"] == "progress")  # drops the stream there
    rest = events(service, created["id"], last_id=first[-1]["id"])
    whole = events(service, created["id"])
    assert first + rest == whole
    assert finished(service, created["id"])["status"] == "completed"


def work_left(job_dir: Path) -> dict[str, dict[str, int | None]]:
    """The work in progress of a job's unfinished windows: file names by window (whisper.json: its chunks)."""
    return {
        work.name: {f.name: json.loads(f.read_text())["chunks"] if f.name == "whisper.json" else None
                    for f in work.iterdir() if not f.name.startswith(".")}
        for work in sorted((job_dir / "windows").glob("*.work"))
    }  # fmt: skip


def kept_work(left: dict[str, dict[str, int | None]]) -> dict[str, int]:
    """What a resumed run should find it need not do again, from the work in progress a crash left."""
    kept = {"segmentation": 0, "embedding_batches": 0, "diarization": 0, "whisper_chunks": 0}
    for files in left.values():
        kept["segmentation"] += "segmentation.npz" in files
        if "speakers.json" in files:
            kept["diarization"] += 1
        else:
            batches = 0
            while f"embeddings-{batches:04d}.npy" in files:
                batches += 1
            kept["embedding_batches"] += batches
        kept["whisper_chunks"] += files.get("whisper.json") or 0
    return {name: count for name, count in kept.items() if count}


def test_a_job_killed_mid_way_resumes_from_its_first_unfinished_window(
    model_bundle: Path, store: Path, service: Container, recording: Path, synchronous: dict
):
    created = submit(service, recording)
    before = events(service, created["id"], stop=lambda e: e["event"] == "progress")
    assert before[-1]["data"]["progress"]["windows_done"] >= 1
    job_dir = store / created["id"]
    begun = job_dir / "windows" / f"{before[-1]['data']['progress']['windows_done']:05d}.work" / "segmentation.npz"
    deadline = time.monotonic() + 120
    while not begun.exists():  # the next window is under way: its segmentation is the first thing it keeps
        assert time.monotonic() < deadline, "the next window never began"
        time.sleep(0.01)
    docker("kill", service.name)
    done_at_kill = len(list((job_dir / "windows").glob("*.json")))
    kept = kept_work(work_left(job_dir))
    assert kept.get("segmentation", 0) >= 1, kept
    docker("start", service.name)
    port = docker("port", service.name, "8002/tcp").stdout.split("\n")[0].rsplit(":", 1)[1]
    service.url = f"http://127.0.0.1:{port}"
    wait_for(service, {"ready", "error"})

    view = finished(service, created["id"])
    assert view["status"] == "completed", view
    saved = json.loads((job_dir / "result.json").read_text())
    total = view["progress"]["windows_total"]
    assert saved["windows_run"] == total - done_at_kill, "only the windows the kill left undone ran again"
    assert saved["replayed"] == kept, "inside the window it was in, the work the kill left on disk was not redone"
    result = httpx.get(f"{service.url}{JOBS}/{created['id']}/result", timeout=30).json()
    assert result["text"] == synchronous["text"] and speakers_agree(result["segments"], synchronous["segments"])
    progressed = [e["data"]["progress"]["windows_done"] for e in events(service, created["id"], 0)
                  if e["event"] == "progress"]  # fmt: skip
    assert progressed == sorted(set(progressed)) and progressed[-1] == total, "no window reported twice"
    assert not (job_dir / "audio.s16le").exists(), "the recording goes once the job is done"
    assert not list((job_dir / "windows").glob("*.work")), "the work in progress goes with each finished window"


# Runs inside the service container (cwd /srv: the image's own code, models loaded as the service loads them),
# with one Whisper chunk per batch and 8 embedding pairs per batch so a window holds several of each. stdin: a
# wav of two windows. A job's run "crashes" right after its scratch kept a given piece of work (an exception
# where a kill would land), then a second run resumes from what the store kept; it prints both transcripts,
# the uninterrupted one and what each resumed run replayed.
CRASH_SCRIPT = r"""
import json, sys, tempfile
from pathlib import Path

from app.config import Settings
from app.inference.audio import decode
from app.inference.loader import ModelLoader, prepare_environment
from app.inference.pipeline import Options, StageTimer
from app.inference.state import ServiceState
from app.jobs.store import JobStore, Scratch

class Crash(Exception):
    pass

class CrashingScratch(Scratch):
    def __init__(self, store, job_id, crash):
        super().__init__(store, job_id)
        self.crash = crash
    def put(self, index, name, value):
        super().put(index, name, value)
        if self.crash(index, name, value):
            self.crash = lambda *_: False
            raise Crash(name)

settings = Settings()
prepare_environment(settings)
state = ServiceState()
ModelLoader(settings, state).run()
assert state.status == "ready", state.error
pipeline = state.pipeline
pipeline.diarization.embedding_batch_size = 8
tmp = Path(tempfile.mkdtemp())
(tmp / "in.wav").write_bytes(sys.stdin.buffer.read())
audio = decode(tmp / "in.wav", tmp / "audio.s16le")
windows = pipeline.windows(audio)
full = pipeline.run(audio, Options(), StageTimer(), windows=windows).model_dump(mode="json")
store = JobStore(tmp / "jobs")
crashes = {
    "second embedding batch": lambda index, name, value: (index, name) == (0, "embeddings-0001.npy"),
    "first Whisper batch": lambda index, name, value: name == "whisper.json" and value["chunks"] == 1,
}
out = {"windows": len(windows), "full": full, "runs": {}}
for what, crash in crashes.items():
    job = store.create("in.wav", {}, "json")
    try:
        pipeline.run(audio, Options(), StageTimer(), windows=windows, scratch=CrashingScratch(store, job.id, crash))
        raise SystemExit("the run did not crash")
    except Crash:
        pass
    left = {work.name: {f.name: json.loads(f.read_text())["chunks"] if f.name == "whisper.json" else None
                        for f in work.iterdir() if not f.name.startswith(".")}
            for work in sorted((store.dir(job.id) / "windows").glob("*.work"))}
    final = json.loads((store.work(job.id, 0) / "whisper.json").read_text())["final"]
    timer = StageTimer()
    resumed = pipeline.run(audio, Options(), timer, windows=windows, scratch=Scratch(store, job.id))
    out["runs"][what] = {"transcript": resumed.model_dump(mode="json"), "replayed": dict(timer.replayed),
                         "left": left, "whisper_final": final}
print(json.dumps(out))
"""


def test_a_crash_inside_a_window_resumes_from_the_work_its_scratch_kept(
    service: Container, audio: Path, tmp_path: Path
):
    two_windows = repeated(audio / "dialogue.wav", 2, tmp_path / "two-windows.wav")
    proc = subprocess.run(
        ["docker", "exec", "-i", "-e", "WHISPERX_BATCH_SIZE=1", service.name, "python", "-c", CRASH_SCRIPT],
        input=two_windows.read_bytes(), capture_output=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    got = json.loads(proc.stdout.splitlines()[-1])  # whisperX says things on stdout first
    assert got["windows"] == 2
    embeddings, whisper = got["runs"]["second embedding batch"], got["runs"]["first Whisper batch"]
    # the front thread crashed after window 0's segmentation and two embedding batches; Whisper had been handed
    # window 0 and finished it
    assert embeddings["left"]["00000.work"].keys() >= {"segmentation.npz", "embeddings-0000.npy",
                                                       "embeddings-0001.npy", "whisper.json"}  # fmt: skip
    assert embeddings["whisper_final"] and "speakers.json" not in embeddings["left"]["00000.work"]
    # Whisper crashed after the first chunk of window 0, the front thread going on until it heard of it
    assert whisper["left"]["00000.work"]["whisper.json"] == 1 and not whisper["whisper_final"]
    for run in (embeddings, whisper):
        assert run["replayed"] == kept_work(run["left"]), "what the crash left is not done again"
    for run in (embeddings, whisper):
        assert run["transcript"] == got["full"], "a resumed run writes the uninterrupted transcript"


def test_delete_cancels_a_running_job_and_leaves_no_file(service: Container, store: Path, recording: Path):
    created = submit(service, recording)
    events(service, created["id"], stop=lambda e: e["event"] == "status" and e["data"]["status"] == "running")
    assert httpx.delete(f"{service.url}{JOBS}/{created['id']}", timeout=120).status_code == 204
    assert not (store / created["id"]).exists()
    assert httpx.get(f"{service.url}{JOBS}/{created['id']}", timeout=30).status_code == 404
    assert wait_for(service, {"ready"})["queue"]["running"] == 0


def test_bad_uploads_and_unknown_jobs_get_clear_answers(service: Container, audio: Path):
    empty = httpx.post(f"{service.url}{JOBS}", files={"file": ("e.wav", b"")}, timeout=30)
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "empty_file"
    text = submit_bytes(service, b"certainly not audio " * 100)
    failed = finished(service, text["id"])
    assert failed["status"] == "failed" and "decode" in failed["error"]["message"], failed
    result = httpx.get(f"{service.url}{JOBS}/{text['id']}/result", timeout=30)
    assert result.status_code == 409 and result.json()["error"]["code"] == "job_not_completed"
    assert httpx.get(f"{service.url}{JOBS}/job_0123456789abcdef", timeout=30).status_code == 404
    assert httpx.get(f"{service.url}{JOBS}/../etc", timeout=30).status_code == 404


def submit_bytes(service: Container, data: bytes) -> dict:
    response = httpx.post(f"{service.url}{JOBS}", files={"file": ("x.wav", data)}, timeout=60)
    assert response.status_code == 202, response.text
    return response.json()


def test_a_corrupt_checkpoint_fails_that_job_and_the_service_stays_healthy(
    service: Container, store: Path, recording: Path, audio: Path
):
    created = submit(service, recording)
    events(service, created["id"], stop=lambda e: e["event"] == "progress")
    docker("kill", service.name)
    (store / created["id"] / "windows" / "00000.json").write_text('{"index": 0, "segm')  # torn by a bad disk
    docker("start", service.name)
    port = docker("port", service.name, "8002/tcp").stdout.split("\n")[0].rsplit(":", 1)[1]
    service.url = f"http://127.0.0.1:{port}"
    wait_for(service, {"ready", "error"})
    view = finished(service, created["id"])
    assert view["status"] == "failed" and view["error"]["code"] == "corrupt_job", view
    assert "00000.json" in view["error"]["message"]
    assert wait_for(service, {"ready"})["status"] == "ready"
    short = submit(service, audio / "sentence.wav")
    assert finished(service, short["id"])["status"] == "completed", "other jobs are served"


def test_finished_jobs_go_after_their_retention(service: Container, store: Path, audio: Path):
    short = submit(service, audio / "sentence.wav")
    view = finished(service, short["id"])
    assert view["status"] == "completed"
    while time.time() < view["finished_at"] + RETENTION_H * 3600 + 1:  # the retention passes (a clock, not speed)
        time.sleep(0.5)
    docker("restart", service.name)  # the sweep runs at start, then hourly
    port = docker("port", service.name, "8002/tcp").stdout.split("\n")[0].rsplit(":", 1)[1]
    service.url = f"http://127.0.0.1:{port}"
    wait_for(service, {"ready", "error"})
    assert httpx.get(f"{service.url}{JOBS}/{short['id']}", timeout=30).status_code == 404
    assert not (store / short["id"]).exists()


def test_the_store_cap_evicts_the_oldest_finished_jobs_then_says_507(model_bundle: Path, audio: Path, tmp_path: Path):
    small = tmp_path / "store"
    small.mkdir()
    sentence = audio / "sentence.wav"
    # Room for one upload and its decoded audio beside it (what a new job needs), and a little more: a second job
    # fits only once the first, finished, is evicted.
    cap_gb = (2 * sentence.stat().st_size + 2048) / (1 << 30)
    capped = run(model_bundle, small, WHISPERX_JOBS_MAX_GB=str(cap_gb), WHISPERX_JOBS_RETENTION_H="168")
    try:
        first = submit(capped, sentence)
        assert finished(capped, first["id"])["status"] == "completed"
        second = submit(capped, sentence)  # fits once the first, finished, is evicted
        assert finished(capped, second["id"])["status"] == "completed"
        assert httpx.get(f"{capped.url}{JOBS}/{first['id']}", timeout=30).status_code == 404, "the oldest went"
        big = repeated(sentence, 8, tmp_path / "big.wav")
        with big.open("rb") as f:
            full = httpx.post(f"{capped.url}{JOBS}", files={"file": ("big.wav", f)}, timeout=60)
        assert full.status_code == 507 and "WHISPERX_JOBS_MAX_GB" in full.json()["error"]["message"]
        assert [p.name for p in small.iterdir() if p.name.startswith(".incoming")] == [], "nothing half-stored"
    finally:
        remove(capped)
