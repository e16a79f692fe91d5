#!/usr/bin/env python3
"""Benchmark the WhisperX service image on long audio: `make bench-service` (about an hour on 2 cores).

Run from the repository root as `python -m scripts.bench_service` (it imports scripts.bench).

Builds 1/5/30/90-minute recordings by concatenating the espeak dialogue and pyannote's sample with
pauses (four speakers, known turns and words), then measures, all in one run on this machine:

- the service over HTTP (CPU image, offline bundle, tiny.en): seconds per stage, real-time factor,
  peak RSS of the service process during the request (VmHWM, reset before each request), the
  speakers it found and how many words it gave the right speaker;
- the plain sequential whisperX pipeline (scripts/bench/baseline.py) on the same files and models;
- HTTP against in-process (scripts/bench/inprocess.py inside the same container);
- WER and DER on the espeak dialogue and on pyannote's sample.

Writes docs/benchmarks/service.md, service.png and service.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

from scripts.bench import gb10, jobs, voices
from scripts.bench.recordings import PAUSE_S, dialogue_lines, mix, reference_blocks
from scripts.bench.scoring import der, hypothesis_turns, rttm_turns, stm_lines, wer, word_speaker_accuracy

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "spark-inference"
GOAL_WALL_RATIO = 0.6
GOAL_PEAK_RATIO = 1.5
GOAL_HTTP_OVERHEAD = 0.03
GOAL_CHECKPOINT = 0.02
GOAL_RESUME = 0.30
THRESHOLD_OFF = {"WHISPERX_KNOWN_SPEAKER_THRESHOLD": "-1"}  # every known-speaker pair comes back, scored


def docker(*args: str, check: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


# ---------------------------------------------------------------- the service


class Service:
    def __init__(
        self, image: str, bundle: Path, work: Path, env: dict[str, str] | None = None, app: Path | None = None
    ):
        """The service container; `env` adds settings, `app` mounts another version of whisperx_container/app."""
        self.name = f"svc-bench-{uuid.uuid4().hex[:6]}"
        extra = [a for k, v in (env or {}).items() for a in ("-e", f"{k}={v}")]
        if app is not None:
            extra += ["-v", f"{app.resolve()}:/srv/app:ro"]
        docker(
            "run", "-d", "--name", self.name, "-p", "127.0.0.1::8002",
            "-v", f"{bundle}:/models:ro", "-v", f"{REPO / 'scripts/bench'}:/bench:ro", "-v", f"{work}:/data:ro",
            "-e", "WHISPER_MODEL=tiny.en", "-e", "WHISPERX_MODEL_BUNDLE=/models", "-e", "PYTHONPATH=/srv",
            *extra, image,
        )  # fmt: skip
        self.ready()

    def ready(self) -> None:
        """Wait until /health says ready (the host port and the PID are new after every start)."""
        port = docker("port", self.name, "8002/tcp").stdout.split("\n")[0].rsplit(":", 1)[1]
        self.url = f"http://127.0.0.1:{port}"
        self.pid = int(docker("inspect", "--format", "{{.State.Pid}}", self.name).stdout)
        for _ in range(600):
            try:
                if httpx.get(f"{self.url}/health", timeout=5).json()["status"] == "ready":
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            logs = docker("logs", self.name, check=False).stderr[-2000:]
            self.remove()
            raise SystemExit(f"service did not become ready: {logs}")

    def restart(self) -> float:
        """`docker kill`, then `docker start` (the container's files and job store stay): seconds until ready."""
        docker("kill", self.name)
        began = time.perf_counter()
        docker("start", self.name)
        self.ready()
        return time.perf_counter() - began

    def read(self, path: str) -> str:
        """A file inside the container (a job's result.json in its store)."""
        return docker("exec", self.name, "cat", path).stdout

    def cpu_s(self) -> float:
        """User + system seconds the service process has used, all its threads."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    def status(self, field: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) // 1024  # MB
        return 0

    def transcribe(self, path: Path) -> tuple[dict, float, int, list]:
        """(response, client wall seconds, peak RSS MB during the request, RSS samples)."""
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # reset VmHWM to the current RSS
            self.hwm = True
        except OSError:  # not root: fall back on the sampled maximum
            self.hwm = False
        samples, stop = [], threading.Event()
        t0 = time.perf_counter()

        def sample():
            while not stop.is_set():
                samples.append((round(time.perf_counter() - t0, 2), self.status("VmRSS")))
                time.sleep(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        with path.open("rb") as f:
            response = httpx.post(
                f"{self.url}/v1/audio/transcribe-with-speakers", files={"file": (path.name, f)}, timeout=7200
            )
        wall = time.perf_counter() - t0
        stop.set()
        sampler.join()
        response.raise_for_status()
        peak = max([rss for _, rss in samples] + [self.status("VmHWM") if self.hwm else 0])
        return response.json(), wall, peak, samples

    def inprocess(self, path: str, runs: int) -> dict:
        out = docker("exec", self.name, "python", "/bench/inprocess.py", path, str(runs)).stdout
        return json.loads(out.strip().splitlines()[-1])

    def remove(self) -> None:
        docker("rm", "-f", self.name, check=False)


def http_overhead(service: Service, rec: dict, minutes: float, runs: int) -> dict:
    """HTTP and in-process runs interleaved on the same file; the minimum of each is the least disturbed one."""
    http_runs, inproc_runs = [], []
    for _ in range(runs):
        http_runs.append(service.transcribe(rec["path"])[1])
        inproc_runs += service.inprocess(f"/data/{rec['path'].name}", 1)["wall_s"]
    http_s, inproc_s = min(http_runs), min(inproc_runs)
    return {
        "minutes": minutes,
        "runs": runs,
        "http_s": http_s,
        "inprocess_s": inproc_s,
        "http_all": [round(r, 2) for r in http_runs],
        "inprocess_all": inproc_runs,
        "overhead": http_s / inproc_s - 1,
    }


def parse_variant(spec: str) -> tuple[str, dict[str, str], Path | None]:
    """NAME[:KEY=VALUE,...][:app=DIR] -> (name, environment, app directory)."""
    name, *parts = spec.split(":")
    env, app = {}, None
    for part in (p for chunk in parts for p in chunk.split(",") if p):
        key, value = part.split("=", 1)
        if key == "app":
            app = Path(value)
        else:
            env[key] = value
    return name, env, app


def compare(args, recording: dict) -> None:
    """Service variants on one recording, runs interleaved so they share the machine's load; prints a table."""
    variants = [parse_variant(spec) for spec in args.variant]
    services = {}
    try:
        for name, env, app in variants:
            services[name] = Service(args.image, args.bundle, args.work, env, app)
        runs = {name: [] for name in services}
        for i in range(args.runs):
            for name, service in services.items():
                result, wall, peak, _ = service.transcribe(recording["path"])
                t = result["timings"]
                accuracy = word_speaker_accuracy(result["segments"], recording["turns"])
                runs[name].append({"wall_s": wall, "diarize_s": t["diarize_s"], "peak_rss_mb": peak, "acc": accuracy})
                print(
                    f"run {i + 1} {name}: wall {wall:.1f} s, diarize {t['diarize_s']:.1f} s, peak {peak} MB,"
                    f" speakers {len(result['speakers'])}, words to right speaker {accuracy:.1%}",
                    flush=True,
                )
        when = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
        print(f"\n{recording['path'].name}, {args.runs} interleaved runs each, {when}")
        print("| variant | wall (min / median) | diarize (min / median) | peak RSS (max) | idle RSS after |")
        print("|---|---|---|---|---|")
        for name, service in services.items():
            r = runs[name]
            wall, diarize = [x["wall_s"] for x in r], [x["diarize_s"] for x in r]
            print(
                f"| {name} | {min(wall):.1f} / {np.median(wall):.1f} s |"
                f" {min(diarize):.1f} / {np.median(diarize):.1f} s | {max(x['peak_rss_mb'] for x in r)} MB |"
                f" {service.status('VmRSS')} MB |"
            )
    finally:
        for service in services.values():
            service.remove()


def baseline(image: str, bundle: Path, work: Path, path: Path) -> dict:
    name = f"svc-bench-baseline-{uuid.uuid4().hex[:6]}"
    proc = docker(
        "run", "--rm", "--name", name, "-e", "PYTHONPATH=/srv",
        "-v", f"{bundle}:/models:ro", "-v", f"{REPO / 'scripts/bench'}:/bench:ro", "-v", f"{work}:/data:ro",
        image, "python", "/bench/baseline.py", f"/data/{path.name}", "/models",
    )  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- report


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["lengths"]
    minutes = [r["minutes"] for r in runs]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))

    ax = axes[0]
    x = np.arange(len(runs))
    stages = [("decode_s", "decode"), ("vad_s", "VAD/segmentation"), ("transcribe_s", "transcribe"),
              ("align_s", "word times"), ("diarize_s", "diarize")]  # fmt: skip
    bottom = np.zeros(len(runs))
    for key, label in stages:
        vals = np.array([r["service"]["timings"].get(key, 0.0) / (r["minutes"] * 60) for r in runs])
        ax.bar(x - 0.2, vals, 0.38, bottom=bottom, label=f"service {label}")
        bottom += vals
    ax.plot(x - 0.2, [r["service"]["rtf"] for r in runs], "k_", markersize=22, mew=3, label="service wall")
    base = [r.get("baseline") for r in runs]
    bottom = np.zeros(len(runs))
    for key, label, color in (("decode_s", "decode", "#bbb"), ("transcribe_s", "VAD+transcribe", "#888"),
                              ("diarize_s", "diarize", "#444")):  # fmt: skip
        vals = np.array([b["timings"][key] / b["duration_s"] if b else 0.0 for b in base])
        ax.bar(x + 0.2, vals, 0.38, bottom=bottom, color=color, label=f"whisperX sequential {label}")
        bottom += vals
    ax.set_xticks(x, [f"{m:g} min" for m in minutes])
    ax.set_ylabel("seconds per second of audio; service stages overlap")
    ax.set_title("per stage: service (left) vs sequential whisperX (right)")
    ax.legend(fontsize=6.5, loc="upper left")

    ax = axes[1]
    ax.plot(minutes, [r["service"]["rtf"] for r in runs], "o-", label="service (HTTP)")
    bm = [(r["minutes"], r["baseline"]["rtf"]) for r in runs if r.get("baseline")]
    if bm:
        ax.plot(*zip(*bm, strict=True), "s--", label="sequential whisperX")
    ax.set_xscale("log")
    ax.set_xticks(minutes, [f"{m:g}" for m in minutes])
    ax.set_xlabel("recording length (minutes)")
    ax.set_ylabel("real-time factor (processing s / audio s)")
    ax.set_ylim(bottom=0)
    ax.set_title("real-time factor")
    ax.legend()

    ax = axes[2]
    ax.plot(minutes, [r["service"]["peak_rss_mb"] for r in runs], "o-", label="service peak RSS")
    bm = [(r["minutes"], r["baseline"]["peak_rss_mb"]) for r in runs if r.get("baseline")]
    if bm:
        ax.plot(*zip(*bm, strict=True), "s--", label="sequential whisperX peak RSS")
    five = next((r["service"]["peak_rss_mb"] for r in runs if r["minutes"] == 5), None)
    if five:
        ax.axhline(GOAL_PEAK_RATIO * five, color="r", ls=":", label=f"goal: {GOAL_PEAK_RATIO}x the 5-min peak")
    ax.set_xscale("log")
    ax.set_xticks(minutes, [f"{m:g}" for m in minutes])
    ax.set_xlabel("recording length (minutes)")
    ax.set_ylabel("MB")
    ax.set_ylim(bottom=0)
    ax.set_title("peak resident memory")
    ax.legend(fontsize=8)

    fig.suptitle(f"whisperx-asr on {results['machine']['cpus']} CPU cores, tiny.en int8, {results['date']}")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def verdict(ok: bool) -> str:
    return "met" if ok else "missed"


