"""Comparing file trees across engines: barque's mounted view against a root filesystem tar from another tool."""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path

# What Docker's init layer adds or overrides in every container (moby daemon/initlayer and the container's
# runtime files), so `docker export` shows them whatever the image holds.
DOCKER_INIT_PATHS = frozenset({
    ".dockerenv", "dev", "dev/console", "dev/pts", "dev/shm", "etc", "etc/hostname", "etc/hosts", "etc/mtab",
    "etc/resolv.conf", "proc", "sys",
})


def fs_listing(root: Path) -> dict[str, tuple]:
    """path -> (type, mode, uid, gid, size, link target, hard-linked) for every entry under root: the shape of
    tests.integration.imagetree.tree_listing, with fifos and devices told apart from files (p, c, b), and
    "hard-linked" meaning "shares its inode with another path of this tree" rather than st_nlink > 1: on overlayfs
    a file whose hard link was copied up keeps the lower inode's link count although it links nothing any more
    (a tar of the tree, like `docker export`, shows it as a plain file)."""
    out, inodes = {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            kind = ("l" if stat.S_ISLNK(st.st_mode) else "d" if stat.S_ISDIR(st.st_mode)
                    else "p" if stat.S_ISFIFO(st.st_mode) else "c" if stat.S_ISCHR(st.st_mode)
                    else "b" if stat.S_ISBLK(st.st_mode) else "f")
            rel = str(p.relative_to(root))
            out[rel] = (kind, st.st_mode & 0o7777, st.st_uid, st.st_gid, st.st_size if kind == "f" else 0,
                        os.readlink(p) if kind == "l" else "", False)
            if kind == "f":
                inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
    for paths in inodes.values():
        if len(paths) > 1:
            for rel in paths:
                out[rel] = out[rel][:6] + (True,)
    return out


def tar_listing(path: Path) -> dict[str, tuple]:
    """fs_listing's shape, read from a flat root filesystem tar (docker export, a tar for docker import)."""
    out: dict[str, tuple] = {}
    hardlinked: set[str] = set()
    with tarfile.open(path) as tf:
        members = tf.getmembers()
    for m in members:
        name = _norm(m.name)
        if not name:
            continue
        if m.islnk():  # a hard link is its target, a second time
            target = _norm(m.linkname)
            hardlinked.update((name, target))
            if target in out:
                out[name] = out[target]
                continue
            kind, size = "f", 0
        elif m.issym():
            kind, size = "l", 0
        elif m.isdir():
            kind, size = "d", 0
        elif m.isfile():
            kind, size = "f", m.size
        else:
            kind, size = {tarfile.CHRTYPE: "c", tarfile.BLKTYPE: "b", tarfile.FIFOTYPE: "p"}.get(m.type, "?"), 0
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
