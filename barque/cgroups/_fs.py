"""Reading and writing cgroup files, with the kernel's refusals turned into barque's error categories."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Callable

from barque.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable


def write(path: Path, value: str) -> None:
    """One write(2) of `value`: cgroup files act on each write, so no buffering (O_TRUNC as runc does: the kernel
    ignores it, and a fixture file then holds exactly the last value)."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def refusal(path: Path, value: str, err: OSError) -> Exception:
    """The error category for the kernel refusing `value` in `path`."""
    what = f"{path.name} = {value!r} in {path.parent}"
    if err.errno == errno.ENOENT:
        return FailedPrecondition(f"cannot set {what}: the file does not exist (controller not available there)",
                                  cause=err)
    if err.errno in (errno.EINVAL, errno.ERANGE, errno.EBUSY, errno.EOVERFLOW, errno.EDOM):
        hint = " (usage is above the new limit, or a sibling/parent setting conflicts)" \
            if err.errno == errno.EBUSY else ""
        return InvalidArgument(f"the kernel refused {what}: {os.strerror(err.errno)}{hint}", cause=err)
    if err.errno in (errno.EPERM, errno.EACCES):
        return FailedPrecondition(f"not permitted to set {what}: {os.strerror(err.errno)}", cause=err)
    if err.errno == errno.ENODEV:
        return InvalidArgument(f"the kernel refused {what}: no such device", cause=err)
    return Unavailable(f"cannot set {what}: {os.strerror(err.errno or 0)}", cause=err)


def read(path: Path) -> str:
    return path.read_text().strip()


def read_int(path: Path) -> int | None:
    """An integer file, None when absent or "max"."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    if text == "max" or not text:
        return None
    return int(text)


def read_keyed(path: Path) -> dict[str, int]:
    """`key value` lines (memory.stat, cpu.stat, memory.events…); absent file → {}."""
    out: dict[str, int] = {}
    try:
        text = path.read_text()
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return out


def read_pids(path: Path) -> list[int]:
    try:
        return [int(x) for x in path.read_text().split()]
    except FileNotFoundError:
        return []


def move(procs_file: Path, pid: int) -> None:
    try:
        write(procs_file, str(pid))
    except OSError as e:
        if e.errno == errno.ESRCH:
            raise NotFound(f"process {pid} does not exist: cannot move it into {procs_file.parent}", cause=e) from e
        if e.errno == errno.ENOENT:
            raise FailedPrecondition(f"cgroup {procs_file.parent} does not exist: create() it first", cause=e) from e
        if e.errno == errno.EBUSY:
            raise FailedPrecondition(
                f"cannot move process {pid} into {procs_file.parent}: cgroup v2 allows processes only in leaf "
                "cgroups (it has controllers enabled for children)", cause=e) from e
        raise refusal(procs_file, str(pid), e) from e


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll `predicate` with a growing pause (1 ms … 50 ms) until it holds or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def remove_tree(top: Path, timeout: float) -> list[str]:
    """rmdir `top` and the cgroups below it, deepest first; a cgroup whose last task is still exiting answers EBUSY
    for a moment, so that is retried until `timeout`. Returns the directories still there."""
    if not top.is_dir():
        return []
    stuck = []
    for dirpath, _, _ in sorted(os.walk(top), key=lambda e: e[0].count("/"), reverse=True):
        def gone(p: str = dirpath) -> bool:
            try:
                os.rmdir(p)
            except FileNotFoundError:
                pass
            except OSError as e:
                if e.errno in (errno.EBUSY, errno.EAGAIN, errno.EINTR):
                    return False
                raise Unavailable(f"cannot remove cgroup {p}: {e.strerror}", cause=e) from e
            return True

        if not wait_until(gone, timeout):
            stuck.append(dirpath)
    return stuck