def baseline_origin(results: dict) -> str:
    if "baseline_from" in results:
        return f" (the sequential whisperX runs are reused from the run of {results['baseline_from']})."
    return "."


def report(results: dict, out: Path) -> None:
    m, runs = results["machine"], results["lengths"]
    lines = [
        "# WhisperX service benchmark",
        "",
        f"Measured {results['date']} on {m['cpus']} CPU cores ({m['cpu']}), {m['memory_gb']} GB RAM, no GPU;"
        f" {m['os']}; Docker {m['docker']}. Image `{results['image']}`, offline bundle, `WHISPER_MODEL=tiny.en`"
        " (int8), CPU. Command: `make bench-service` (`scripts/bench_service.py`), "
        f"{results['elapsed_min']:.0f} minutes in all" + baseline_origin(results),
        "",
        "Long recordings are the espeak dialogue (two voices) and pyannote's sample (two people) in turn, with"
        f" {PAUSE_S:g} s pauses, cut to length: four speakers whose turns and words are known.",
        "The service is called over HTTP (`/v1/audio/transcribe-with-speakers`); its peak RSS is the service"
        " process's VmHWM during the request (reset to the current RSS before each request, so it includes the"
        " resident models and whatever the allocator kept from earlier requests: ~1.4 GB idle after loading)."
        " The baseline is the plain sequential whisperX pipeline (`scripts/bench/baseline.py`) on the same"
        " file and models, each run in a fresh container: whisperX's own VAD + batched transcription, no"
        " alignment (no wav2vec2 weights offline), then pyannote's `SpeakerDiarization` over the whole file"
        " with its defaults (10 % segmentation step) on the same segmentation-3.0 + CAM++ checkpoints, then"
        " `assign_word_speakers`; its peak RSS is the process's maxrss.",
        "",
        "![per-stage seconds, real-time factor and peak memory](service.png)",
        "",
        "## Speed and memory",
        "",
        "| audio | service wall | RTF | decode | VAD | transcribe | word times | diarize | peak RSS |"
        " speakers | words to right speaker | whisperX sequential wall | RTF | peak RSS | service / sequential |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        s, b = r["service"], r.get("baseline")
        t = s["timings"]
        row = (
            f"| {r['minutes']:g} min | {s['wall_s']:.1f} s | {s['rtf']:.3f} | {t['decode_s']:.1f} | {t['vad_s']:.1f} |"
            f" {t['transcribe_s']:.1f} | {t['align_s']:.1f} | {t['diarize_s']:.1f} | {s['peak_rss_mb']} MB |"
            f" {s['speakers']} of 4 | {s['word_speaker_accuracy']:.0%} |"
        )
        if b:
            row += f" {b['timings']['total_s']:.1f} s | {b['rtf']:.3f} | {b['peak_rss_mb']} MB |"
            row += f" {r['wall_ratio']:.2f}x |"
        else:
            row += " not run | | | |"
        lines.append(row)
    lines += [
        "",
        "Stage columns are seconds of work per stage; in the service VAD + diarization run in one thread while"
        " transcription runs in another, so they add up to more than the wall time.",
        "",
        "## Goals",
        "",
        "| goal | measured | |",
        "|---|---|---|",
    ]
    g = results["goals"]
    if g.get("peak_ratio") is not None:
        lines.append(
            f"| 90-min peak RSS <= {GOAL_PEAK_RATIO}x the 5-min peak | {g['peak_90']} MB / {g['peak_5']} MB ="
            f" {g['peak_ratio']:.2f}x | {verdict(g['peak_ratio'] <= GOAL_PEAK_RATIO)} |"
        )
    for r in runs:
        if r.get("wall_ratio") is not None:
            lines.append(
                f"| service wall <= {GOAL_WALL_RATIO}x sequential whisperX ({r['minutes']:g} min) |"
                f" {r['service']['wall_s']:.1f} s / {r['baseline']['timings']['total_s']:.1f} s ="
                f" {r['wall_ratio']:.2f}x | {verdict(r['wall_ratio'] <= GOAL_WALL_RATIO)} |"
            )
    h = results["http"]
    for r in runs:
        layer = r["service"]["wall_s"] - r["service"]["timings"]["total_s"]
        share = layer / r["service"]["wall_s"]
        lines.append(
            f"| HTTP overhead <= {GOAL_HTTP_OVERHEAD:.0%} ({r['minutes']:g} min): client wall minus the service's"
            f" own decode + pipeline time | {layer:.2f} s of {r['service']['wall_s']:.1f} s = {share:.1%} |"
            f" {verdict(share <= GOAL_HTTP_OVERHEAD)} |"
        )
    lines.append(
        f"| HTTP overhead <= {GOAL_HTTP_OVERHEAD:.0%} end to end ({h['minutes']:g} min, fastest of {h['runs']}"
        f" interleaved runs) | HTTP {h['http_s']:.2f} s vs in-process {h['inprocess_s']:.2f} s ="
        f" {h['overhead']:+.1%} | {verdict(h['overhead'] <= GOAL_HTTP_OVERHEAD)} (see notes) |"
    )
    if results.get("jobs"):
        lines += jobs_section(results["jobs"])
    if results.get("voices"):
        lines += voices_section(results["voices"])
    lines += [
        "",
        "## Accuracy",
        "",
        'WER after lower-casing and dropping punctuation (numbers are not normalised: "100" against'
        ' "one hundred" counts as an error). DER is frame-level (10 ms), no collar, overlap scored, computed'
        " from the transcript's speaker-labelled segments (what a user gets), not from raw diarization turns.",
        "",
        "| file | WER | DER | speakers found / reference |",
        "|---|---|---|---|",
    ]
    for q in results["quality"]:
        lines.append(f"| {q['file']} | {q['wer']:.1%} | {q['der']:.1%} | {q['speakers']} / {q['reference_speakers']} |")
    lines += gb10.section()
    lines += ["", "## Notes", ""] + [f"- {n}" for n in results["notes"]]
    out.write_text("\n".join(lines) + "\n")


def resume_cell(r: dict, full_s: float) -> str:
    """A kill and resume as the Jobs table shows it (r from scripts/bench/jobs.killed_and_resumed)."""
    return (
        f"killed after {r['killed_after_s']:.0f} s with {r['windows_done_at_kill']} of {r['windows_total']}"
        f" windows done; restart to done {r['restart_to_done_s']:.1f} s = loading {r['load_s']:.1f} s +"
        f" {r['work_after_load_s']:.1f} s = {r['share_of_full']:.0%} of {full_s:.1f} s"
        f" (kept from inside the unfinished windows: {kept_work(r.get('replayed', {}))})"
    )


def kept_work(replayed: dict[str, int]) -> str:
    """What a resumed job did not do again inside its unfinished windows (its result's `replayed`)."""
    names = {"segmentation": "segmentation", "embedding_batches": "embedding batches",
             "diarization": "diarization", "whisper_chunks": "Whisper chunks"}  # fmt: skip
    return ", ".join(f"{replayed[k]} {name}" for k, name in names.items() if replayed.get(k)) or "nothing"


def voices_section(v: dict) -> list[str]:
    m, recs = v["machine"], v["recordings"]
    genuine, impostor = v["genuine"], v["impostor"]
    extra = [r["with_s"] - r["without_s"] for r in recs]
    refs = sum(r["references"] for r in recs)
    lines = [
        "",
        "## Known speakers",
        "",
        f"Measured {v['date']} on {m['cpus']} CPU cores ({m['cpu']}), {m['memory_gb']} GB RAM"
        f" (`scripts/bench/voices.py`): {len(recs)} recordings of {min(v['duration_s']):.0f}-"
        f"{max(v['duration_s']):.0f} s, each 3-5 of {v['pool']} espeak voices taking turns, every voice's"
        " reference another sentence in its voice. Each recording went through `transcribe-with-speakers`"
        " with the references of its own voices and two absent ones, with absent voices only, and without"
        " references, the service at `WHISPERX_KNOWN_SPEAKER_THRESHOLD=-1` so that every one-to-one"
        " assignment came back with its similarity.",
        "",
        f"Similarity of a speaker to its own voice's reference: {len(genuine)} pairs, min {min(genuine):.3f},"
        f" median {float(np.median(genuine)):.3f}; to another voice's: {len(impostor)} pairs, max"
        f" {max(impostor):.3f}, median {float(np.median(impostor)):.3f}.",
        "",
        "| threshold | precision of names | recall of names | wrong names (of every impostor pair) |",
        "|---|---|---|---|",
    ]
    for row in v["thresholds"]:
        chosen = " (the default)" if row["threshold"] == v["default"] else ""
        lines.append(
            f"| {row['threshold']:g}{chosen} | {row['precision']:.0%} | {row['recall']:.0%} |"
            f" {row['false_names']} of {len(impostor)} |"
        )
    lines += [
        "",
        f"The default `WHISPERX_KNOWN_SPEAKER_THRESHOLD={v['default']:g}` is chosen from these scores: below"
        " every genuine pair, above all impostors but a few. Recall is capped by the diarization, not by the"
        " threshold: a speaker the diarizer merged into another (it found"
        f" {sum(r['speakers_found'] for r in recs)} of {sum(len(r['voices']) for r in recs)} voices) cannot"
        " get its own name, and the merged one is named after whichever voice dominates it. espeak voices"
        " are far more alike than people: two of its voices score a median"
        f" {float(np.median(impostor)):.2f} here, where two real speakers' window centroids score about"
        " 0.45 (app/inference/windows.py), so on real meetings a lower threshold may name more people"
        " without naming them wrongly; measure before lowering it. What references cost: "
        f"{float(np.mean(extra)):+.2f} s per request on average ({sum(extra) / refs:+.3f} s per reference;"
        f" requests of {min(r['without_s'] for r in recs):.1f}-{max(r['without_s'] for r in recs):.1f} s"
        " without references), the embedding of each 2-10 s clip on the diarizer's model.",
    ]
    return lines


def jobs_section(j: dict) -> list[str]:
    m, r, o = j["machine"], j["resume"], j["overhead"]
    w = j.get("walls") or {"sync": [j["sync"]["wall_s"]], "job": [j["job"]["wall_s"]]}
    full = j["job"]["wall_s"]
    lines = [
        "",
        "## Jobs",
        "",
        f"Measured {j['date']} on {m['cpus']} CPU cores ({m['cpu']}), {m['memory_gb']} GB RAM, Docker"
        f" {m['docker']}, one container with the default settings (its job store in the container's own"
        f" files, which `docker kill` and `docker start` keep). The {j['minutes']:g}-minute mix as a"
        f" synchronous request, then as a job (`POST /v1/audio/jobs`, timed from the first byte of the upload"
        f" to its `done` event; {j['job']['windows']} windows), then as a job killed (`docker kill`) at"
        f" {jobs.KILL_AT:.0%} of that job's wall time, started again and followed to `done`"
        f" (`scripts/bench/jobs.py`).",
        "",
        "| goal | measured | |",
        "|---|---|---|",
        f"| checkpointing costs <= {GOAL_CHECKPOINT:.0%}: job wall against the synchronous request"
        f" ({j['minutes']:g} min, least of 2 interleaved runs each) | {min(w['job']):.1f} s vs"
        f" {min(w['sync']):.1f} s = {j['checkpoint_cost']:+.1%} (all: job {w['job']} s, synchronous"
        f" {w['sync']} s) | {verdict(j['checkpoint_cost'] <= GOAL_CHECKPOINT)} |",
        f"| the same transcript as the synchronous request | {'same text' if j['job_same_text'] else 'differs'} |"
        f" {verdict(j['job_same_text'])} |",
        f"| resume after a kill at {jobs.KILL_AT:.0%} <= {GOAL_RESUME:.0%} of the full run plus model loading |"
        f" {resume_cell(r, full)} | {verdict(r['share_of_full'] <= GOAL_RESUME)} |",
        f"| no finished window redone, the uninterrupted transcript | {r['windows_announced_twice']} windows"
        f" announced twice, {'same text' if r['same_text'] else 'text differs'} |"
        f" {verdict(r['windows_announced_twice'] == 0 and r['same_text'])} |",
    ]
    peaks = o["peak_rss_mb"]
    lines += [
        f"| a job's peak RSS equal to the synchronous request's ({j['short_minutes']:g} min, interleaved) |"
        f" job {peaks['job']} MB vs synchronous {peaks['http']} MB (the {j['minutes']:g}-minute runs above:"
        f" job {j['job']['peak_rss_mb']} MB after synchronous {j['sync']['peak_rss_mb']} MB, the first long"
        f" request of the process) | {verdict(max(peaks['job']) <= max(peaks['http']) * 1.05)} |",
    ]
    for kind in ("http", "job"):
        share = o[f"{kind}_overhead"]
        lines.append(
            f"| {kind} within {GOAL_HTTP_OVERHEAD:.0%} of in-process ({j['short_minutes']:g} min, fastest of"
            f" {o['runs']} interleaved runs) | {o['best'][kind]:.2f} s vs {o['best']['inprocess']:.2f} s ="
            f" {share:+.1%} (all: {kind} {o['all'][kind]} s, in-process {o['all']['inprocess']} s) |"
            f" {verdict(share <= GOAL_HTTP_OVERHEAD)} |"
        )
        cpu_share = o[f"{kind}_cpu_overhead"]
        lines.append(
            f"| {kind} CPU seconds within {GOAL_HTTP_OVERHEAD:.0%} of in-process (least of {o['runs']}) |"
            f" {o['cpu_best'][kind]:.1f} s vs {o['cpu_best']['inprocess']:.1f} s = {cpu_share:+.1%} (all:"
            f" {kind} {o['cpu_all'][kind]} s, in-process {o['cpu_all']['inprocess']} s) |"
            f" {verdict(cpu_share <= GOAL_HTTP_OVERHEAD)} |"
        )
    lines += [
        "",
        "A kill loses only the batch that was running inside each unfinished window: a job keeps the"
        " window's segmentation, every batch of speaker embeddings, the finished diarization and"
        " Whisper's segments batch by batch as it goes (docs/service.md, Jobs), and the resumed run picks"
        " them up; the pipeline works ahead by up to one window (diarization of window k+1 overlaps the"
        " transcription of window k), so that is two windows' work in progress. The resume row names"
        " what the kill left and the resumed run did not do again.",
    ]
    return lines


# ---------------------------------------------------------------- main


def machine() -> dict:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    os_name = platform.platform()
    if Path("/etc/os-release").is_file():
        fields = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
        os_name = fields.get("PRETTY_NAME", os_name).strip('"')
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem_kb / 1024 / 1024),
        "os": os_name,
        "docker": docker("version", "--format", "{{.Server.Version}}").stdout.strip(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs/benchmarks")
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 5, 30, 90])
    parser.add_argument("--baseline-minutes", type=float, nargs="*", default=[1, 5, 30, 90])
    parser.add_argument("--http-minutes", type=float, default=5)
    parser.add_argument("--http-runs", type=int, default=3)
    parser.add_argument("--jobs-minutes", type=float, default=30, help="the recording the job runs use")
    parser.add_argument("--only-jobs", action="store_true", help="re-measure the Jobs section into service.json")
    parser.add_argument("--image", default=os.environ.get("SERVICE_IMAGE", "spark-inference/whisperx-asr:cpu"))
    parser.add_argument("--bundle", type=Path, default=Path(os.environ.get("SPARK_MODELS_DIR", CACHE / "models")))
    parser.add_argument("--fixtures", type=Path, default=Path(os.environ.get("SPARK_FIXTURES_DIR", CACHE / "fixtures")))
    parser.add_argument("--work", type=Path, default=CACHE / "bench")
    parser.add_argument("--report-only", action="store_true", help="rewrite service.md and .png from service.json")
    parser.add_argument("--note", action="append", default=[], help="a line for the report's notes")
    parser.add_argument("--only-http", action="store_true", help="re-measure HTTP vs in-process into service.json")
    parser.add_argument("--only-voices", action="store_true", help="re-measure known speakers into service.json")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="compare service variants instead of benchmarking: NAME[:KEY=VALUE,...][:app=DIR], e.g."
        " 'arena2:MALLOC_ARENA_MAX=2' or 'before:app=/tmp/app'; uses the first --minutes and --runs",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of each --variant")
    parser.add_argument(
        "--reuse-baseline", action="store_true", help="take the baseline runs from the existing service.json"
    )
    args = parser.parse_args()
    if args.report_only:
        results = json.loads((args.out / "service.json").read_text())
        results["notes"] = notes(results) + args.note
        (args.out / "service.json").write_text(json.dumps(results, indent=1) + "\n")
        plot(results, args.out / "service.png")
        report(results, args.out / "service.md")
        return 0
    began = time.time()
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)

    # pyannote's sample ships in the image's pyannote-audio wheel
    sample_dir = args.work / "pyannote-sample"
    if not (sample_dir / "sample.wav").is_file():
        sample_dir.mkdir(exist_ok=True)
        tmp = f"svc-bench-sample-{uuid.uuid4().hex[:6]}"
        docker("create", "--name", tmp, args.image)
        try:
            site = "/opt/venv/lib/python3.11/site-packages/pyannote/audio/sample/."
            docker("cp", f"{tmp}:{site}", str(sample_dir))
        finally:
            docker("rm", "-f", tmp, check=False)
    dialogue_turns = rttm_turns(args.fixtures / "dialogue.rttm")
    dialogue_text = " ".join(text for *_, text in dialogue_lines(args.fixtures))
    sample_turns = rttm_turns(sample_dir / "sample.rttm")
    sample_text = " ".join(text for *_, text in stm_lines(sample_dir / "sample.stm"))
    blocks = reference_blocks(args.fixtures, sample_dir)
    lengths = sorted(set(args.minutes) | {args.http_minutes, args.jobs_minutes})
    if args.variant:
        compare(args, mix(args.minutes[0], blocks, args.work))
        return 0
    recordings = {m: mix(m, blocks, args.work) for m in lengths}
    if args.only_jobs:
        return remeasure(args, "jobs", {}, lambda service: measure_jobs(args, service, recordings))
    if args.only_voices:
        return remeasure(args, "voices", THRESHOLD_OFF, lambda service: measure_voices(service, args.work / "voices"))
    if args.only_http:
        results = json.loads((args.out / "service.json").read_text())
        service = Service(args.image, args.bundle, args.work)
        try:
            results["http"] = http_overhead(service, recordings[args.http_minutes], args.http_minutes, args.http_runs)
        finally:
            service.remove()
        print(f"http vs in-process: {results['http']}", flush=True)
        results["notes"] = notes(results) + args.note
        (args.out / "service.json").write_text(json.dumps(results, indent=1) + "\n")
        plot(results, args.out / "service.png")
        report(results, args.out / "service.md")
        return 0

    results = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "image": args.image,
        "lengths": [],
        "quality": [],
        "notes": [],
    }
    service = Service(args.image, args.bundle, args.work)
    try:
        # accuracy on the two short references
        for name, path, turns, text in (
            ("espeak dialogue (38.9 s)", args.fixtures / "dialogue.wav", dialogue_turns, dialogue_text),
            ("pyannote sample.wav (30 s)", sample_dir / "sample.wav", sample_turns, sample_text),
        ):
            result, *_ = service.transcribe(path)
            results["quality"].append(
                {
                    "file": name,
                    "wer": wer(text, result["text"]),
                    "der": der(turns, hypothesis_turns(result), result["duration"]),
                    "speakers": len(result["speakers"]),
                    "reference_speakers": len({t[2] for t in turns}),
                }
            )
            print(f"quality {name}: {results['quality'][-1]}", flush=True)

        for minutes in sorted(args.minutes):
            rec = recordings[minutes]
            result, wall, peak, samples = service.transcribe(rec["path"])
            entry = {
                "minutes": minutes,
                "load_average": os.getloadavg()[0],  # other jobs on the machine skew the seconds
                "service": {
                    "wall_s": round(wall, 2),
                    "rtf": wall / result["duration"],
                    "timings": result["timings"],
                    "peak_rss_mb": peak,
                    "speakers": len(result["speakers"]),
                    "word_speaker_accuracy": word_speaker_accuracy(result["segments"], rec["turns"]),
                    "wer": wer(rec["text"], result["text"]),
                    "rss_samples": samples[:: max(1, len(samples) // 200)],
                },
            }
            results["lengths"].append(entry)
            print(f"service {minutes:g} min: {json.dumps(entry['service'])[:400]}", flush=True)

        results["http"] = http_overhead(service, recordings[args.http_minutes], args.http_minutes, args.http_runs)
        print(f"http vs in-process: {results['http']}", flush=True)
        results["jobs"] = measure_jobs(args, service, recordings)
    finally:
        service.remove()
    voices_service = Service(args.image, args.bundle, args.work, env=THRESHOLD_OFF)
    try:
        results["voices"] = measure_voices(voices_service, args.work / "voices")
    finally:
        voices_service.remove()

    previous = {}
    if args.reuse_baseline and (args.out / "service.json").is_file():
        old = json.loads((args.out / "service.json").read_text())
        previous = {e["minutes"]: e["baseline"] for e in old["lengths"] if e.get("baseline")}
        results["baseline_from"] = old["date"]
    for entry in results["lengths"]:
        if entry["minutes"] in previous:
            entry["baseline"] = previous[entry["minutes"]]
            entry["wall_ratio"] = entry["service"]["wall_s"] / entry["baseline"]["timings"]["total_s"]
        elif entry["minutes"] in args.baseline_minutes:
            b = baseline(args.image, args.bundle, args.work, recordings[entry["minutes"]]["path"])
            b["rtf"] = b["timings"]["total_s"] / b["duration_s"]
            b["word_speaker_accuracy"] = None
            b["load_average"] = os.getloadavg()[0]
            entry["baseline"] = {k: v for k, v in b.items() if k != "segments"}
            entry["wall_ratio"] = entry["service"]["wall_s"] / b["timings"]["total_s"]
            print(f"baseline {entry['minutes']:g} min: {entry['baseline']}", flush=True)

    peaks = {e["minutes"]: e["service"]["peak_rss_mb"] for e in results["lengths"]}
    results["goals"] = {
        "peak_5": peaks.get(5),
        "peak_90": peaks.get(90),
        "peak_ratio": peaks[90] / peaks[5] if 5 in peaks and 90 in peaks else None,
    }
    results["elapsed_min"] = (time.time() - began) / 60
    results["notes"] = notes(results) + args.note
    (args.out / "service.json").write_text(json.dumps(results, indent=1) + "\n")
    plot(results, args.out / "service.png")
    report(results, args.out / "service.md")
    print(f"wrote {args.out / 'service.md'}")
    return 0


def measure_jobs(args, service: Service, recordings: dict) -> dict:
    """The Jobs section, on `service` (default settings)."""
    long = recordings[args.jobs_minutes]["path"]
    out = jobs.benchmark(service, long, recordings[args.http_minutes]["path"], args.http_runs)
    out.update(minutes=args.jobs_minutes, short_minutes=args.http_minutes, machine=machine(),
               date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"))  # fmt: skip
    return out


def remeasure(args, key: str, env: dict[str, str], measure) -> int:
    """One section of service.json measured again on a fresh container, the report rewritten."""
    results = json.loads((args.out / "service.json").read_text())
    service = Service(args.image, args.bundle, args.work, env=env)
    try:
        results[key] = measure(service)
    finally:
        service.remove()
    results["notes"] = notes(results) + args.note
    (args.out / "service.json").write_text(json.dumps(results, indent=1) + "\n")
    report(results, args.out / "service.md")
    return 0


def measure_voices(service: Service, work: Path) -> dict:
    """The Known speakers section (scripts/bench/voices.py) and the threshold's precision and recall."""
    out = voices.benchmark(service.url, work)
    field = "from app.config import Settings; print(Settings.model_fields['whisperx_known_speaker_threshold'].default)"
    default = float(docker("exec", service.name, "python", "-c", field).stdout.strip())
    out["thresholds"] = [voices.at_threshold(out, t) for t in sorted({0.5, 0.6, 0.7, 0.8, default, 0.9})]
    out.update(default=default, pool=len(voices.POOL), machine=machine(),
               date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"))  # fmt: skip
    return out


def notes(results: dict) -> list[str]:
    out = [
        "Both pipelines use every core: CTranslate2 and torch threads = cores. The service overlaps its two"
        " threads (VAD + diarization, transcription); on 2 cores they compete, on a GPU host they mostly wait"
        " on different devices.",
        "The service does more work than the baseline: it times every word (one extra cross-attention pass"
        " per batch, the 'word times' column) where the baseline keeps only segment times.",
        "Where the service gains: one segmentation pass instead of two (whisperX's VAD is a second pyannote"
        " segmentation model), a 25 % segmentation step instead of 10 % (2.5x fewer chunks to embed),"
        " inactive (chunk, speaker) pairs skipped instead of embedded, and diarization overlapped with"
        " transcription.",
    ]
    for e in results["lengths"]:
        if e.get("wall_ratio") is not None and e["wall_ratio"] > GOAL_WALL_RATIO:
            out.append(
                f"The {e['minutes']:g}-minute run misses the {GOAL_WALL_RATIO}x speed goal by"
                f" {e['wall_ratio'] - GOAL_WALL_RATIO:.2f}x."
            )
    g = results["goals"]
    if g.get("peak_ratio") is not None and g["peak_ratio"] > GOAL_PEAK_RATIO:
        out.append(f"The memory goal is missed: the 90-minute peak is {g['peak_ratio']:.2f}x the 5-minute one.")
    h = results.get("http")
    if h and h["overhead"] > GOAL_HTTP_OVERHEAD:
        out.append(
            f"End to end, HTTP runs took {h['overhead']:+.1%} longer than in-process runs (HTTP {h['http_all']} s,"
            f" in-process {h['inprocess_all']} s), over the {GOAL_HTTP_OVERHEAD:.0%} goal. The HTTP layer itself"
            " (upload, multipart parsing, one copy of the upload, the JSON response) is the 'client wall minus"
            " pipeline' row, well under the goal; the gap is in the pipeline's own seconds inside the service"
            " process."
            + (
                " The runs of each kind are within"
                f" {max(spread(h['http_all']), spread(h['inprocess_all'])):.0%} of each other, so the gap is real"
                " and not explained yet; the service runs the pipeline in a worker thread beside its event loop"
                " and the benchmark's memory sampling, on the same 2 cores, where the in-process script runs it"
                " alone in its main thread."
                if max(spread(h["http_all"]), spread(h["inprocess_all"])) < h["overhead"] / 2
                else " Identical runs vary more than that on these 2 shared cores, so this run cannot resolve"
                " a 3 % effect end to end."
            )
        )
    return out


def spread(runs: list[float]) -> float:
    """(slowest - fastest) / fastest."""
    return (max(runs) - min(runs)) / min(runs)


if __name__ == "__main__":
    sys.exit(main())
