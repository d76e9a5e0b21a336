"""inotify(7) for a reader that polls: watches on directories, and the events queued since the last look, read
without blocking."""

from __future__ import annotations

import os
import struct
from typing import NamedTuple

from barque.linux import _libc

__all__ = ["Inotify", "Event", "IN_MODIFY", "IN_CLOSE_WRITE", "IN_MOVED_FROM", "IN_MOVED_TO", "IN_CREATE",
           "IN_DELETE", "IN_DELETE_SELF", "IN_MOVE_SELF", "IN_Q_OVERFLOW", "IN_IGNORED", "IN_ONLYDIR"]

IN_MODIFY = 0x2
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000  # the kernel's queue overflowed (wd is -1): events were lost
IN_IGNORED = 0x8000  # the watch is gone (removed, or its directory deleted)
IN_ONLYDIR = 0x01000000

_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then len bytes of NUL-padded name


class Event(NamedTuple):
    wd: int
    mask: int
    name: str


class Inotify:
    """One inotify instance (non-blocking, close-on-exec)."""

    def __init__(self) -> None:
        self.fd = _libc.inotify_init1()

    def add(self, path: str | os.PathLike, mask: int) -> int:
        """A watch descriptor for `path` (the same one again for a path already watched)."""
        return _libc.inotify_add_watch(self.fd, path, mask)

    def remove(self, wd: int) -> None:
        try:
            _libc.inotify_rm_watch(self.fd, wd)
        except OSError:
            pass  # gone already: its directory was deleted

    def read(self) -> list[Event]:
        """Every event queued now; none when the queue is empty."""
        out: list[Event] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            pos = 0
            while pos + _HEADER.size <= len(data):
                wd, mask, _cookie, size = _HEADER.unpack_from(data, pos)
                pos += _HEADER.size
                name = data[pos:pos + size].split(b"\0", 1)[0].decode(errors="surrogateescape")
                pos += size
                out.append(Event(wd, mask, name))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
