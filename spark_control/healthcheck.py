"""`python -m spark_control.healthcheck`: the image's HEALTHCHECK; exit 0 while GET /healthz answers 200.

It asks where the settings say spark-control listens (a wildcard address means loopback).
"""

from __future__ import annotations

import sys

import httpx

from spark_control.config import get_settings


def main() -> int:
    settings = get_settings()
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host  # noqa: S104 - wildcards
    url = f"http://{host}:{settings.port}/healthz"
    try:
        response = httpx.get(url, timeout=5, trust_env=False)
    except httpx.HTTPError as exc:
        print(f"{url}: {type(exc).__name__}")
        return 1
    print(f"{url}: HTTP {response.status_code}")
    return 0 if response.status_code == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
