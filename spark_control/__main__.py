"""`python -m spark_control`: serve on SPARK_CONTROL_HOST:SPARK_CONTROL_PORT."""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic import ValidationError
from pydantic_settings import SettingsError

from spark_control.config import get_settings
from spark_control.datadir import DataDirInUse, DataDirLock
from spark_control.main import create_app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = get_settings()
    except (ValidationError, SettingsError) as exc:
        # A configuration mistake is the operator's to fix: say which setting and why, no traceback.
        sys.exit(f"spark-control: invalid configuration:\n{exc}")
    try:
        lock = DataDirLock.acquire(settings.data_dir)  # taken here too, so a second instance exits in one line
    except DataDirInUse as exc:
        sys.exit(f"spark-control: {exc}")
    try:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
    finally:
        lock.release()


if __name__ == "__main__":
    main()
