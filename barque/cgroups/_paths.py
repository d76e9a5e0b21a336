"""From the OCI spec's `linux.cgroupsPath` to a cgroup path inside each hierarchy.

Three forms, as runc and crun accept them:

- absolute (`/barque/<id>`): relative to each hierarchy's mount point;
- relative (`barque/<id>`): relative to the caller's own cgroup in that hierarchy (read from /proc/self/cgroup);
- systemd (`slice:prefix:name`, e.g. `system.slice:docker:<id>` from containerd's systemd driver): mapped to the
  cgroupfs path systemd would give that unit, `/system.slice/docker-<id>.scope`, with nested slices expanded
  (`a-b.slice` → `/a.slice/a-b.slice`). barque does *not* talk to systemd: it creates the directories itself, so
  systemd does not know the scope — it will neither set nor reset its limits, and `systemctl status` will not show it.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

from barque.errors import InvalidArgument

from ._detect import Hierarchy


def is_systemd_form(path: str) -> bool:
    return not path.startswith("/") and path.count(":") == 2


def expand_slice(slice_: str) -> str:
    """`a-b-c.slice` → `/a.slice/a-b.slice/a-b-c.slice`; `-.slice` is the root slice."""
    if not slice_.endswith(".slice") or "/" in slice_:
        raise InvalidArgument(f"invalid systemd slice {slice_!r}: expected a name ending in .slice, without '/'")
    stem = slice_[: -len(".slice")]
    if stem == "-":
        return "/"
    if not stem or stem.startswith("-") or stem.endswith("-") or "--" in stem:
        raise InvalidArgument(f"invalid systemd slice {slice_!r}")
    out, prefix = [], ""
    for part in stem.split("-"):
        prefix = f"{prefix}-{part}" if prefix else part
        out.append(f"{prefix}.slice")
    return "/" + "/".join(out)


def systemd_to_cgroupfs(path: str) -> str:
    """`slice:prefix:name` → the unit's cgroupfs path; `name` ending in `.slice` is the unit itself."""
    slice_, prefix, name = path.split(":")
    if not name:
        raise InvalidArgument(f"invalid systemd cgroupsPath {path!r}: the name is empty")
    if "/" in name or "/" in prefix:
        raise InvalidArgument(f"invalid systemd cgroupsPath {path!r}: '/' is not allowed")
    parent = expand_slice(slice_ or "system.slice")
    if name.endswith(".slice"):
        unit = name
    else:
        unit = f"{prefix}-{name}.scope" if prefix else f"{name}.scope"
    return posixpath.join(parent, unit)


def own_cgroup(hierarchy: Hierarchy, proc_cgroup: Path) -> str:
    """The caller's cgroup in `hierarchy`, relative to that hierarchy's mount point."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError as e:
        raise InvalidArgument(f"cannot resolve a relative cgroupsPath: {proc_cgroup}: {e.strerror}") from e
    want = hierarchy.key
    for line in lines:
        _, _, rest = line.partition(":")
        keys, _, cg = rest.partition(":")
        if hierarchy.version == 2 and keys == "" or hierarchy.version == 1 and keys and \
                set(keys.split(",")) == set(want.split(",")):
            root = hierarchy.mount_root.rstrip("/")
            if root and (cg == root or cg.startswith(root + "/")):
                cg = cg[len(root):] or "/"
            return cg
    return "/"


def normalize(path: str) -> str:
    """A clean absolute path that stays inside the hierarchy and is not its root."""
    if not path:
        raise InvalidArgument("empty cgroupsPath")
    if "\0" in path:
        raise InvalidArgument(f"invalid cgroupsPath {path!r}")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise InvalidArgument(f"cgroupsPath {path!r} must not contain '..'")
        parts.append(part)
    if not parts:
        raise InvalidArgument(f"cgroupsPath {path!r} names the root cgroup, which barque never manages")
    return "/" + "/".join(parts)


def resolve(spec_path: str, hierarchy: Hierarchy, proc_cgroup: Path) -> str:
    """The cgroup path (absolute, relative to the hierarchy's mount point) for one hierarchy."""
    if is_systemd_form(spec_path):
        return normalize(systemd_to_cgroupfs(spec_path))
    if spec_path.startswith("/"):
        return normalize(spec_path)
    return normalize(posixpath.join(own_cgroup(hierarchy, proc_cgroup), spec_path))
