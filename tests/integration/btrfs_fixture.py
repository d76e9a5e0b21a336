"""A throw-away btrfs filesystem on a loop device, for tests of the btrfs snapshotter.

`loop_btrfs` makes a sparse image file, formats it, attaches it to a free loop device and mounts it; on the way out
— also when the body fails — it unmounts (everything below the mount point too), detaches the loop device and
deletes the image. `btrfs_mount` is a session fixture around it (one filesystem for the whole run keeps the suite
fast); tests take a fresh directory in it each.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

log = logging.getLogger(__name__)

IMAGE_SIZE = 512 * 1024 * 1024


def btrfs_unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (losetup, mount)"
    for tool in ("mkfs.btrfs", "btrfs", "losetup", "mount", "umount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    try:
        if "btrfs" not in Path("/proc/filesystems").read_text():
            subprocess.run(["modprobe", "btrfs"], capture_output=True, check=False)
            if "btrfs" not in Path("/proc/filesystems").read_text():
                return "the kernel has no btrfs"
    except OSError as e:
        return f"cannot read /proc/filesystems: {e}"
    return None


def _run(*argv: str) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


@contextmanager
def loop_btrfs(workdir: Path, size: int = IMAGE_SIZE) -> Iterator[Path]:
    """Yield the mount point of a fresh btrfs filesystem of `size` bytes kept in `workdir`."""
    image = workdir / "btrfs.img"
    mountpoint = workdir / "mnt"
    loopdev: str | None = None
    is_mounted = False
    try:
        with open(image, "wb") as f:
            f.truncate(size)
        _run("mkfs.btrfs", "-q", str(image))
        loopdev = _run("losetup", "--find", "--show", str(image)).strip()
        mountpoint.mkdir()
        _run("mount", "-t", "btrfs", loopdev, str(mountpoint))
        is_mounted = True
        yield mountpoint
    finally:
        if is_mounted:
            try:
                _run("umount", "--recursive", str(mountpoint))
            except RuntimeError as e:
                log.warning("%s; detaching lazily", e)
                subprocess.run(["umount", "--recursive", "--lazy", str(mountpoint)], capture_output=True, check=False)
        if loopdev:
            try:
                _run("losetup", "--detach", loopdev)
            except RuntimeError as e:
                log.warning("%s", e)
        image.unlink(missing_ok=True)
        if mountpoint.exists():
            try:
                mountpoint.rmdir()
            except OSError as e:
                log.warning("cannot remove %s: %s", mountpoint, e)


@pytest.fixture(scope="session")
def btrfs_mount(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    reason = btrfs_unavailable_reason()
    if reason:
        pytest.skip(f"btrfs: {reason}")
    with loop_btrfs(tmp_path_factory.mktemp("btrfs")) as mnt:
        yield mnt
