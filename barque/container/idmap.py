"""The rootfs of a `--userns remap` container on overlay: overlayfs over *idmapped* layers.

An overlay mount cannot itself be idmapped, but its layers can: each layer directory (and the upper/work pair) is
cloned with open_tree, idmapped through a user namespace holding the container's mappings (mount_setattr
MOUNT_ATTR_IDMAP), attached under a private staging directory, and the overlay is mounted on those. The overlay
keeps its own private clones of its layers, so the staging mounts are detached right after. Seen from the host the
rootfs then shows the image's root-owned files as owned by the mapped root (231072 by default); inside the
container's user namespace they are root's. The upper layer is not idmapped (overlayfs copies up with the
mounter's credentials, host root, which an idmapped upper could not represent): what the container writes is
stored with its host ids (231072…), as Docker's userns-remap stores it.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from barque.errors import FailedPrecondition
from barque.linux import _libc

__all__ = ["mount_idmapped_overlay", "userns_fd"]


def userns_fd(uid_maps: list, gid_maps: list) -> int:
    """A file descriptor of a new user namespace with these mappings ([container, host, size] triples)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child only holds the namespace open
        try:
            os.close(r)
            _libc.unshare(_libc.CLONE_NEWUSER)
            os.write(w, b"x")
            os.close(w)
            signal.pause()
        finally:
            os._exit(0)
    os.close(w)
    try:
        if os.read(r, 1) != b"x":
            raise FailedPrecondition("could not make a user namespace for the idmapped rootfs")
        for name, maps in (("uid_map", uid_maps), ("gid_map", gid_maps)):
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write("".join(f"{a} {b} {c}\n" for a, b, c in maps))
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(r)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def _attach_idmapped(src: str, dest: Path, ns_fd: int) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    fd = _libc.open_tree(src)
    try:
        _libc.mount_setattr(fd, _libc.MOUNT_ATTR_IDMAP, ns_fd)
        _libc.move_mount(fd, str(dest))
    except OSError as e:
        raise FailedPrecondition(f"cannot idmap the layer {src}: {e.strerror or e}") from e
    finally:
        os.close(fd)


def mount_idmapped_overlay(plan, target: Path, staging: Path, uid_maps: list, gid_maps: list) -> None:
    """Mount the overlay `plan` (a snapshot's single overlay Mount) on `target` over idmapped copies of its layers."""
    from barque.snapshot.base import Mount
    from barque.snapshot.mount import mount_all, parse_overlay

    ov = parse_overlay(plan)
    ns = userns_fd(uid_maps, gid_maps)
    staging.mkdir(parents=True, exist_ok=True)
    attached: list[Path] = []
    try:
        lowers = []
        for i, lower in enumerate(ov.lowers):
            dest = staging / f"l{i}"
            _attach_idmapped(lower, dest, ns)
            attached.append(dest)
            lowers.append(str(dest))
        options = [o for o in ov.other] + [f"lowerdir={':'.join(lowers)}"]
        if ov.upper is not None:  # not idmapped: overlay writes it with the mounter's (host root's) credentials
            options += [f"upperdir={ov.upper}", f"workdir={ov.work}"]
            # the merged root directory takes its owner from the upper one: make it the mapped root's
            st = os.stat(ov.upper)
            if st.st_uid == 0 and st.st_gid == 0:
                os.chown(ov.upper, uid_maps[0][1], gid_maps[0][1])
        mount_all([Mount("overlay", "overlay", tuple(options))], target)
    finally:
        os.close(ns)
        for d in attached:
            try:
                _libc.umount(str(d), _libc.MNT_DETACH)
            except OSError:
                pass
        shutil.rmtree(staging, ignore_errors=True)
