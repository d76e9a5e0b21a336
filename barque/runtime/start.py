"""`start`: let a created container's process go — open the read end of its exec fifo (the process is blocked
opening the write end), read the byte it writes and then the end of the fifo, which comes at its execve (its end is
close-on-exec; runc's start reads the fifo to its end too), remove the fifo (from then on the container reads as
running), and run the poststart hooks."""

from __future__ import annotations

import logging
import os
import select
import time

from barque.errors import FailedPrecondition
from barque.runtime.state import CREATED, StateStore, process_start_time

__all__ = ["start"]

log = logging.getLogger(__name__)
START_TIMEOUT = 60.0


def start(store: StateStore, cid: str) -> None:
    with store.lock(cid):
        c = store.load(cid)
        status = c.status()
        if status != CREATED:
            raise FailedPrecondition(f"cannot start container {cid}: it is {status}, not created")
        try:
            fd = os.open(c.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise FailedPrecondition(f"cannot start container {cid}: it was started already") from None
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            deadline = time.monotonic() + START_TIMEOUT
            released = False
            while True:
                if poller.poll(10):
                    data = os.read(fd, 1)
                    if data:
                        released = True  # the process goes; its end closes at its execve (or its death)
                        continue
                    if released:
                        break
                alive = process_start_time(c.pid) == c.start_time
                if not alive and not released:
                    raise FailedPrecondition(f"cannot start container {cid}: its process exited")
                if not alive or time.monotonic() > deadline:
                    if released:
                        break
                    raise FailedPrecondition(f"container {cid} did not start within {START_TIMEOUT}s")
        finally:
            os.close(fd)
        c.fifo.unlink()
        config = c.config()
        if (config.get("hooks") or {}).get("poststart"):
            from barque.runtime.hooks import run_hooks

            run_hooks(config, "poststart", c.oci_state())
