"""Docker HEALTHCHECK: healthy while /health answers and the models are loading or ready."""

from __future__ import annotations

import json
import os
import sys
import urllib.request


def main() -> int:
    url = f"http://127.0.0.1:{os.environ.get('WHISPERX_PORT', '8002')}/health"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            status = json.load(response).get("status")
    except (OSError, ValueError) as exc:
        print(f"no answer from {url}: {exc}")
        return 1
    print(f"status: {status}")
    return 0 if status in ("loading", "ready") else 1


if __name__ == "__main__":
    sys.exit(main())
