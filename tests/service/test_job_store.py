"""The job store on disk (whisperx_container/app/jobs/store.py), without the image: atomic records, the event
log after a torn append, checkpoints that must be the windows in order, and the job object's progress."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from app.inference.windows import SpeakerLinker, WindowSpeakers
from app.jobs.store import CorruptJob, JobStore, Scratch


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    return JobStore(tmp_path / "jobs")


def test_a_job_round_trips_and_leaves_no_temporary_file(store: JobStore):
    job = store.create("standup.m4a", {"language": "en"}, "srt")
    job.status, job.duration, job.windows = "running", 300.0, [[0, 120], [120, 240], [240, 300]]
    job.windows_done, job.audio_s_done = 1, 120.0
    store.save(job)
    again = store.load(job.id)
    assert again == job and not list(store.dir(job.id).glob(".*.tmp"))
    view = again.view()
    assert view["progress"] == {"windows_done": 1, "windows_total": 3, "audio_s_done": 120.0, "fraction": 0.4,
                                "eta_s": None}  # fmt: skip
    assert view["object"] == "transcription.job" and view["id"].startswith("job_")


def test_a_torn_last_event_is_dropped_and_the_rest_read(store: JobStore):
    job = store.create("a.wav", {}, "json")
    for i in (1, 2):
        store.append_event(job.id, {"id": i, "event": "progress", "data": {"n": i}})
    with open(store.dir(job.id) / "events.jsonl", "ab") as log:
        log.write(b'{"id": 3, "event": "prog')  # the process died mid-append
    assert [e["id"] for e in store.events(job.id)] == [1, 2]


def test_checkpoints_must_be_readable_and_the_windows_in_order(store: JobStore):
    job = store.create("a.wav", {}, "json")
    store.save_window(job.id, 0, {"index": 0})
    store.save_window(job.id, 1, {"index": 1, "p": np.float32(0.5)})
    assert [w["index"] for w in store.windows(job.id)] == [0, 1]
    (store.dir(job.id) / "windows" / "00001.json").write_text('{"index": 1, "seg')
    with pytest.raises(CorruptJob, match=r"00001\.json"):
        store.windows(job.id)
    (store.dir(job.id) / "windows" / "00001.json").unlink()
    store.save_window(job.id, 2, {"index": 2})
    with pytest.raises(CorruptJob, match="in order"):
        store.windows(job.id)


def test_newest_first_and_a_corrupt_record_is_named(store: JobStore):
    first = store.create("1.wav", {}, "json")
    second = store.create("2.wav", {}, "json")
    second.created_at = first.created_at + 1
    store.save(second)
    assert store.ids() == [second.id, first.id]
    (store.dir(first.id) / "job.json").write_text("{")
    with pytest.raises(CorruptJob, match=r"job\.json"):
        store.load(first.id)


def test_a_linker_replayed_from_checkpoints_is_the_linker_of_the_run(store: JobStore):
    """What a resume relies on: window diarizations through JSON give the same speakers as the originals."""
    rng = np.random.default_rng(7)
    voices = rng.normal(size=(3, 192)).astype(np.float32)
    windows = []
    for w in range(4):
        labels = [f"L{i}" for i in range(3)]
        centroids = {lb: (voices[i] + 0.05 * rng.normal(size=192)).astype(np.float32) for i, lb in enumerate(labels)}
        turns = [(w * 60 + 20 * i + 0.5, w * 60 + 20 * i + 15.25, lb) for i, lb in enumerate(labels)]
        windows.append(WindowSpeakers(turns, centroids, {lb: 14.75 for lb in labels}))
    original, replayed = SpeakerLinker(), SpeakerLinker()
    for window in windows:
        original.add(window)
        replayed.add(WindowSpeakers.from_json(json.loads(json.dumps(window.to_json()))))
    assert original.finish() == replayed.finish() and original.finish(2) == replayed.finish(2)


def test_work_in_progress_round_trips_goes_with_its_checkpoint_and_a_torn_file_is_work_to_redo(store: JobStore):
    job = store.create("a.wav", {}, "json")
    scratch = Scratch(store, job.id)
    segmentation = np.random.default_rng(0).random((5, 589, 3), dtype=np.float32)
    scratch.put(1, "segmentation.npz", {"data": segmentation, "window": np.array([0.0, 10.0, 2.5])})
    scratch.put(1, "embeddings-0000.npy", segmentation[0, :32, :2].copy())
    scratch.put(1, "whisper.json", {"chunks": 8, "segments": [{"text": "hello", "start": np.float32(1.5)}]})
    kept = scratch.get(1, "segmentation.npz")
    assert np.array_equal(kept["data"], segmentation) and kept["data"].dtype == np.float32
    assert np.array_equal(scratch.get(1, "embeddings-0000.npy"), segmentation[0, :32, :2])
    assert scratch.get(1, "whisper.json") == {"chunks": 8, "segments": [{"text": "hello", "start": 1.5}]}
    assert scratch.get(1, "embeddings-0001.npy") is None and scratch.get(2, "whisper.json") is None
    assert not list(store.work(job.id, 1).glob(".*.tmp"))

    work = store.work(job.id, 1)
    (work / "whisper.json").write_bytes(b'{"chunks": 8, "segm')  # a crash the disk did not see through
    (work / "segmentation.npz").write_bytes((work / "segmentation.npz").read_bytes()[:1000])
    (work / "embeddings-0000.npy").write_bytes(b"")
    assert [scratch.get(1, n) for n in ("whisper.json", "segmentation.npz", "embeddings-0000.npy")] == [None] * 3

    store.save_window(job.id, 0, {"index": 0})
    assert work.is_dir(), "only the finished window's work goes"
    store.save_window(job.id, 1, {"index": 1})
    assert not work.exists() and [w["index"] for w in store.windows(job.id)] == [0, 1]

    store.delete(job.id)
    scratch.put(2, "whisper.json", {"chunks": 1})  # a job deleted while its last batch ran: nothing to keep
    assert not store.dir(job.id).exists()
