"""The WhisperX backends, one per GPU host (WHISPERX_HOSTS): names, inventory variables, health and load.

One backend keeps the names spark-control always had: service `whisperx`, header `X-ASR-Backend: whisperx`,
DATA_DIR/secrets/whisperx-api-key, the inventory's host alias. With several, each is `whisperx@host`
(`whisperx@host_port` when its port is not WHISPERX_PORT: its container and jobs volume then carry the port
too, so two backends can share one Docker engine, as on a workstation with two GPUs), and that name is also
its inventory host name, so the install log's `[whisperx@host]` and its per-host phases need no mapping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from spark_control.config import Settings, _base_url, write_private
from spark_control.health import HealthProbe, HealthSample, whisperx_alive, whisperx_unready


@dataclass(frozen=True)
class BackendAddress:
    """Where one backend is and what it is called, from the settings alone."""

    name: str
    title: str  # for people: WhisperX, or WhisperX on host[:port]
    inventory_name: str
    host: str
    port: int
    url: str
    container: str
    jobs_volume: str | None
    api_key_path: Path
    state_path: Path

    def role_vars(self) -> dict[str, Any]:
        """The role's per-host variables for this backend (host vars in the inventory, never extra vars)."""
        found = {
            "whisperx_container_name": self.container,
            "whisperx_port": self.port,
            "whisperx_api_key_dest": str(self.api_key_path),
            "whisperx_jobs_volume": self.jobs_volume,
        }
        return {k: v for k, v in found.items() if v is not None}


def backend_addresses(settings: Settings, single_inventory_name: str) -> list[BackendAddress]:
    """Every backend in WHISPERX_HOSTS order; `single_inventory_name` is the one backend's inventory alias."""
    endpoints = settings.whisperx_endpoints
    if len(endpoints) == 1:
        host, port = endpoints[0]
        return [
            BackendAddress(
                name="whisperx",
                title="WhisperX",
                inventory_name=single_inventory_name,
                host=host,
                port=port,
                url=settings.whisperx_url,
                container=settings.whisperx_container,
                jobs_volume=None,
                api_key_path=settings.secrets_dir / "whisperx-api-key",
                state_path=settings.data_dir / "state" / "whisperx.json",
            )
        ]
    addresses = []
    for host, port in endpoints:
        own_port = port != settings.whisperx_port
        label = (f"{host}_{port}" if own_port else host).replace(":", "_")  # no ':' in an inventory name
        name = f"whisperx@{label}"
        shown = f"[{host}]" if ":" in host else host
        addresses.append(
            BackendAddress(
                name=name,
                title=f"WhisperX on {shown}:{port}" if own_port else f"WhisperX on {shown}",
                inventory_name=name,
                host=host,
                port=port,
                url=_base_url(None, host, port),
                container=f"{settings.whisperx_container}-{port}" if own_port else settings.whisperx_container,
                jobs_volume=f"whisperx-jobs-{port}" if own_port else None,
                api_key_path=settings.secrets_dir / f"whisperx-api-key@{label}",
                state_path=settings.data_dir / "state" / f"{name}.json",
            )
        )
    return addresses


@dataclass
class ContainerState:
    """What the last playbook that looked at a backend's container saw (cached on disk)."""

    installed: bool | None = None
    running: bool | None = None
    image: str | None = None
    checked_at: str | None = None
    source: str = "unknown"
    job_id: str | None = None
    error: str | None = None
    host_reachable: bool | None = None


class Backend:
    """One WhisperX backend at run time: its health probe, cached container state, and the work sent to it."""

    def __init__(self, address: BackendAddress, http: httpx.AsyncClient, settings: Settings):
        self.address = address
        self.probe = HealthProbe(
            http, f"{address.url}/health", settings.health_timeout_s, settings.health_cache_s, whisperx_alive
        )
        self.container = self._load()
        self._sent: list[float] = []  # when each request the proxy is relaying here was sent
        self._done: list[tuple[float, float]] = []  # (sent, finished) of the ones that ended since the last probe

    @property
    def name(self) -> str:
        return self.address.name

    @property
    def url(self) -> str:
        return self.address.url

    # -- the API key the role copied here ---------------------------------------------------------
    def api_key(self) -> str | None:
        try:
            return self.address.api_key_path.read_text().strip() or None
        except OSError:
            return None

    def auth_headers(self) -> dict[str, str]:
        """The header every request to this backend but /health carries (none when it has no key)."""
        key = self.api_key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    # -- load, for the proxy's choice -------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        """Requests the proxy has sent here and not finished relaying."""
        return len(self._sent)

    def sending(self) -> float:
        """Count a request sent now; give what this returns to finished() when it ends."""
        at = time.monotonic()
        self._sent.append(at)
        return at

    def finished(self, sent_at: float) -> None:
        with contextlib.suppress(ValueError):
            self._sent.remove(sent_at)
            self._done.append((sent_at, time.monotonic()))

    def load(self, sample: HealthSample) -> int:
        """Requests running plus waiting: the backend's own count at its last /health, plus what the proxy sent
        there after that probe, minus what it saw finish since of what it had sent before, so a burst spreads
        before the next probe; never less than what the proxy has there itself."""
        queue = (sample.body or {}).get("queue") or {}
        reported = _count(queue.get("running")) + _count(queue.get("waiting"))
        probed = sample.monotonic
        self._done = [(sent, ended) for sent, ended in self._done if ended >= probed]
        newer = sum(1 for sent in self._sent if sent >= probed)
        gone = sum(1 for sent, _ in self._done if sent < probed)
        return max(self.in_flight, reported + newer - gone)

    @staticmethod
    def full(sample: HealthSample) -> bool:
        """Its queue has no room (one running and `limit` waiting): it would answer 429."""
        queue = (sample.body or {}).get("queue") or {}
        limit = queue.get("limit")
        taken = _count(queue.get("running")) + _count(queue.get("waiting"))
        return isinstance(limit, int) and limit > 0 and taken >= limit + 1

    # -- persistence ------------------------------------------------------------------------------
    def _load(self) -> ContainerState:
        try:
            return ContainerState(**json.loads(self.address.state_path.read_text()))
        except (OSError, ValueError, TypeError):
            return ContainerState()

    def save(self) -> None:
        write_private(self.address.state_path, json.dumps(asdict(self.container), indent=1))


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


async def ready_in_order(backends: list[Backend]) -> tuple[list[Backend], str | None]:
    """The backends that can take a transcription now, least loaded first (a full queue last, ties in the
    configured order), and why none can when the list is empty."""
    samples = await asyncio.gather(*(b.probe.check() for b in backends))
    ready: list[tuple[tuple[bool, int, int], Backend]] = []
    reasons = []
    for position, (backend, sample) in enumerate(zip(backends, samples, strict=True)):
        why = whisperx_unready(sample)
        if why:
            reasons.append(why if len(backends) == 1 else f"{backend.name}: {why}")
            continue
        ready.append(((backend.full(sample), backend.load(sample), position), backend))
    ready.sort(key=lambda pair: pair[0])
    return [b for _, b in ready], "; ".join(reasons) or None
