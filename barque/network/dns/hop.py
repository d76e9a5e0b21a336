"""Sockets made inside a container's network namespace, for asking the container's own resolvers (`--dns`, the
config file's `dns`) from where the container would ask them — as Docker does: `--dns 127.0.0.1` is the
container's loopback, never the host's, and a server reachable only over the container's network is reached.

A socket stays in the namespace it was made in, whichever thread uses it later. One worker thread (FIFO) enters
the namespace, makes the socket and comes back: two setns calls, some 20 µs, where a thread of its own per socket
costs about 1 ms. Every job enters its target first, so a worker that failed to come back (it never should) still
makes each socket in the right namespace; it is only logged. The namespace is given as a descriptor the server
holds while it serves the container, closed through `release` — queued behind every job that may still use it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from concurrent.futures import ThreadPoolExecutor

__all__ = ["Hopper"]

log = logging.getLogger(__name__)


class Hopper:
    def __init__(self) -> None:
        self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self._pool: ThreadPoolExecutor | None = None

    def _worker(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="barque-dns-hop")
        return self._pool

    def _make(self, ns_fd: int, family: int, kind: int) -> socket.socket:
        from barque.linux import _libc

        _libc.setns(ns_fd, _libc.CLONE_NEWNET)
        try:
            return socket.socket(family, kind | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        finally:
            try:
                _libc.setns(self._home, _libc.CLONE_NEWNET)
            except OSError as e:  # harmless for the sockets (each job enters its own target); keeps a namespace
                log.error("the namespace worker cannot return to the server's namespace: %s", e)

    async def socket(self, ns_fd: int, family: int, kind: int) -> socket.socket:
        """A non-blocking socket of `family` and `kind` in the network namespace `ns_fd` refers to."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker(), self._make, ns_fd, family, kind)

    def release(self, ns_fd: int) -> None:
        """Close a namespace descriptor once no job queued before now can still use it."""
        if self._pool is None:
            os.close(ns_fd)
        else:
            self._pool.submit(os.close, ns_fd)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=False)
            self._pool = None
        os.close(self._home)
