"""vfs: every snapshot a full copy of its parent — slow and space-hungry, but works on any filesystem.

``snapshots/<id>`` is the snapshot's tree itself. An active snapshot with a parent starts as
``cp -a --reflink=auto`` of the parent (hard links, xattrs, device nodes, ownership and times preserved; on a
filesystem with reflinks — btrfs, xfs — the copy shares extents and is nearly free). A view needs no copy: the
parent is committed, hence immutable, and cannot be removed while the view exists, so a view is a read-only bind
of the parent itself. Mounts are bind mounts. This is containerd's "native" snapshotter and Docker's vfs driver.
"""

from __future__ import annotations

from pathlib import Path

from barque.snapshot._driver import FullTreeSnapshotter, run_tool
from barque.snapshot.base import Kind, Mount
from barque.snapshot.metadata import Record

__all__ = ["VfsSnapshotter"]


class VfsSnapshotter(FullTreeSnapshotter):
    name = "vfs"

    def _build(self, staging: Path, kind: Kind, parent: Record | None) -> None:
        if parent is None or kind == Kind.VIEW:
            staging.mkdir(mode=0o755)
            return
        run_tool(["cp", "-a", "--reflink=auto", "--no-target-directory", str(self.snapshot_dir(parent.id)),
                  str(staging)], f"copying snapshot {parent.name!r}")

    def _tree(self, rec: Record) -> Path:
        """The directory holding the snapshot's files (a view's are its parent's)."""
        if rec.kind == Kind.VIEW and rec.parent_ids:
            return self.snapshot_dir(rec.parent_ids[0])
        return self.snapshot_dir(rec.id)

    def _mounts(self, rec: Record) -> list[Mount]:
        mode = "rw" if rec.kind == Kind.ACTIVE else "ro"
        return [Mount("bind", str(self._tree(rec)), (mode, "rbind"))]
