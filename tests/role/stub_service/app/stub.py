"""A fake WhisperX /health: loading for STUB_LOAD_S seconds, then ready (or what STUB_MODE says)."""

import json
import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE = os.environ.get("STUB_MODE", "ready")
LOAD_S = float(os.environ.get("STUB_LOAD_S", "2"))
STARTED = time.monotonic()


class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        loaded = time.monotonic() - STARTED >= LOAD_S and MODE == "ready"
        error = "stub: the model failed to load" if MODE == "error" and time.monotonic() - STARTED >= LOAD_S else None
        body = {
            "status": "error" if error else ("ready" if loaded else "loading"),
            "whisper_loaded": loaded,
            "diarizer_loaded": loaded,
            "aligner": None,
            "model": os.environ.get("WHISPER_MODEL", "medium"),
            "device": os.environ.get("WHISPERX_DEVICE", "cpu"),
            "compute_type": "int8",
            "queue": {"running": 0, "waiting": 0, "limit": 4},
            "version": "stub",
            "error": error,
            "token_file_readable": os.access(os.environ.get("HF_TOKEN_FILE", "/nonexistent"), os.R_OK),
        }
        data = json.dumps(body).encode()
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    # PID 1 ignores signals it has no handler for; docker stop would wait 10 s for nothing.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if MODE == "oom":
        print("stub: allocating until the memory cap stops it", flush=True)
        hog = []
        while True:
            hog.append(bytearray(64 * 2**20))
    if MODE == "exit":
        print("stub: exiting on purpose", flush=True)
        time.sleep(LOAD_S)
        sys.exit(3)
    print(f"stub: serving /health (mode {MODE})", flush=True)
    ThreadingHTTPServer(("0.0.0.0", 8002), Health).serve_forever()  # noqa: S104
