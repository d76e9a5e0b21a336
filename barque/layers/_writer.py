"""Creating a layer's new files on worker threads while its tar is read, in order, on one.

On a busy disk unpacking is bound by inode creation: one openat(O_CREAT) or symlinkat can take hundreds of
microseconds of journal work, while writing the bytes, chown and utimensat take a few. Those calls release the
GIL and overlap across threads, best in different directories (a create holds its parent's lock), so each
directory's run of files goes to one worker and the next directory's to the next.

Threads are not free, though: every hand-off and GIL switch costs the reading thread tens of microseconds, and
on a fast disk (creates of ~20 µs) with two CPUs a threaded unpack is twice as slow. :class:`Pace` therefore
hands files over only while creates are slow, judged by timing some of them in the reading thread.

This module knows nothing about tar: :class:`WriteQueue` runs jobs keyed by the path they create and lets the
caller wait for one path (:meth:`WriteQueue.wait`) or for all (:meth:`WriteQueue.wait_all`). Which entries may be
handed over, and when to wait, is the applier's business (see :mod:`barque.layers.apply`). Memory is bounded: at
most ``max_jobs`` jobs and ``max_bytes`` of content are held at once; submitting waits for the oldest beyond that.

A failed job makes the next call raise the error of the earliest submitted job that failed: the jobs submitted
after it are dropped, those before it run to their end, so the error is the one an unthreaded unpack would stop at.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)

Parts = tuple[str, ...]


class Job(Protocol):
    def run(self) -> None:
        """Make the entry; called once, on a worker thread."""

    def discard(self) -> None:
        """Release what the job holds (descriptors) when it will never run."""


class Pace:
    """Whether the next create should go to the workers: only while creates are slow.

    The reading thread times its own creates (:meth:`record`, made with no worker busy) in blocks of ``window``;
    a block averaging over ``slow_ns`` sends the next ``period`` creates to the workers, then a block is timed
    again. While creates are fast every one is made, and timed, in the reading thread.
    """

    def __init__(self, *, slow_ns: int = 150_000, window: int = 8, period: int = 256) -> None:
        self.slow_ns = slow_ns
        self.window = window
        self.period = period
        self._left = 0  # creates still to hand over
        self._samples: list[int] = []

    def threaded(self) -> bool:
        if self._left > 0:
            self._left -= 1
            return True
        return False

    def record(self, ns: int) -> None:
        self._samples.append(ns)
        if len(self._samples) >= self.window:
            typical = sorted(self._samples)[len(self._samples) // 2]
            self._samples.clear()
            if typical > self.slow_ns:
                self._left = self.period
                log.debug("creates take %d µs: threads for the next %d", typical // 1000, self.period)


@dataclass(slots=True, eq=False)
class _Pending:
    seq: int
    key: Parts
    label: str  # the tar entry, for the error
    size: int
    job: Job
    future: Future[None] = field(default_factory=Future)


class WriteQueue:
    """Use as a context manager: leaving it drops the jobs not started and waits for the running ones."""

    def __init__(self, workers: int, *, max_jobs: int = 256, max_bytes: int = 32 << 20) -> None:
        self.workers = workers
        self.max_jobs = max_jobs
        self.max_bytes = max_bytes
        self._threads: list[threading.Thread] = []
        self._inboxes: list[queue.SimpleQueue[_Pending | None]] = []
        self._queue: deque[_Pending] = deque()  # in submission order
        self._by_key: dict[Parts, _Pending] = {}
        self._bytes = 0
        self._seq = 0
        self._last_dir: Parts | None = None
        self._worker = 0

    def __enter__(self) -> "WriteQueue":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def enabled(self) -> bool:
        return self.workers > 0

    @property
    def busy(self) -> bool:
        return bool(self._queue)

    def submit(self, key: Parts, label: str, size: int, job: Job) -> None:
        """Run ``job``, which creates ``key`` and holds ``size`` bytes; nothing may be pending at ``key``."""
        assert self.enabled and key not in self._by_key, key
        try:
            self._reap()
            while self._queue and (len(self._queue) >= self.max_jobs or self._bytes + size > self.max_bytes):
                self._settle(self._queue[0])
                self._reap()
            if not self._threads:
                self._start()
        except BaseException:
            job.discard()
            raise
        if key[:-1] != self._last_dir:  # a new directory: the next worker
            self._last_dir = key[:-1]
            self._worker = (self._worker + 1) % self.workers
        self._seq += 1
        p = _Pending(self._seq, key, label, size, job)
        self._queue.append(p)
        self._by_key[key] = p
        self._bytes += size
        self._inboxes[self._worker].put(p)

    def wait(self, key: Parts) -> bool:
        """Wait until the job creating ``key`` (if any) is done; True if there was one."""
        p = self._by_key.get(key)
        if p is None:
            return False
        self._settle(p)
        return True

    def wait_all(self) -> None:
        while self._queue:
            self._settle(self._queue[0])
            self._reap()

    def close(self) -> None:
        """Drop the jobs not started, wait for the running ones; errors are not reported (see :meth:`wait_all`)."""
        self._cancel(0)
        self._stop()

    # ------------------------------------------------------------------------------------------ internals

    def _start(self) -> None:
        for i in range(self.workers):
            inbox: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
            t = threading.Thread(target=_work, args=(inbox,), name=f"barque-layer-write-{i}", daemon=True)
            t.start()
            self._inboxes.append(inbox)
            self._threads.append(t)

    def _stop(self) -> None:
        for inbox in self._inboxes:
            inbox.put(None)
        for t in self._threads:
            t.join()
        self._threads.clear()
        self._inboxes.clear()
        self._queue.clear()
        self._by_key.clear()
        self._bytes = 0

    def _cancel(self, after: int) -> None:
        """Drop the jobs submitted after job number ``after`` that have not started (their worker discards them)."""
        for p in self._queue:
            if p.seq > after:
                p.future.cancel()

    def _settle(self, p: _Pending) -> None:
        if p.future.exception() is not None:  # (waits)
            self._fail(p)
        if self._by_key.get(p.key) is p:
            del self._by_key[p.key]

    def _reap(self) -> None:
        """Forget finished jobs at the head of the queue, raising if one failed."""
        while self._queue and self._queue[0].future.done():
            p = self._queue[0]
            if p.future.exception() is not None:
                self._fail(p)
            self._queue.popleft()
            self._bytes -= p.size
            if self._by_key.get(p.key) is p:
                del self._by_key[p.key]

    def _fail(self, failed: _Pending) -> None:
        """Drop what came after the failed job and has not started, let the rest end, raise the earliest error."""
        self._cancel(failed.seq)
        jobs = list(self._queue)
        for p in jobs:
            if not p.future.cancelled():
                p.future.exception()  # (waits)
        self._stop()
        for p in jobs:
            error = None if p.future.cancelled() else p.future.exception()
            if error is not None:
                error.add_note(f"while creating tar entry {p.label!r}")
                raise error
        raise AssertionError("a write failed, yet no job has an error")  # pragma: no cover


def _work(inbox: queue.SimpleQueue[_Pending | None]) -> None:
    while (p := inbox.get()) is not None:
        if not p.future.set_running_or_notify_cancel():
            p.job.discard()
            continue
        try:
            p.job.run()
        except BaseException as e:  # noqa: BLE001 - handed to the reading thread, which raises it
            p.future.set_exception(e)
        else:
            p.future.set_result(None)
