"""btrfs: every snapshot a btrfs subvolume; a child is a btrfs snapshot of its parent (copy-on-write, instant).

``snapshots/<id>`` is the subvolume. Committed snapshots and views are made read-only with the subvolume ``ro``
property (after they are renamed into place: a read-only subvolume cannot be moved). Removing deletes the
subvolume (and any subvolumes a container nested inside it).

Mounts are bind mounts of the subvolume's directory. containerd instead mounts the filesystem's device again with
``subvol=``/``subvolid=``; a bind gives the same tree without having to find the backing device (a loop device, or
one of several devices of a multi-device filesystem), works wherever the path is visible, and is mounted the same
way as the other drivers'. The tools come from btrfs-progs, through subprocess.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from barque.errors import FailedPrecondition
from barque.linux.mountinfo import fs_type
from barque.snapshot._driver import FullTreeSnapshotter, run_tool
from barque.snapshot.base import Kind, Mount
from barque.snapshot.metadata import Record

__all__ = ["BtrfsSnapshotter", "is_subvolume"]

log = logging.getLogger(__name__)

_BTRFS_FIRST_FREE_OBJECTID = 256   # the inode number of every subvolume's root directory


def is_subvolume(path: Path) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return st.st_ino == _BTRFS_FIRST_FREE_OBJECTID and os.path.isdir(path) and fs_type(path) == "btrfs"


class BtrfsSnapshotter(FullTreeSnapshotter):
    name = "btrfs"

    def _check_root(self) -> None:
        kind = fs_type(self.root)
        if kind != "btrfs":
            raise FailedPrecondition(
                f"storage driver btrfs is not available: {self.root} is on {kind or 'an unknown filesystem'}, not "
                f"btrfs (mount a btrfs filesystem there, or use overlay)")
        if shutil.which("btrfs") is None:
            raise FailedPrecondition("storage driver btrfs is not available: the btrfs command (btrfs-progs) is not "
                                     "installed")

    def _build(self, staging: Path, kind: Kind, parent: Record | None) -> None:
        if parent is None:
            run_tool(["btrfs", "subvolume", "create", str(staging)], "creating a btrfs subvolume")
        else:
            run_tool(["btrfs", "subvolume", "snapshot", str(self.snapshot_dir(parent.id)), str(staging)],
                     f"snapshotting {parent.name!r}")

    def _set_ro(self, path: Path, ro: bool) -> None:
        run_tool(["btrfs", "property", "set", "-ts", str(path), "ro", "true" if ro else "false"],
                 f"making {path} {'read-only' if ro else 'writable'}")

    def _seal(self, path: Path, kind: Kind) -> None:
        if kind in (Kind.VIEW, Kind.COMMITTED):
            self._set_ro(path, True)

    def _unseal(self, path: Path) -> None:
        if is_subvolume(path):
            self._set_ro(path, False)

    def _delete_tree(self, path: Path) -> None:
        if not is_subvolume(path):
            if os.path.lexists(path):
                shutil.rmtree(path)
            return
        nested = []
        for dirpath, dirnames, _ in os.walk(path):
            for d in list(dirnames):
                p = Path(dirpath, d)
                if os.path.ismount(p):
                    dirnames.remove(d)   # never walk into something mounted here
                elif os.lstat(p).st_ino == _BTRFS_FIRST_FREE_OBJECTID:
                    nested.append(p)
        if nested:
            self._unseal(path)
        for sub in reversed(nested):  # deepest last found first
            run_tool(["btrfs", "subvolume", "delete", str(sub)], f"deleting nested subvolume {sub}")
        try:
            run_tool(["btrfs", "subvolume", "delete", str(path)], f"deleting subvolume {path}")
        except FailedPrecondition:
            if os.path.lexists(path):
                raise

    def _mounts(self, rec: Record) -> list[Mount]:
        mode = "rw" if rec.kind == Kind.ACTIVE else "ro"
        return [Mount("bind", str(self.snapshot_dir(rec.id)), (mode, "rbind"))]
