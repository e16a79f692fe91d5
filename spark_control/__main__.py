"""`python -m spark_control`: serve on SPARK_CONTROL_HOST:SPARK_CONTROL_PORT."""

from __future__ import annotations

import logging

import uvicorn

from spark_control.config import get_settings
from spark_control.main import create_app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


if __name__ == "__main__":
    main()
