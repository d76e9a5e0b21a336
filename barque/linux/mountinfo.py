"""Reading /proc/self/mountinfo: which filesystem holds a path, and what is mounted where."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MountEntry:
    mount_point: str
    fs_type: str
    source: str
    options: str


def _unescape(field: str) -> str:
    return field.encode().decode("unicode_escape") if "\\" in field else field


def mounts(mountinfo: Path = Path("/proc/self/mountinfo")) -> list[MountEntry]:
    result = []
    for line in mountinfo.read_text().splitlines():
        left, _, right = line.partition(" - ")
        lf, rf = left.split(), right.split()
        if len(lf) < 5 or len(rf) < 2:
            continue
        result.append(MountEntry(_unescape(lf[4]), rf[0], _unescape(rf[1]), lf[5] if len(lf) > 5 else ""))
    return result


def fs_type(path: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> str:
    """The type of the filesystem that holds `path` (its nearest existing ancestor)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    p = Path(os.path.realpath(p))
    best, best_type = "", ""
    for m in mounts(mountinfo):
        mp = m.mount_point
        if (str(p) == mp or str(p).startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best):
            best, best_type = mp, m.fs_type
    return best_type


def mounted_under(prefix: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> list[str]:
    pre = str(prefix).rstrip("/") + "/"
    return [m.mount_point for m in mounts(mountinfo) if m.mount_point.startswith(pre) or m.mount_point == str(prefix)]
