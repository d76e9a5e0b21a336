"""User namespaces, the parent's side: writing a child's uid/gid maps, and the idmapped rootfs.

Maps: the runtime runs as root, so it writes /proc/PID/uid_map and gid_map itself (no newuidmap), and leaves
setgroups allowed so the container can set its additional groups.

File ownership in a remapped container: with the annotation `org.barque.idmap-rootfs: "true"` the runtime gives the
container an *idmapped* bind of its rootfs (open_tree(OPEN_TREE_CLONE) + mount_setattr(MOUNT_ATTR_IDMAP) with the
container's user namespace, then move_mount inside the container), so files owned by 0 on disk appear owned by the
container's root, which is an ordinary user outside — no chown of the image. The filesystem must support idmapped
mounts (ext4, xfs, btrfs, tmpfs on 6.x; an overlayfs mount itself does not, but overlay accepts idmapped lower layers,
so an engine idmaps the layer directories before mounting the overlay). Without the annotation the rootfs is used as
it is: the engine must then hand over a snapshot chowned into the mapped range.
"""

from __future__ import annotations

import os
from pathlib import Path

from barque.errors import FailedPrecondition
from barque.linux import _libc

__all__ = ["IDMAP_ANNOTATION", "write_mappings", "idmapped_tree", "wants_idmap"]

IDMAP_ANNOTATION = "org.barque.idmap-rootfs"


def _lines(maps: list[dict]) -> str:
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps)


def write_mappings(pid: int, uid_maps: list[dict], gid_maps: list[dict], proc: Path = Path("/proc")) -> None:
    for name, maps in (("uid_map", uid_maps), ("gid_map", gid_maps)):
        path = proc / str(pid) / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, _lines(maps).encode())
            finally:
                os.close(fd)
        except OSError as e:
            raise FailedPrecondition(f"writing {name} of the container ({_lines(maps).strip()!r}): "
                                     f"{e.strerror or e}") from e


def wants_idmap(spec: dict) -> bool:
    return (spec.get("annotations") or {}).get(IDMAP_ANNOTATION) == "true"


def idmapped_tree(path: str, userns_pid: int, proc: Path = Path("/proc")) -> int:
    """A detached, recursive, idmapped copy of the mount tree at `path`, mapped through the user namespace of
    `userns_pid`: a file descriptor for move_mount."""
    userns = os.open(proc / str(userns_pid) / "ns" / "user", os.O_RDONLY | os.O_CLOEXEC)
    try:
        fd = _libc.open_tree(path)
        try:
            _libc.mount_setattr(fd, _libc.MOUNT_ATTR_IDMAP, userns)
        except OSError as e:
            os.close(fd)
            raise FailedPrecondition(
                f"cannot idmap the rootfs {path} ({e.strerror or e}): its filesystem may not support idmapped "
                f"mounts; drop the {IDMAP_ANNOTATION} annotation and chown the rootfs into the mapped range"
            ) from e
        return fd
    finally:
        os.close(userns)
