"""Form parameters as OpenAI treats them: strict names, `chunking_strategy`, `include[]`.

A form field an endpoint does not declare is a 400 `unknown_parameter` naming it, instead of being
dropped. The declared names come from the endpoint's own signature, so there is no list to keep in
step; OpenAI's clients send arrays as `name[]` and objects as `name[key]`, which count as `name`.
"""

from __future__ import annotations

import json
import math

from fastapi import Request

from app.api.errors import APIError, bad_request
from app.inference.speech import VadOptions

# OpenAI's server_vad defaults (its realtime and transcription APIs)
SERVER_VAD_DEFAULTS = {"threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 200}


async def known_fields_only(request: Request) -> None:
    """A dependency: 400 `unknown_parameter` for a form field the route does not declare."""
    route = request.scope.get("route")
    if route is None:
        return
    known = _body_aliases(route.dependant)
    for name in await request.form():
        base = name.split("[", 1)[0]
        if not {name, base, f"{base}[]"} & known:
            raise APIError(400, f"unknown parameter {name!r}: this endpoint takes {', '.join(sorted(known))}",
                           code="unknown_parameter")  # fmt: skip


def _body_aliases(dependant) -> set[str]:
    """The form field names an endpoint declares, its dependencies' included."""
    names = {field.alias for field in dependant.body_params}
    for sub in dependant.dependencies:
        names |= _body_aliases(sub)
    return names


async def chunking_strategy(request: Request, value: str | None) -> VadOptions:
    """`chunking_strategy`: `auto` (the default VAD), or server_vad as a JSON object or as the
    `chunking_strategy[key]` fields OpenAI's clients send, each key optional."""
    form = await request.form()
    fields = {k[len("chunking_strategy[") : -1]: v for k, v in form.items() if k.startswith("chunking_strategy[")}
    if value is None and not fields:
        return VadOptions()
    if value == "auto" and not fields:
        return VadOptions()
    if value is not None:
        try:
            fields = json.loads(value)
        except ValueError:
            raise bad_request(f"chunking_strategy must be 'auto' or a server_vad object, got {value!r}") from None
        if not isinstance(fields, dict):
            raise bad_request("chunking_strategy must be 'auto' or a server_vad object")
    if fields.get("type") != "server_vad":
        raise bad_request(f"chunking_strategy type must be 'server_vad', got {fields.get('type')!r}")
    if unknown := set(fields) - {"type", *SERVER_VAD_DEFAULTS}:
        raise APIError(400, f"unknown chunking_strategy parameter {sorted(unknown)[0]!r}", code="unknown_parameter")
    values = {}
    for key, default in SERVER_VAD_DEFAULTS.items():
        raw = fields.get(key, default)
        try:
            number = float(raw)
        except (TypeError, ValueError):
            raise bad_request(f"chunking_strategy {key} must be a number, got {raw!r}") from None
        low, high = (0.0, 1.0) if key == "threshold" else (0.0, 10_000.0)
        if not math.isfinite(number) or not low <= number <= high:
            raise bad_request(f"chunking_strategy {key} must be between {low:g} and {high:g}, got {raw!r}")
        values[key] = number
    return VadOptions(
        threshold=values["threshold"],
        prefix_padding_s=values["prefix_padding_ms"] / 1000,
        silence_s=values["silence_duration_ms"] / 1000,
    )


def include_option(values: list[str] | None) -> None:
    """`include[]`: only `logprobs` exists, and batched faster-whisper keeps no per-token log-probabilities."""
    for value in values or []:
        if value != "logprobs":
            raise bad_request(f"unsupported include[] value {value!r}: OpenAI defines only 'logprobs'")
        raise APIError(400, "include[]=logprobs is not available: batched faster-whisper keeps one score per"
                       " segment, not per token (verbose_json gives each segment's avg_logprob)",
                       code="unsupported_parameter")  # fmt: skip
