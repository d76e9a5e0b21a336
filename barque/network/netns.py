"""Network namespaces a container's processes join by path: made before the container starts (so its interfaces
are ready when its first process runs), kept alive by a bind mount at `<run root>/netns/<container id>`, as
`ip netns` and Docker keep theirs, and removed when the container stops.

Entering a namespace changes only the calling thread, so `entered` is safe in a threaded process; each use runs
in a short-lived thread of its own, so no thread is ever left in the wrong namespace, whatever fails.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable, TypeVar

__all__ = ["create", "remove", "run_in", "exists"]

T = TypeVar("T")


def _in_thread(fn: Callable[[], T]) -> T:
    box: dict = {}

    def body() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            box["error"] = e

    t = threading.Thread(target=body, name="barque-netns")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def create(path: Path) -> None:
    """A new, empty network namespace held by a bind mount at `path` (which must not exist yet)."""
    from barque.linux import _libc

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    os.close(fd)

    def make() -> None:
        _libc.unshare(_libc.CLONE_NEWNET)  # this thread only; it ends right after
        _libc.mount("/proc/thread-self/ns/net", str(path), None, _libc.MS_BIND)

    try:
        _in_thread(make)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def exists(path: Path) -> bool:
    return os.path.ismount(path) if path.exists() else False


def remove(path: Path) -> None:
    """Unmount and delete the namespace's file; the namespace itself goes when its last process or socket does."""
    from barque.linux import _libc

    try:
        _libc.umount(str(path), _libc.MNT_DETACH)
    except OSError:
        pass
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def run_in(path: Path | str, fn: Callable[[], T]) -> T:
    """`fn()` with the calling thread in the namespace at `path`; sockets it opens stay in that namespace."""
    from barque.linux import _libc

    def body():
        fd = os.open(str(path), os.O_RDONLY | os.O_CLOEXEC)
        try:
            _libc.setns(fd, _libc.CLONE_NEWNET)
        finally:
            os.close(fd)
        return fn()

    return _in_thread(body)
