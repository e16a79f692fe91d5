"""The transcript in each response_format of OpenAI's audio API, plus the diarized transcript."""

from __future__ import annotations

from fastapi.responses import JSONResponse, PlainTextResponse, Response

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json", "diarized_json")


def _stamp(seconds: float, sep: str) -> str:
    ms = round(max(seconds, 0.0) * 1000)
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _cue_text(seg: dict) -> str:
    return f"[{seg['speaker']}] {seg['text']}" if seg.get("speaker") else seg["text"]


def srt(result: dict) -> str:
    cues = [
        f"{i}\n{_stamp(seg['start'], ',')} --> {_stamp(seg['end'], ',')}\n{_cue_text(seg)}\n"
        for i, seg in enumerate(result["segments"], 1)
    ]
    return "\n".join(cues)


def vtt(result: dict) -> str:
    cues = [
        f"{_stamp(seg['start'], '.')} --> {_stamp(seg['end'], '.')}\n"
        + (f"<v {seg['speaker']}>{seg['text']}" if seg.get("speaker") else seg["text"])
        + "\n"
        for seg in result["segments"]
    ]
    return "WEBVTT\n\n" + "\n".join(cues)


def verbose_json(result: dict, granularities: set[str], temperature: float) -> dict:
    body = {
        "task": "transcribe",
        "language": result["language"],
        "duration": result["duration"],
        "text": result["text"],
    }
    if "segment" in granularities or not granularities:
        body["segments"] = [
            {
                "id": seg["id"],
                "seek": 0,
                "start": seg["start"],
                "end": seg["end"],
                "text": seg["text"],
                "tokens": [],
                "temperature": temperature,
                "avg_logprob": seg.get("avg_logprob") or 0.0,
                "compression_ratio": 0.0,
                "no_speech_prob": 0.0,
            }
            for seg in result["segments"]
        ]
    if "word" in granularities:
        words = (w for seg in result["segments"] for w in seg["words"])
        body["words"] = [{"word": w["word"], "start": w["start"], "end": w["end"]} for w in words]
    return body


def diarized_transcript(result: dict, timings: dict) -> dict:
    """The contract's transcribe-with-speakers body."""
    return {
        "task": "transcribe",
        "text": result["text"],
        "language": result["language"],
        "duration": result["duration"],
        "segments": [
            {
                "id": seg["id"],
                "type": "transcript.text.segment",
                "start": seg["start"],
                "end": seg["end"],
                "speaker": seg["speaker"],
                "text": seg["text"],
                "words": seg["words"],
            }
            for seg in result["segments"]
        ],
        "speakers": result["speakers"],
        "backend": result["backend"],
        "model": result["model"],
        "timings": timings,
    }


def diarized_json(result: dict) -> dict:
    """OpenAI's diarized_json: the diarized transcript's segments without words, speakers, backend, timings."""
    return {
        "task": "transcribe",
        "text": result["text"],
        "language": result["language"],
        "duration": result["duration"],
        "segments": [
            {"type": "transcript.text.segment", **{k: seg[k] for k in ("id", "start", "end", "speaker", "text")}}
            for seg in result["segments"]
        ],
        "model": result["model"],
        "usage": {"type": "duration", "seconds": result["duration"]},
    }


def render(result: dict, response_format: str, granularities: set[str], temperature: float) -> Response:
    if response_format == "text":
        return PlainTextResponse(result["text"] + "\n")
    if response_format == "srt":
        return PlainTextResponse(srt(result), media_type="application/x-subrip")
    if response_format == "vtt":
        return PlainTextResponse(vtt(result), media_type="text/vtt")
    if response_format == "verbose_json":
        return JSONResponse(verbose_json(result, granularities, temperature))
    if response_format == "diarized_json":
        return JSONResponse(diarized_json(result))
    return JSONResponse({"text": result["text"], "usage": {"type": "duration", "seconds": result["duration"]}})
