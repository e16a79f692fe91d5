"""`python -m app`: serve the API with uvicorn on WHISPERX_PORT."""

from __future__ import annotations

import logging

import uvicorn

from app.api.main import create_app
from app.config import get_settings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.whisperx_host, port=settings.whisperx_port, log_level="info")


if __name__ == "__main__":
    main()
