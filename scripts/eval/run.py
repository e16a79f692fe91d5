"""`make eval`: diarization quality, the service beside the plain whisperX pipeline, on every labelled recording
the project can make or obtain without a model hub. Writes docs/benchmarks/quality.md and quality.json.

Recordings: the synthesised meetings of scripts/eval/meetings.py (3-6 voices, overlap, back-channels,
reverberation, noise; seeds 0-9 the development split, 10-14 the test split) and the real ones packages carry
(scripts/eval/packaged.py: pyannote's sample and pyAudioAnalysis's commands in the development split, its
radio phone-in in the test split). The test data inside pyannote-audio's source distribution is reserved for
checking this work independently and is not used. Each recording's source, licence and sha256 are in the
manifest of quality.json. The settings were chosen by `make eval-sweep` (scripts/eval/sweep.py), whose
result quality.json keeps and quality.md prints.

For each: the service's diarized transcript (`transcribe-with-speakers`, tiny.en on the CPU, the offline
bundle) scored twice, by its speaker turns (`turns`) and by its speaker-labelled segments (what a reader
of the transcript gets); and scripts/bench/baseline.py (whisperX's VAD and batched transcription, then
pyannote's SpeakerDiarization over the whole file on the same checkpoints, then assign_word_speakers)
scored the same two ways. DER in four variants (collar 0 / 0.25 s, overlap scored / excluded) with its
parts, the speaker-count error, the words given to the right speaker, and WER. Then the word-to-speaker
assignment rules of scripts/eval/assign.py on the same words and turns.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

import httpx

from scripts.bench.scoring import hypothesis_turns, wer, word_speaker_accuracy
from scripts.bench_service import REPO, Service, baseline, docker, machine
from scripts.eval import meetings, packaged
from scripts.eval.assign import RULES
from scripts.eval.metrics import VARIANTS, all_variants
from scripts.model_bundle import sha256

MAIN = "collar 0.25, overlap scored"  # the report's headline variant (the measurement)


SPLIT = {
    "pyannote-sample": "dev",
    "paa-commands": "dev",
    "voxconverse-aepyx": "dev",
    "paa-radio": "test",
    "dihard-eval-0001": "test",
}  # the real recordings' splits


def recordings(image: str, work: Path) -> list[dict]:
    out = [meetings.build(seed, work) | {"real": False} for seed in (*meetings.DEV, *meetings.TEST)]
    for rec in [
        packaged.pyannote_sample(image, work, docker),
        *packaged.pyaudioanalysis(work),
        packaged.voxconverse(work),
        packaged.dihard(work),
    ]:
        out.append(rec | {"split": SPLIT[rec["name"]]})
    for r in out:
        r["sha256"] = sha256(r["path"])
        r["duration"] = round(packaged.duration(r["path"]), 2)
    return out


def scored(rec: dict, turns: list, segments: list[dict], text: str) -> dict:
    reference = [tuple(t) for t in rec["turns"]]
    found = len({t[2] for t in turns})
    return {
        "turns": all_variants(reference, [tuple(t) for t in turns], rec["duration"]),
        "segments": all_variants(reference, hypothesis_turns({"segments": segments}), rec["duration"]),
        "speakers": found,
        "speaker_count_error": abs(found - rec["speakers"]),
        "words_to_right_speaker": word_speaker_accuracy(segments, reference) if segments else 0.0,
        "wer": wer(rec["text"], text) if rec["text"] else None,  # the pyAudioAnalysis ones have no transcript
    }


def evaluate(image: str, bundle: Path, work: Path) -> dict:
    """Every recording through the service and through the baseline."""
    recs = recordings(image, work)
    service = Service(image, bundle, work)
    try:
        for rec in recs:
            body, wall, _, _ = service.transcribe(rec["path"])
            turns = [(t["start"], t["end"], t["speaker"]) for t in body["turns"]]
            rec["service"] = scored(rec, turns, body["segments"], body["text"]) | {"wall_s": round(wall, 2)}
            rec["assignment"] = assignment(service, rec, turns)
    finally:
        service.remove()
    for rec in recs:
        began = time.perf_counter()
        out = baseline(image, bundle, work, rec["path"])
        segments = [dict(s, words=spread(s)) for s in out["segments"]]
        rec["whisperx"] = scored(rec, out["turns"], segments, " ".join(s["text"] for s in out["segments"])) | {
            "wall_s": round(time.perf_counter() - began, 2)
        }
    return {"recordings": recs}


def assignment(service: Service, rec: dict, turns: list) -> dict:
    """Words to the right speaker by each rule of scripts/eval/assign.py: the recording's words without
    diarization (Whisper's segments and word times), given speakers from the service's turns."""
    form = {"response_format": "verbose_json", "timestamp_granularities[]": ["word", "segment"]}
    with rec["path"].open("rb") as f:
        response = httpx.post(f"{service.url}/v1/audio/transcriptions", files={"file": (rec["path"].name, f)},
                              data=form, timeout=7200)  # fmt: skip
    response.raise_for_status()
    plain, reference = response.json(), [tuple(t) for t in rec["turns"]]
    out = {rule: word_speaker_accuracy(assign(plain["segments"], plain["words"], turns), reference)
           for rule, assign in RULES.items()}  # fmt: skip
    return out | {"words": len(plain["words"])}


def spread(segment: dict) -> list[dict]:
    """Word times for a segment that has none (the baseline keeps segment times only): spread evenly."""
    said = segment["text"].split()
    step = (segment["end"] - segment["start"]) / max(len(said), 1)
    return [{"word": w, "start": segment["start"] + i * step, "end": segment["start"] + (i + 1) * step,
             "speaker": segment["speaker"]} for i, w in enumerate(said)]  # fmt: skip


def pooled(recs: list[dict], system: str, level: str, variant: str) -> dict:
    """A split's DER: every recording's errors over all of their reference speech (not a mean of rates)."""
    total = sum(r[system][level][variant]["scored_s"] for r in recs)
    parts = ("der", "missed", "false_alarm", "confusion")
    if total == 0:  # no recording, or no reference speech in them: nothing was missed or confused
        return dict.fromkeys(parts, 0.0)
    return {p: sum(r[system][level][variant][p] * r[system][level][variant]["scored_s"] for r in recs) / total
            for p in parts}  # fmt: skip


def cell(d: dict) -> str:
    return f"{d['der']:.1%} ({d['missed']:.1%} / {d['false_alarm']:.1%} / {d['confusion']:.1%})"


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def split_tables(part: list[dict]) -> list[str]:
    lines = ["| variant | service turns | service transcript | whisperX turns | whisperX transcript |",
             "|---|---|---|---|---|"]  # fmt: skip
    for variant in VARIANTS:
        systems = [(s, lvl) for s in ("service", "whisperx") for lvl in ("turns", "segments")]
        lines.append(f"| {variant} | " + " | ".join(cell(pooled(part, s, lvl, variant)) for s, lvl in systems) + " |")
    return lines


def goals(test: list[dict], which: str) -> list[str]:
    ours, theirs = pooled(test, "service", "turns", MAIN)["der"], pooled(test, "whisperx", "turns", MAIN)["der"]
    missed = pooled(test, "service", "segments", "collar 0.25, overlap excluded")["missed"]
    counts = [r["service"]["speaker_count_error"] for r in test if 2 <= r["speakers"] <= 4]
    return [
        f"| turn-level DER at least 5 points below whisperX's ({which}) | {ours:.1%} against {theirs:.1%}"
        f" ({(theirs - ours) * 100:+.1f} points) | {'met' if theirs - ours >= 0.05 else 'not met'} |",
        f"| transcript-level missed speech outside overlap <= 10 % ({which}) | {missed:.1%} |"
        f" {'met' if missed <= 0.10 else 'not met'} |",
        f"| speaker-count error <= 1 on every 2-4 speaker recording ({which}) | {counts} |"
        f" {'met' if counts and max(counts) <= 1 else 'not met'} |",
    ]


def report(results: dict, out: Path) -> None:
    recs, m = results["recordings"], results["machine"]
    lines = [
        "# Diarization quality",
        "",
        f"Measured {results['date']} on {m['cpus']} CPU cores ({m['cpu']}), no GPU. Image `{results['image']}`,"
        " offline bundle, `WHISPER_MODEL=tiny.en` (int8), segmentation-3.0 + CAM++ for both pipelines. Command:"
        f" `make eval` (`scripts/eval/run.py`), {results['elapsed_min']:.0f} minutes in all.",
        "",
        "DER cells: total (missed / false alarm / confusion), pooled over a split's recordings. *turns*: the"
        " diarizer's speaker turns (the service's `turns`, overlapping where it heard two people; whisperX:"
        " pyannote's output); *transcript*: the speaker-labelled segments a reader gets, one speaker each."
        " whisperX is the plain sequential pipeline on the same weights with speaker-diarization-3.1's"
        " hyperparameters (`scripts/bench/baseline.py`; it keeps segment times only, so for the words given to"
        " the right speaker its words are spread evenly over their segment).",
        "",
        "## Recordings",
        "",
        "| recording | split | real | speakers | length | source | licence | sha256 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in recs:
        lines.append(f"| {r['name']} | {r['split']} | {'yes' if r['real'] else 'no'} | {r['speakers']} |"
                     f" {r['duration']:.0f} s | {r['source']} | {r['licence']} | `{r['sha256'][:16]}` |")  # fmt: skip
    lines += ["", "The real recordings are every multi-speaker recording with reference turns found in a package"
              " this project can install (PyPI, Debian, npm; over a hundred packages searched): pyannote's sample,"
              " pyAudioAnalysis 0.1.3's two diarization examples, VoxConverse's `aepyx` (audio in silero-vad's"
              " sdist, reference committed in scripts/eval/references) and a DIHARD III file in pyannotebook's"
              " sdist (scripts/eval/packaged.py). The synthesised meetings stand in for the 3-6 person meetings"
              " they cannot.", ""]  # fmt: skip
    for split in ("dev", "test"):
        if not (part := [r for r in recs if r["split"] == split]):
            continue
        lines += [f"## {split.capitalize()} split ({len(part)} recordings)", "", *split_tables(part), ""]
        if real := [r for r in part if r["real"]]:
            lines += [f"Real recordings only ({', '.join(r['name'] for r in real)}):", ""]
            lines += [*split_tables(real), ""]
    lines += ["## Per recording", "",
              "| recording | speakers found (service / whisperX / reference) | words to right speaker | WER |"
              f" service turns DER ({MAIN}) | whisperX turns DER |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for r in recs:
        s, w = r["service"], r["whisperx"]
        lines.append(
            f"| {r['name']} | {s['speakers']} / {w['speakers']} / {r['speakers']} |"
            f" {s['words_to_right_speaker']:.0%} / {w['words_to_right_speaker']:.0%} |"
            f" {percent(s['wer'])} / {percent(w['wer'])} |"
            f" {s['turns'][MAIN]['der']:.1%} | {w['turns'][MAIN]['der']:.1%} |"
        )
    lines += assignment_report(recs)
    test = [r for r in recs if r["split"] == "test"]
    lines += ["", "## Goals (test split)", "", "| goal | measured | |", "|---|---|---|"] if test else [""]
    if real := [r for r in test if r["real"]]:
        lines += goals(real, "real recordings")
    lines += [*goals(test, "all"), ""] if test else []
    if real:
        seconds = sum(r["duration"] for r in real)
        lines += [f"The real part of the test split is {len(real)} recording(s), {seconds:.0f} s in all. Both pipelines"
                  " run pyannote's pipeline on the same weights; their turns differ by the service's clustering"
                  " (spectral, where whisperX's is agglomerative) and settings (Tuning, below).", ""]  # fmt: skip
    if results.get("sweep"):
        lines += sweep_report(results["sweep"])
    out.write_text("\n".join(lines) + "\n")


def assignment_report(recs: list[dict]) -> list[str]:
    """Words given to the right speaker by each assignment rule, pooled over a split's words."""
    recs = [r for r in recs if r.get("assignment")]
    if not recs:
        return []
    groups = [(f"{s}, {'real' if real else 'synthesised'}", [r for r in recs if r["split"] == s and r["real"] == real])
              for s in ("dev", "test") for real in (True, False)]  # fmt: skip
    lines = ["", "## Words near turn boundaries", "",
             "Each recording transcribed once more without diarization (`/v1/audio/transcriptions`, Whisper's"
             " segments and word times); its words given speakers from the service's `turns` by each rule"
             " (`scripts/eval/assign.py`), so the figures differ by the rule alone. Words to the right speaker,"
             " pooled over the words of each part:", "",
             "| rule | " + " | ".join(name for name, _ in groups) + " |", "|---|" + "---|" * len(groups)]  # fmt: skip
    for rule in RULES:
        shares = []
        for _, part in groups:
            words = sum(r["assignment"]["words"] for r in part)
            shares.append(
                sum(r["assignment"][rule] * r["assignment"]["words"] for r in part) / words if words else None
            )
        lines.append(f"| {rule} | " + " | ".join(percent(s) for s in shares) + " |")
    return lines


def setting_name(row: dict) -> str:
    if row["method"] == "spectral":
        clustering = (f"spectral, merged above cosine {row['threshold']:g}, neighbours up to"
                      f" {row['neighbours']:.0%}")  # fmt: skip
    else:
        clustering = f"{row['method']}, threshold {row['threshold']:g}, min cluster {row['min_cluster_size']}"
    shortest = f", min turn {row['min_duration_on']:g} s" if row.get("min_duration_on") else ""
    return f"step {row['step']:g}, {clustering}, min gap {row['min_duration_off']:g} s{shortest}"


def sweep_report(sweep: dict) -> list[str]:
    """The settings grid of scripts/eval/sweep.py: what was chosen on the development split, and each knob's effect."""
    rows, chosen, m = sweep["rows"], sweep["chosen"], sweep["machine"]

    def cells(row: dict) -> str:
        out = [cell(row[f"{s} {kind} overlapping"]) for s in ("dev", "test") for kind in ("real", "synthesised")]
        return " | ".join(out) + f" | {row['speaker count error']['dev']} |"

    def key(row: dict) -> tuple:
        return tuple(row.get(k) for k in ("step", "method", "threshold", "min_cluster_size", "neighbours",
                                          "min_duration_off", "min_duration_on"))  # fmt: skip

    by_key = {key(r): r for r in rows}
    head = "| dev, real | dev, synthesised | test, real | test, synthesised | speakers off by (dev) |"
    lines = [
        "## Tuning (development split)",
        "",
        f"`make eval-sweep` (`scripts/eval/sweep.py`, {sweep['date']}, {m['cpus']} cores, {sweep['elapsed_min']:.0f}"
        f" min): {len(rows)} diarization settings on every recording, scored by their overlapping turns (collar"
        " 0.25, overlap scored). A setting is chosen on the development split alone, by the mean of its real"
        " recordings' pooled DER and its synthesised meetings' (the real minute weighs as much as all the espeak"
        " voices); the test split is shown, never used to choose.",
        "",
        f"| setting {head}",
        "|---|---|---|---|---|---|",
        f"| best on dev: {setting_name(chosen)} | {cells(by_key[key(chosen)])}",
    ]
    if within := sweep.get("within_goals"):
        lines.append(
            f"| best on dev that keeps the speaker-count goal (every real 2-4 speaker dev recording off by"
            f" at most 1) at the service's step: {setting_name(within)} | {cells(by_key[key(within)])}"
        )
    for label, which in (("**the default when swept**", sweep["default"]), ("before the sweep", sweep["before"])):
        if key(which) in by_key:
            lines.append(f"| {label}: {setting_name(which)} | {cells(by_key[key(which)])}")
    lines += ["", "Each knob on its own: the best development score with that value (the shortest gap and the"
              " shortest turn other than 0 were tried on the best three settings, the default and the one before"
              " the sweep; every other knob on the whole grid).", "",
              "| knob | value | best dev score (mean of real and synthesised DER) |", "|---|---|---|"]  # fmt: skip
    spectral = [r for r in rows if r["method"] == "spectral"]
    agglomerative = [r for r in rows if r["method"] != "spectral"]
    for knob, among, name in (("step", rows, "step"), ("method", rows, "method"),
                              ("threshold", agglomerative, "threshold (agglomerative: centroid distance)"),
                              ("min_cluster_size", agglomerative, "min_cluster_size (agglomerative)"),
                              ("threshold", spectral, "merge (spectral: cosine similarity)"),
                              ("neighbours", spectral, "neighbours (spectral)"),
                              ("min_duration_off", rows, "min_duration_off (shortest gap kept in a turn)"),
                              ("min_duration_on", rows, "min_duration_on (shortest turn kept)")):  # fmt: skip
        for value in sorted({r[knob] for r in among if r.get(knob) is not None}):
            best = min(r["dev score"] for r in among if r[knob] == value)
            lines.append(f"| {name} | {value:g} | {best:.1%} |" if not isinstance(value, str) else
                         f"| {name} | {value} | {best:.1%} |")  # fmt: skip
    default = sweep["default"]
    reported = by_key.get(key(default))
    words = by_key.get(key(default | {"min_duration_off": 0.0}))  # the exclusive turns keep every gap
    if reported and words:
        lines += ["", "The default's reported turns (overlapping, short gaps filled) against the exclusive turns its"
                  f" words are given to (development split, all recordings): {cell(reported['dev all overlapping'])}"
                  f" against {cell(words['dev all exclusive'])}."]  # fmt: skip
    lines.append("")
    linked = ", ".join(f"{r['name']} ({r['duration'] / 60:.1f} min, {r['speakers']} speakers)" for r in sweep["linked"])
    lines += ["Windows and the cross-window linker, with the default setting when swept inside each window: every"
              " split's synthesised meetings joined into one recording (voices recur across meetings) and the real"
              f" recordings ({linked}) diarized in windows of each length (a recording up to 1.25 windows long is"
              " one window), linked at each threshold.", "",
              f"| window, link threshold {head}", "|---|---|---|---|---|---|"]  # fmt: skip
    best = min(sweep["links"], key=lambda r: r["dev score"])
    for link in sweep["links"]:
        label = f"{link['window_s']:g} s, {link['link_threshold']:g}"
        if link is best:
            label += " (best on dev)"
        if (link["window_s"], link["link_threshold"]) == tuple(sweep["windowing"].values()):
            label = f"**{label}: the default when swept**"
        lines.append(f"| {label} | {cells(link)}")
    lines += [""] + [f"- {n}" for n in sweep.get("notes", [])]
    return lines


def arguments(doc: str, out: Path) -> argparse.ArgumentParser:
    """The options `make eval` and `make eval-sweep` share."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default="spark-inference/whisperx-asr:cpu")
    parser.add_argument("--models", type=Path, default=Path.home() / ".cache/spark-inference/models")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache/spark-inference/eval")
    parser.add_argument("--out", type=Path, default=out)
    return parser


def main() -> int:
    parser = arguments(__doc__, REPO / "docs/benchmarks")
    parser.add_argument("--report-only", action="store_true", help="rewrite quality.md from quality.json")
    args = parser.parse_args()
    saved = args.out / "quality.json"
    if args.report_only:
        report(json.loads(saved.read_text()), args.out / "quality.md")
        return 0
    began = time.time()
    args.work.mkdir(parents=True, exist_ok=True)
    results = evaluate(args.image, args.models.resolve(), args.work.resolve())
    for rec in results["recordings"]:
        rec["path"] = rec["path"].name
    results |= {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
                "image": args.image, "elapsed_min": (time.time() - began) / 60}  # fmt: skip
    if saved.is_file() and "sweep" in (kept := json.loads(saved.read_text())):  # the sweep that chose the settings
        results["sweep"] = kept["sweep"]
    saved.write_text(json.dumps(results, indent=1) + "\n")
    report(results, args.out / "quality.md")
    print(f"wrote {args.out / 'quality.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
