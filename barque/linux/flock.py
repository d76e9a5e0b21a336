"""Waiting for an flock with a deadline: flock(2) itself waits forever or not at all, so a bounded wait polls."""

from __future__ import annotations

import fcntl
import time

__all__ = ["flock_within"]


def flock_within(fd: int, mode: int, timeout: float | None, interval: float = 0.02) -> bool:
    """Take `mode` (LOCK_EX or LOCK_SH) on `fd`, waiting at most `timeout` seconds (None: for as long as it takes).
    Whether it was taken; the caller words the failure for what it was waiting for."""
    if timeout is None:
        fcntl.flock(fd, mode)
        return True
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
