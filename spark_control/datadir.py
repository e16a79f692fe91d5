"""One spark-control per data directory: an exclusive lock, taken before anything in it is touched.

A spark-control that starts cleans up after a dead one (marks its jobs interrupted, stops their
playbooks, deletes spooled uploads and token copies). Done by a second instance beside a live one,
that would wreck the live one's work, so the lock comes first: `DATA_DIR/spark-control.lock`, held
with flock(2) for the life of the process (the kernel drops it when the process dies, so a crash
leaves nothing to clean), holding the holder's pid for the message a second instance exits with.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import ClassVar

LOCK_NAME = "spark-control.lock"


class DataDirInUse(RuntimeError):
    def __init__(self, directory: Path, pid: str):
        super().__init__(
            f"{directory} is in use by another spark-control (pid {pid or 'unknown'}): stop that one first, "
            "or give this one its own SPARK_CONTROL_DATA_DIR"
        )
        self.directory = directory
        self.pid = pid


class DataDirLock:
    """The lock on one data directory, counted: the CLI and the app's lifespan in one process share it."""

    _held: ClassVar[dict[Path, DataDirLock]] = {}

    def __init__(self, directory: Path, fd: int):
        self.directory = directory
        self._fd = fd
        self._users = 0

    @classmethod
    def acquire(cls, directory: Path) -> DataDirLock:
        """Hold the lock on `directory` (DataDirInUse when another process holds it)."""
        directory = directory.resolve()
        lock = cls._held.get(directory)
        if lock is None:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                os.close(fd)
                raise DataDirInUse(directory, holder) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            lock = cls._held[directory] = cls(directory, fd)
        lock._users += 1
        return lock

    def release(self) -> None:
        self._users -= 1
        if self._users == 0:
            del self._held[self.directory]
            os.close(self._fd)  # closing the descriptor drops the flock
