"""spark-control test fixtures: isolated settings, a real uvicorn server per test, local stand-ins.

Unit tests run the real ansible-runner on stand-in playbooks (tests/control/playbooks: the
collection's playbook interface, connection local), so a whole install takes about a second.
"""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from spark_control.config import Settings
from spark_control.main import create_app
from spark_control.services import DEEP_CHECK_CLIP
from tests.control.helpers import API_TOKEN, HERE, STANDIN, LiveServer, free_port


@pytest.fixture
def fake_playbooks(tmp_path: Path) -> Callable[..., Path]:
    """A copy of the stand-in playbooks whose group_vars/all.yml holds the given variables."""
    target = tmp_path / "playbooks"

    def make(**variables: Any) -> Path:
        if not target.exists():
            shutil.copytree(HERE / "playbooks", target)
        (target / "group_vars").mkdir(exist_ok=True)
        (target / "group_vars" / "all.yml").write_text(yaml.safe_dump(variables or {"fake_lines": 2}))
        return target

    return make


@pytest.fixture
def make_settings(tmp_path: Path, fake_playbooks: Callable[..., Path]) -> Callable[..., Settings]:
    """Settings for one test: its own data dir, the stand-in playbooks, nothing listening by default."""

    def make(fake_vars: dict[str, Any] | None = None, **overrides: Any) -> Settings:
        closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused at once
        base: dict[str, Any] = {
            "spark2_host": "127.0.0.1",
            "data_dir": tmp_path / "data",
            "playbooks_dir": fake_playbooks(**(fake_vars or {"fake_lines": 2})),
            "api_token": API_TOKEN,
            "whisperx_url": closed,
            "legacy_asr_url": closed,
            "magpie_url": closed,
            "watchdog_enabled": False,
            "health_timeout_s": 1.0,
            "health_cache_s": 0.0,
        }
        return Settings(**{**base, **overrides})

    return make


@pytest.fixture
def serve() -> Iterator[Callable[..., LiveServer]]:
    """serve(settings) -> a running spark-control; every server is stopped at the end of the test."""
    servers: list[LiveServer] = []

    def start(settings: Settings | Any, port: int | None = None) -> LiveServer:
        app = create_app(settings) if isinstance(settings, Settings) else settings
        server = LiveServer(app, port).start()
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def standin(tmp_path: Path, serve: Callable[..., LiveServer]) -> Callable[..., LiveServer]:
    """The Spark 2 stand-in (tests/images/spark2-standin) served in-process in the given role."""

    def start(role: str = "parakeet", clips: list[Path] | None = None) -> LiveServer:
        import importlib.util
        import os

        os.environ["STANDIN_ROLE"] = role
        os.environ["STANDIN_CLIPS"] = ":".join(str(c) for c in clips or [])
        try:
            spec = importlib.util.spec_from_file_location(f"standin_{role}_{free_port()}", STANDIN)
            assert spec and spec.loader
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        finally:
            os.environ.pop("STANDIN_ROLE", None)
            os.environ.pop("STANDIN_CLIPS", None)
        return serve(module.app)

    return start


@pytest.fixture
def legacy(standin, tmp_path: Path) -> LiveServer:
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "clip.wav").write_bytes(DEEP_CHECK_CLIP.read_bytes())
    (clips / "clip.txt").write_text("The quick brown fox jumps over the lazy dog.")
    return standin("parakeet", [clips])


@pytest.fixture
def dropping_whisperx() -> Iterator[str]:
    """Says it is ready, then drops every transcription request mid-upload (a crash, an OOM kill)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    health = b'{"status":"ready","whisper_loaded":true,"diarizer_loaded":true}'

    def serve_forever() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                head = conn.recv(65536)
                if head.startswith(b"GET /health"):
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                        b"connection: close\r\n\r\n%s" % (len(health), health)
                    )
                else:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    threading.Thread(target=serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
