"""Which cgroup hierarchies are mounted under a root, and whether that makes the host v1, v2 or hybrid.

The truth is in mountinfo: a v1 hierarchy is a `cgroup` mount whose super options name its controllers
(`rw,cpu,cpuacct`) or its name (`name=systemd`); the v2 hierarchy is a `cgroup2` mount. When mountinfo names no
cgroup mount under `root` (a fixture tree, or a root seen through a bind mount), the tree itself is read instead:
`root/cgroup.controllers` means v2 at the root; otherwise every sub-directory is a hierarchy, named by its
controllers (`cpu,cpuacct`), `systemd` for name=systemd, or a v2 one when it holds `cgroup.controllers`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from barque.errors import FailedPrecondition, InvalidArgument

V1, V2, HYBRID = "v1", "v2", "hybrid"
MODES = (V1, V2, HYBRID)

DEFAULT_ROOT = Path("/sys/fs/cgroup")
DEFAULT_MOUNTINFO = Path("/proc/self/mountinfo")


@dataclass(frozen=True)
class Hierarchy:
    """One mounted cgroup hierarchy.

    `controllers` are the v1 controllers bound to it (`{"cpu", "cpuacct"}`), or for v2 those listed in the root's
    `cgroup.controllers`; `name` is a v1 named hierarchy (`"systemd"`) or None. `mount_root` is the cgroup the mount
    shows at its mount point (`/` on a host, `/docker/<id>` inside a container without a cgroup namespace).
    """

    version: int
    mount_point: Path
    controllers: frozenset[str] = field(default_factory=frozenset)
    name: str | None = None
    mount_root: str = "/"

    @property
    def key(self) -> str:
        """How /proc/self/cgroup names it: `cpu,cpuacct`, `name=systemd`, or `` for v2."""
        if self.version == 2:
            return ""
        parts = sorted(self.controllers)
        if self.name:
            parts.append(f"name={self.name}")
        return ",".join(parts)


def _unescape(field_: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal
    if "\\" not in field_:
        return field_
    out, i = [], 0
    while i < len(field_):
        if field_[i] == "\\" and i + 3 < len(field_) and field_[i + 1:i + 4].isdigit():
            out.append(chr(int(field_[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field_[i])
            i += 1
    return "".join(out)


def _read_controllers(path: Path) -> frozenset[str]:
    try:
        return frozenset(path.read_text().split())
    except OSError:
        return frozenset()


def _from_mountinfo(root: Path, mountinfo: Path) -> list[Hierarchy]:
    try:
        text = mountinfo.read_text()
    except OSError:
        return []
    root_s = os.path.normpath(str(root))
    found: list[Hierarchy] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        lf, rf = left.split(), right.split()
        if not sep or len(lf) < 5 or len(rf) < 3 or rf[0] not in ("cgroup", "cgroup2"):
            continue
        mount_point = os.path.normpath(_unescape(lf[4]))
        if mount_point != root_s and not mount_point.startswith(root_s.rstrip("/") + "/"):
            continue
        mount_root = _unescape(lf[3])
        if rf[0] == "cgroup2":
            found.append(Hierarchy(2, Path(mount_point), _read_controllers(Path(mount_point) / "cgroup.controllers"),
                                   None, mount_root))
            continue
        controllers, name = set(), None
        for opt in rf[2].split(","):
            if opt.startswith("name="):
                name = opt[5:]
            elif opt not in ("rw", "ro", "none", "xattr", "noprefix", "cpuset_v2_mode", "clone_children",
                             "favordynmods") and "=" not in opt:
                controllers.add(opt)
        found.append(Hierarchy(1, Path(mount_point), frozenset(controllers), name, mount_root))
    # one hierarchy may be mounted several times (bind mounts): keep the shortest mount point of each
    unique: dict[tuple, Hierarchy] = {}
    for h in sorted(found, key=lambda h: len(str(h.mount_point))):
        unique.setdefault((h.version, h.key), h)
    return list(unique.values())


def _from_tree(root: Path) -> list[Hierarchy]:
    if (root / "cgroup.controllers").exists():
        return [Hierarchy(2, root, _read_controllers(root / "cgroup.controllers"))]
    found = []
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    for d in entries:
        if d.is_symlink() or not d.is_dir():
            continue
        if (d / "cgroup.controllers").exists():
            found.append(Hierarchy(2, d, _read_controllers(d / "cgroup.controllers")))
        elif (d / "cgroup.procs").exists():
            if d.name in ("systemd", "elogind"):
                found.append(Hierarchy(1, d, frozenset(), d.name))
            elif d.name.startswith("name="):
                found.append(Hierarchy(1, d, frozenset(), d.name[5:]))
            else:
                found.append(Hierarchy(1, d, frozenset(d.name.split(","))))
    return found


def discover(root: Path = DEFAULT_ROOT, mountinfo: Path = DEFAULT_MOUNTINFO) -> list[Hierarchy]:
    """Every cgroup hierarchy mounted at or under `root`."""
    return _from_mountinfo(Path(root), Path(mountinfo)) or _from_tree(Path(root))


def mode_of(hierarchies: list[Hierarchy]) -> str:
    has_v1 = any(h.version == 1 for h in hierarchies)
    has_v2 = any(h.version == 2 for h in hierarchies)
    if has_v1 and has_v2:
        return HYBRID
    if has_v1:
        return V1
    if has_v2:
        return V2
    raise FailedPrecondition("no cgroup filesystem is mounted there: cgroups are unavailable")


def detect_mode(root: Path = DEFAULT_ROOT, mountinfo: Path = DEFAULT_MOUNTINFO) -> str:
    """"v1", "v2" or "hybrid" (v1 controllers plus a cgroup2 mount, usually `root/unified`)."""
    found = discover(root, mountinfo)
    if not found:
        raise FailedPrecondition(f"no cgroup filesystem is mounted at or under {root}: cgroups are unavailable")
    return mode_of(found)


def select(hierarchies: list[Hierarchy], mode: str, root: Path) -> list[Hierarchy]:
    """The hierarchies a manager in `mode` uses: v1 ignores a cgroup2 mount, v2 uses only the cgroup2 mount."""
    if mode not in MODES:
        raise InvalidArgument(f"unknown cgroup mode {mode!r}: expected one of {', '.join(MODES)}")
    v1 = [h for h in hierarchies if h.version == 1]
    v2 = [h for h in hierarchies if h.version == 2]
    if mode == V1:
        chosen = v1
    elif mode == V2:
        chosen = v2[:1]
    else:
        chosen = v1 + v2[:1] if v1 and v2 else []
    if not chosen:
        raise FailedPrecondition(f"cgroup mode {mode} requested but {root} does not hold such hierarchies")
    return chosen
