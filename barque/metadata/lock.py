"""A store-wide reader/writer lock (flock) between barque processes on one root.

Operations that add content (load, import, pull, build) hold it shared for their whole run, so that garbage
collection, which holds it exclusive, never deletes a blob that is ingested but not yet referenced.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from barque.errors import Unavailable


class StoreLock:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def _hold(self, mode: int, timeout: float | None) -> Iterator[None]:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            from barque.linux.flock import flock_within

            if not flock_within(fd, mode, timeout, interval=0.05):
                raise Unavailable(f"store is busy: could not lock {self.path} within {timeout:g}s")
            yield
        finally:
            os.close(fd)

    def shared(self, timeout: float | None = None):
        return self._hold(fcntl.LOCK_SH, timeout)

    def exclusive(self, timeout: float | None = None):
        return self._hold(fcntl.LOCK_EX, timeout)
