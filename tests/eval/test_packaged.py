"""The real recordings' fetch (scripts/eval/packaged.py): only the pinned bytes are kept, and references parse."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from scripts.eval.packaged import fetch, segments_turns


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "data.tar.gz").write_bytes(b"the pinned bytes")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/data.tar.gz"
    server.shutdown()


def test_the_pinned_file_is_kept_and_another_refused(served: str, tmp_path: Path):
    pinned = hashlib.sha256(b"the pinned bytes").hexdigest()
    dest = tmp_path / "packages" / "data.tar.gz"
    with pytest.raises(SystemExit, match="refusing"):
        fetch(served, "0" * 64, dest)
    assert not dest.exists() and not dest.with_suffix(".part").exists()
    assert fetch(served, pinned, dest) == dest and dest.read_bytes() == b"the pinned bytes"


def test_segments_files_become_speaker_turns(tmp_path: Path):
    (tmp_path / "a.segments").write_text("0,6.3,speakerA\n6.3,11.3,speakerB\n\n")
    assert segments_turns(tmp_path / "a.segments") == [(0.0, 6.3, "speakerA"), (6.3, 11.3, "speakerB")]
