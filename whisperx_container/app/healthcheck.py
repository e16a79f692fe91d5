"""Docker HEALTHCHECK: healthy while /health answers and the models are loading or ready."""

from __future__ import annotations

import json
import sys
import urllib.request

from app.config import Settings, get_settings

ANY_ADDRESS = {"0.0.0.0", "::", ""}  # noqa: S104 - the wildcard the service listens on, not one we bind


def health_url(settings: Settings) -> str:
    """Where the service answers from inside its container: the wildcard address means loopback."""
    host = "127.0.0.1" if settings.whisperx_host in ANY_ADDRESS else settings.whisperx_host
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.whisperx_port}/health"


def main() -> int:
    url = health_url(get_settings())
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - http to our own port
            status = json.load(response).get("status")
    except (OSError, ValueError) as exc:
        print(f"no answer from {url}: {exc}")
        return 1
    print(f"status: {status}")
    return 0 if status in ("loading", "ready", "unloaded") else 1


if __name__ == "__main__":
    sys.exit(main())
