"""`diff`: what a container changed in its own writable layer, as Docker lists it — and the same changes as `commit`
packs them into a layer.

The snapshotter says what to compare (`diff_source`): overlay's upper directory over its lower layers, or, for vfs
and btrfs, the container's whole tree against its image's; barque.layers turns either into `Change` values.

Two things are left out, so that a container that changed nothing shows nothing. barque has no separate "init"
layer as Docker has, so the empty files and directories the runtime creates as mount points (/etc/hosts, /proc…)
sit in the container's own layer; Docker's init layer keeps them out of its diffs and commits, and so does this.
And a directory that only appears because something below it was touched (overlay copies it up; its mtime moves)
is kept only while something under it is still a change, or when its own mode or owner changed — the rule of
Docker's tree comparison, which ignores the mtime of directories. Every parent of a change is listed as changed
("C"), as Docker lists them.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

from barque.layers import Change

__all__ = ["MOUNT_POINTS", "layer_changes", "snapshot_changes", "diff", "clean_changes"]

# what the runtime may create in the container's own layer as mount points (Docker's init layer holds these)
MOUNT_POINTS = frozenset({
    "etc", "etc/hosts", "etc/hostname", "etc/resolv.conf", "dev", "proc", "sys", "sbin/docker-init",
})

_LETTERS = {"add": "A", "modify": "C", "delete": "D"}

LowerStat = Callable[[str], "os.stat_result | None"]


def _ancestors(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _lower_lookup(lowers: Sequence[Path] | None, parent: Path | None) -> LowerStat:
    """How the image showed a path: the top-most overlay lower holding it, or the parent tree of vfs/btrfs."""
    if lowers is not None:
        def in_lowers(path: str) -> os.stat_result | None:
            for lower in lowers:
                st = _lstat(lower / path)
                if st is not None:
                    return st
            return None
        return in_lowers
    return lambda path: None if parent is None else _lstat(parent / path)


def _owner_or_mode_changed(change: Change, lower_stat: LowerStat, ids=None) -> bool:
    assert change.source is not None
    new, old = _lstat(change.source), lower_stat(change.path)
    if new is None or old is None:
        return True
    new_owner = (new.st_uid, new.st_gid) if ids is None else ids(new.st_uid, new.st_gid)
    return (new.st_mode, *new_owner) != (old.st_mode, old.st_uid, old.st_gid)


def _runtime_made(change: Change, needed: set[str]) -> bool:
    """An empty file or directory the runtime made as a mount point (nothing of the user's below it)."""
    if change.kind != "add" or change.path not in MOUNT_POINTS or change.path in needed:
        return False
    st = _lstat(change.source) if change.source is not None else None
    if st is None:
        return False
    return stat.S_ISDIR(st.st_mode) or (stat.S_ISREG(st.st_mode) and st.st_size == 0)


def clean_changes(changes: Sequence[Change], lower_stat: LowerStat, ids=None) -> list[Change]:
    """Drop the runtime's mount points and directories that are only there as parents of what was dropped (see
    the module docstring). Returns the rest sorted by path bytes, parents first. `ids` translates the owners of
    the container's layer to the image's (barque.container.userns.container_ids)."""
    ordered = sorted(changes, key=lambda ch: os.fsencode(ch.path))
    needed: set[str] = set()  # ancestors of the changes kept so far (children come after parents: walk backwards)
    kept: list[Change] = []
    for ch in reversed(ordered):
        if _runtime_made(ch, needed):
            continue
        if (ch.kind == "modify" and not ch.opaque and ch.path not in needed and ch.source is not None
                and stat.S_ISDIR(os.lstat(ch.source).st_mode) and not _owner_or_mode_changed(ch, lower_stat, ids)):
            continue
        kept.append(ch)
        needed.update(_ancestors(ch.path))
    kept.reverse()
    return kept


def layer_changes(engine, c) -> list[Change]:
    """The container's changes to its image, ready for `barque.layers.pack_layer`."""
    from barque.container.userns import container_ids

    return snapshot_changes(engine.snapshotter, c.private["snapshot"], container_ids(c))


def snapshot_changes(snapshotter, key: str, ids=None) -> list[Change]:
    """The changes of the active snapshot `key` to its parent, without the runtime's mount points."""
    from barque.layers import diff_dirs, overlay_changes

    kind, first, second = snapshotter.diff_source(key)
    if kind == "overlay":
        lowers = [Path(p) for p in second]
        return clean_changes(list(overlay_changes(Path(first), lowers)), _lower_lookup(lowers, None), ids)
    parent = Path(first) if first is not None else None
    return clean_changes(list(diff_dirs(parent, Path(second))), _lower_lookup(None, parent))


def diff(engine, c) -> list[tuple[str, str]]:
    """Docker's `diff` listing: ("A"|"C"|"D", "/path") sorted by path, every parent of a change listed as "C"."""
    changes = layer_changes(engine, c)
    listed = {ch.path: _LETTERS[ch.kind] for ch in changes}
    for ch in changes:
        for parent in _ancestors(ch.path):
            listed.setdefault(parent, "C")
    return [(listed[p], "/" + p) for p in sorted(listed, key=os.fsencode)]
