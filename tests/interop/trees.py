"""Comparing file trees across engines: barque's mounted view against a root filesystem tar from another tool."""

from __future__ import annotations

import tarfile
from pathlib import Path

# What Docker's init layer adds or overrides in every container (moby daemon/initlayer and the container's
# runtime files), so `docker export` shows them whatever the image holds.
DOCKER_INIT_PATHS = frozenset({
    ".dockerenv", "dev", "dev/console", "dev/pts", "dev/shm", "etc", "etc/hostname", "etc/hosts", "etc/mtab",
    "etc/resolv.conf", "proc", "sys",
})


def tar_listing(path: Path) -> dict[str, tuple]:
    """The shape of tests.integration.imagetree.tree_listing, read from a flat root filesystem tar (docker export):
    path -> (type, mode, uid, gid, size, link target, hard-linked)."""
    out: dict[str, tuple] = {}
    hardlinked: set[str] = set()
    with tarfile.open(path) as tf:
        members = tf.getmembers()
    sizes = {}
    for m in members:
        name = _norm(m.name)
        if not name:
            continue
        if m.islnk():
            target = _norm(m.linkname)
            hardlinked.update((name, target))
            kind, size = "f", sizes.get(target, 0)
        elif m.issym():
            kind, size = "l", 0
        elif m.isdir():
            kind, size = "d", 0
        elif m.isfile():
            kind, size = "f", m.size
        else:
            kind, size = {tarfile.CHRTYPE: "c", tarfile.BLKTYPE: "b", tarfile.FIFOTYPE: "p"}.get(m.type, "?"), 0
        sizes[name] = size
        out[name] = (kind, m.mode & 0o7777, m.uid, m.gid, size, m.linkname if m.issym() else "", False)
    for name in hardlinked:
        if name in out:
            out[name] = out[name][:6] + (True,)
    return out


def _norm(name: str) -> str:
    name = name.strip("/")
    while name.startswith("./"):
        name = name[2:]
    return "" if name == "." else name


def without(listing: dict[str, tuple], paths: frozenset[str]) -> dict[str, tuple]:
    """The listing less the given paths and, for those that are directories Docker mounts over, their contents."""
    mounted = ("dev/", "proc/", "sys/")
    return {k: v for k, v in listing.items() if k not in paths and not k.startswith(mounted)}
