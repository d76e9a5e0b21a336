"""What changed between two directory trees, or in an overlayfs upper directory.

Both producers yield :class:`Change` values sorted by the byte order of their paths, as Docker sorts its
changes, so parents come before their children and the result does not depend on readdir order.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from barque.errors import InvalidArgument
from barque.layers._overlay import LowerStack, is_opaque, is_whiteout_device
from barque.layers._xattrs import read_xattrs

__all__ = ["Change", "KINDS", "diff_dirs", "overlay_changes"]

log = logging.getLogger(__name__)

KINDS = ("add", "modify", "delete")


@dataclass(frozen=True)
class Change:
    """One changed path. ``path`` is "/"-separated, relative, without a leading slash ("etc/passwd").

    ``source`` is where the new version lives on disk (None for a delete). ``opaque`` marks a directory whose
    content in lower layers is hidden entirely (overlayfs' opaque dirs); the tar writer emits
    "DIR/.wh..wh..opq" for it.
    """

    kind: str
    path: str
    source: Path | None
    opaque: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidArgument(f"invalid change kind {self.kind!r} for {self.path!r}: expected add, modify or delete")
        if (self.source is None) != (self.kind == "delete"):
            raise InvalidArgument(f"change {self.kind} of {self.path!r}: a source is needed exactly when not deleting")


def _sort_key(change: Change) -> bytes:
    return os.fsencode(change.path)


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


# ------------------------------------------------------------------------------------------------ diff_dirs


def _scan(path: Path | None) -> dict[str, os.DirEntry[str]]:
    if path is None:
        return {}
    with os.scandir(path) as it:
        return {e.name: e for e in it}


def _differs(lower: os.DirEntry[str], upper: os.DirEntry[str]) -> bool:
    """Docker's comparison (mode, owner, device, size and mtime of non-directories) plus mtime of directories,
    xattrs, symlink targets and link counts (so that a new hard link carries its first name along)."""
    a = lower.stat(follow_symlinks=False)
    b = upper.stat(follow_symlinks=False)
    if (a.st_mode, a.st_uid, a.st_gid, a.st_mtime_ns) != (b.st_mode, b.st_uid, b.st_gid, b.st_mtime_ns):
        return True
    if not stat.S_ISDIR(b.st_mode):
        if (a.st_size, a.st_rdev, a.st_nlink) != (b.st_size, b.st_rdev, b.st_nlink):
            return True
        if stat.S_ISLNK(b.st_mode) and os.readlink(lower.path) != os.readlink(upper.path):
            return True
    return read_xattrs(lower.path) != read_xattrs(upper.path)


def _added_tree(entry: os.DirEntry[str], rel: str) -> Iterator[Change]:
    yield Change("add", rel, Path(entry.path))
    if entry.is_dir(follow_symlinks=False):
        for name, child in _scan(Path(entry.path)).items():
            yield from _added_tree(child, _join(rel, name))


def _diff(lower: Path | None, upper: Path, rel: str) -> list[Change]:
    out: list[Change] = []
    lowers = _scan(lower)
    uppers = _scan(upper)
    for name, l_entry in lowers.items():
        if name not in uppers:
            out.append(Change("delete", _join(rel, name), None))
    for name, u_entry in uppers.items():
        path = _join(rel, name)
        l_entry = lowers.get(name)
        if l_entry is None:
            out.extend(_added_tree(u_entry, path))
            continue
        u_dir = u_entry.is_dir(follow_symlinks=False)
        l_dir = l_entry.is_dir(follow_symlinks=False)
        if u_dir and l_dir:
            inner = _diff(Path(l_entry.path), Path(u_entry.path), path)
            # a directory with changes inside is part of the layer even if it did not change itself,
            # so that the layer carries its permissions (Docker does the same)
            if inner or _differs(l_entry, u_entry):
                out.append(Change("modify", path, Path(u_entry.path)))
            out.extend(inner)
        elif u_dir:  # a non-directory became a directory: everything inside is new
            out.append(Change("modify", path, Path(u_entry.path)))
            for child_name, child in _scan(Path(u_entry.path)).items():
                out.extend(_added_tree(child, _join(path, child_name)))
        elif _differs(l_entry, u_entry):
            out.append(Change("modify", path, Path(u_entry.path)))
    return out


def diff_dirs(lower: Path | None, upper: Path) -> Iterator[Change]:
    """Changes that turn the tree ``lower`` (None: empty) into ``upper``, by comparing metadata, not content.

    A deleted directory is one "delete" (its children are not listed). Content is not read: as in Docker, a
    file whose size and mtime (ns) are unchanged counts as unchanged, and a differing mtime counts as modified.
    """
    upper = Path(upper)
    if not upper.is_dir():
        raise InvalidArgument(f"cannot diff {str(upper)!r}: not a directory")
    changes = _diff(None if lower is None else Path(lower), upper, "")
    changes.sort(key=_sort_key)
    yield from changes


# ------------------------------------------------------------------------------------------------ overlay


def _overlay_walk(upper: Path, rel: tuple[str, ...], lowers: LowerStack, out: list[Change]) -> None:
    with os.scandir(upper.joinpath(*rel)) as it:
        entries = list(it)
    for entry in entries:
        parts = rel + (entry.name,)
        path = "/".join(parts)
        st = entry.stat(follow_symlinks=False)
        if is_whiteout_device(st):
            out.append(Change("delete", path, None))
            continue
        kind = "modify" if lowers.exists(parts) else "add"
        if stat.S_ISDIR(st.st_mode):
            out.append(Change(kind, path, Path(entry.path), opaque=is_opaque(entry.path)))
            _overlay_walk(upper, parts, lowers, out)
        else:
            out.append(Change(kind, path, Path(entry.path)))


def overlay_changes(upper: Path, lowers: Sequence[Path]) -> Iterator[Change]:
    """The changes recorded in an overlayfs upper directory over ``lowers`` (top-most first).

    Everything in the upper directory is a change (directories there were copied up because something below
    them changed, as Docker's overlay2 driver also treats them). A 0:0 character device is a delete; a
    directory with trusted.overlay.opaque="y" is opaque. Other trusted.overlay.* attributes (origin, impure,
    redirect, metacopy) are overlay's own bookkeeping and never reach the layer.
    """
    upper = Path(upper)
    if not upper.is_dir():
        raise InvalidArgument(f"cannot list changes of {str(upper)!r}: not a directory")
    out: list[Change] = []
    _overlay_walk(upper, (), LowerStack(lowers), out)
    out.sort(key=_sort_key)
    yield from out
