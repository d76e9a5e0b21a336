"""The one seam between the runtime's container-side logic and the kernel (youki's `Syscall` trait, in Python).

rootfs.py and the other container-side steps call only these methods for anything that changes the system, so unit
tests swap in a recording fake (tests/unit/test_runtime_rootfs.py) and check the exact sequence of mounts, device
nodes and pivot_root without root. Read-only queries (stat, readlink, exists) go to the real filesystem — a fake then
runs against a temporary tree.
"""

from __future__ import annotations

import os
import socket

from barque.linux import _libc

__all__ = ["Syscalls", "REAL"]


class Syscalls:
    """The real kernel."""

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int = 0,
              data: str | None = None) -> None:
        _libc.mount(source, target, fstype, flags, data or None)

    def umount(self, target: str, flags: int = 0) -> None:
        _libc.umount(target, flags)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        _libc.pivot_root(new_root, put_old)

    def chdir(self, path: str) -> None:
        os.chdir(path)

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        os.makedirs(path, mode=mode, exist_ok=True)

    def create_file(self, path: str, mode: int = 0o644) -> None:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, mode))

    def mknod(self, path: str, mode: int, device: int) -> None:
        os.mknod(path, mode, device)

    def chmod(self, path: str, mode: int) -> None:
        os.chmod(path, mode)

    def chown(self, path: str, uid: int, gid: int) -> None:
        os.chown(path, uid, gid, follow_symlinks=False)

    def symlink(self, target: str, path: str) -> None:
        os.symlink(target, path)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def write_file(self, path: str, data: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, data.encode())
        finally:
            os.close(fd)

    def sethostname(self, name: str) -> None:
        socket.sethostname(name)

    def setdomainname(self, name: str) -> None:
        _libc.setdomainname(name)

    def move_mount(self, fd: int, target: str) -> None:
        _libc.move_mount(fd, target)


REAL = Syscalls()
