"""`make eval-sweep`: the diarization settings chosen on the development split, with their effect on the test split.

Builds the harness's recordings (scripts/eval/run.py), runs scripts/eval/grid.py inside the service image on
them (segmentation step x clustering: agglomerative linkage x threshold x minimum cluster size, and spectral
x merge threshold x neighbours kept; then the shortest gap kept in a turn and the shortest turn kept
for the best three, then the cross-window linker's threshold on the same recordings cut into short windows),
and keeps the result in docs/benchmarks/quality.json under "sweep"; the next `make eval` prints it in quality.md.
The setting is chosen by the development split's turn-level DER (collar 0.25, overlap scored) alone; the
test split's figures are reported, never used to choose.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid

from scripts.bench_service import REPO, docker, machine
from scripts.eval.grid import BEFORE, KEYS
from scripts.eval.run import arguments, recordings


def pooled(scores: dict, names: list[str], turns: str, collar: str = "c25") -> dict:
    total = sum(scores[n][turns][collar]["scored_s"] for n in names)
    if total == 0:
        return dict.fromkeys(("der", "missed", "false_alarm", "confusion"), 0.0)
    return {p: sum(scores[n][turns][collar][p] * scores[n][turns][collar]["scored_s"] for n in names) / total
            for p in ("der", "missed", "false_alarm", "confusion")}  # fmt: skip


def groups_of(recs: list[dict]) -> dict[str, list[str]]:
    out = {}
    for s in ("dev", "test"):
        out[f"{s} real"] = [r["name"] for r in recs if r["split"] == s and r["real"]]
        out[f"{s} synthesised"] = [r["name"] for r in recs if r["split"] == s and not r["real"]]
        out[f"{s} all"] = [r["name"] for r in recs if r["split"] == s]
    return out


def scored(scores: dict, groups: dict[str, list[str]], reference: dict[str, int]) -> dict:
    row = {}
    for turns in ("overlapping", "exclusive"):
        for group, names in groups.items():
            row[f"{group} {turns}"] = pooled(scores, names, turns)
    parts = [row[f"dev {kind} overlapping"]["der"] for kind in ("real", "synthesised") if groups[f"dev {kind}"]]
    row["dev score"] = sum(parts) / len(parts)  # as grid.py's dev_score chooses
    row["speaker count error"] = {s: [abs(scores[n]["overlapping"]["speakers"] - reference[n])
                                      for n in groups[f"{s} all"]] for s in ("dev", "test")}  # fmt: skip
    return row


def within_goals(row: dict, recs: list[dict]) -> bool:
    """The issue's speaker-count goal on the development split: off by at most 1 on every real recording of 2-4
    speakers (the order of `scored`'s lists is that of the recordings)."""
    dev = [r for r in recs if r["split"] == "dev"]
    return all(off <= 1 for r, off in zip(dev, row["speaker count error"]["dev"], strict=True)
               if r["real"] and 2 <= r["speakers"] <= 4)  # fmt: skip


def summary(raw: dict, recs: list[dict]) -> dict:
    """Pooled DER per setting, split and kind of recording (real, synthesised, all); the linker's thresholds; the
    best development score among the settings that keep the speaker-count goal at the service's segmentation step
    (a finer step multiplies the diarization time, which the issue allows as a setting, not as the default)."""
    reference = {r["name"]: r["speakers"] for r in [*recs, *raw["linked"]]}
    rows = [{k: e[k] for k in KEYS} | scored(e["scores"], groups_of(recs), reference) for e in raw["grid"]]
    links = [{"window_s": e["window_s"], "link_threshold": e["link_threshold"], "windows": e["windows"]}
             | scored(e["scores"], groups_of(raw["linked"]), reference) for e in raw["links"]]  # fmt: skip
    eligible = [r for r in rows if r["step"] == raw["default"]["step"] and within_goals(r, recs)]
    kept = {k: raw[k] for k in ("chosen", "default", "windowing", "linked", "embedding_cost_s")}
    best = min(eligible, key=lambda r: r["dev score"], default=None)
    within = {k: best[k] for k in KEYS} if best else None
    return {"rows": rows, "links": links, "before": BEFORE, "within_goals": within} | kept


def main() -> int:
    args = arguments(__doc__, REPO / "docs/benchmarks/quality.json").parse_args()
    began = time.time()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    recs = recordings(args.image, work)
    spec = {"root": "/data", "recordings": [{k: r[k] for k in ("name", "split", "real", "turns", "duration")}
                                            | {"path": r["path"].name} for r in recs]}  # fmt: skip
    (work / "sweep-input.json").write_text(json.dumps(spec))
    proc = docker(
        "run", "--rm", "--name", f"eval-sweep-{uuid.uuid4().hex[:6]}", "-e", "PYTHONPATH=/srv:/",
        "-v", f"{args.models.resolve()}:/models:ro", "-v", f"{REPO / 'scripts'}:/scripts:ro", "-v", f"{work}:/data:ro",
        "-v", f"{REPO / 'whisperx_container/app'}:/srv/app:ro",  # the tree's pipeline code, not the image's
        args.image, "python", "/scripts/eval/grid.py", "/data/sweep-input.json", "/models", check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"the grid failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    raw = json.loads(proc.stdout.strip().splitlines()[-1])
    (work / "sweep-raw.json").write_text(json.dumps(raw))
    result = summary(raw, recs) | {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(), "image": args.image,
        "elapsed_min": round((time.time() - began) / 60, 1),
    }  # fmt: skip
    saved = json.loads(args.out.read_text()) if args.out.is_file() else {}
    result["notes"] = saved.get("sweep", {}).get("notes", [])  # written by hand after reading the result
    saved["sweep"] = result
    args.out.write_text(json.dumps(saved, indent=1) + "\n")
    print(json.dumps(result["chosen"]), f"{result['elapsed_min']} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
