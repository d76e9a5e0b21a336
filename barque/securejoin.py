"""Joining a path to a root the way a chroot would resolve it: symlinks followed inside the root, never out of it
(what Go's securejoin does). Kept apart from the runtime so that reading a build context does not import it."""

from __future__ import annotations

import os
import stat

from barque.errors import InvalidArgument

__all__ = ["secure_join"]


def secure_join(root: str, unsafe: str, max_links: int = 255) -> str:
    """`root` + `unsafe`, resolving symlinks in `unsafe` as if `root` were `/`: the result never leaves `root`.
    Components that do not exist yet are kept as they are (the caller creates them)."""
    root = os.path.abspath(root)
    parts = [p for p in unsafe.split("/") if p]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except OSError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > max_links:
                raise InvalidArgument(f"too many levels of symbolic links resolving {unsafe!r} in {root}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)
