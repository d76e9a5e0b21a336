"""The bundle's config.json: read, validate before anything touches the system, and the small parsers the other
steps share (namespace types, mount options, id mappings, the cgroups path).

Validation raises InvalidArgument naming the field; nothing here has side effects, so a bad bundle leaves no trace.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from barque.errors import InvalidArgument, NotFound

__all__ = [
    "NAMESPACES",
    "ID_RE",
    "MountOptions",
    "load_bundle",
    "validate",
    "check_id",
    "parse_mount_options",
    "cgroups_path",
    "namespace",
    "new_namespaces",
    "joined_namespaces",
]

# namespace type -> (clone flag, /proc/PID/ns name). Flags as in <linux/sched.h>.
NAMESPACES: dict[str, tuple[int, str]] = {
    "user": (0x10000000, "user"),
    "mount": (0x00020000, "mnt"),
    "pid": (0x20000000, "pid"),
    "network": (0x40000000, "net"),
    "ipc": (0x08000000, "ipc"),
    "uts": (0x04000000, "uts"),
    "cgroup": (0x02000000, "cgroup"),
    "time": (0x00000080, "time"),
}

ID_RE = re.compile(r"^[\w+\-.]+$")
MAX_MAPPING_LINES = 340  # the kernel's limit for uid_map/gid_map
SUPPORTED_MAJOR = "1"

# mount(2) flags by option name: (set?, flag)
_MS = {
    "ro": (True, 0x1), "rw": (False, 0x1),
    "nosuid": (True, 0x2), "suid": (False, 0x2),
    "nodev": (True, 0x4), "dev": (False, 0x4),
    "noexec": (True, 0x8), "exec": (False, 0x8),
    "sync": (True, 0x10), "async": (False, 0x10),
    "remount": (True, 0x20),
    "mand": (True, 0x40), "nomand": (False, 0x40),
    "dirsync": (True, 0x80),
    "noatime": (True, 0x400), "atime": (False, 0x400),
    "nodiratime": (True, 0x800), "diratime": (False, 0x800),
    "bind": (True, 0x1000),
    "rbind": (True, 0x1000 | 0x4000),
    "relatime": (True, 1 << 21), "norelatime": (False, 1 << 21),
    "strictatime": (True, 1 << 24), "nostrictatime": (False, 1 << 24),
    "lazytime": (True, 1 << 25), "nolazytime": (False, 1 << 25),
}
_PROPAGATION = {
    "private": 1 << 18, "rprivate": (1 << 18) | 0x4000,
    "slave": 1 << 19, "rslave": (1 << 19) | 0x4000,
    "shared": 1 << 20, "rshared": (1 << 20) | 0x4000,
    "unbindable": 1 << 17, "runbindable": (1 << 17) | 0x4000,
}
# runc/crun extensions that are not mount(2) options and that barque ignores
_IGNORED = {"tmpcopyup", "idmap", "ridmap", "rro", "rrw", "nosymfollow"}


@dataclass(frozen=True)
class MountOptions:
    flags: int = 0
    propagation: list[int] = field(default_factory=list)
    data: str = ""

    @property
    def bind(self) -> bool:
        return bool(self.flags & 0x1000)

    @property
    def recursive(self) -> bool:
        return bool(self.flags & 0x4000)


def parse_mount_options(options: list[str] | None) -> MountOptions:
    flags, prop, data = 0, [], []
    for opt in options or []:
        if opt in _MS:
            on, bit = _MS[opt]
            flags = flags | bit if on else flags & ~bit
        elif opt in _PROPAGATION:
            prop.append(_PROPAGATION[opt])
        elif opt in _IGNORED:
            continue
        else:
            data.append(opt)
    return MountOptions(flags, prop, ",".join(data))


def check_id(cid: str) -> None:
    if not cid or not ID_RE.match(cid) or cid in (".", ".."):
        raise InvalidArgument(f"invalid container id {cid!r}: use letters, digits, '_', '+', '-' and '.'")


def load_bundle(bundle: Path) -> dict:
    path = bundle / "config.json"
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{path}: no config.json in the bundle") from None
    except OSError as e:
        raise InvalidArgument(f"{path}: cannot read: {e.strerror}") from e
    try:
        spec = json.loads(text)
    except ValueError as e:
        raise InvalidArgument(f"{path}: not valid JSON: {e}") from e
    if not isinstance(spec, dict):
        raise InvalidArgument(f"{path}: the configuration must be a JSON object")
    return spec


def _obj(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"{where} must be an object")
    return value


def _list(value, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidArgument(f"{where} must be an array")
    return value


def _uint(value, where: str, bits: int = 32) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value >= 1 << bits:
        raise InvalidArgument(f"{where} must be an unsigned {bits}-bit integer, not {value!r}")
    return value


def namespace(spec: dict, ns_type: str) -> dict | None:
    for ns in (spec.get("linux") or {}).get("namespaces") or []:
        if ns.get("type") == ns_type:
            return ns
    return None


def new_namespaces(spec: dict) -> list[str]:
    return [ns["type"] for ns in (spec.get("linux") or {}).get("namespaces") or [] if not ns.get("path")]


def joined_namespaces(spec: dict) -> list[tuple[str, str]]:
    return [(ns["type"], ns["path"]) for ns in (spec.get("linux") or {}).get("namespaces") or [] if ns.get("path")]


def validate_mappings(maps, where: str) -> list[dict]:
    maps = _list(maps, where)
    if len(maps) > MAX_MAPPING_LINES:
        raise InvalidArgument(f"{where}: at most {MAX_MAPPING_LINES} mappings, not {len(maps)}")
    spans_c, spans_h = [], []
    for i, m in enumerate(maps):
        m = _obj(m, f"{where}[{i}]")
        c = _uint(m.get("containerID"), f"{where}[{i}].containerID")
        h = _uint(m.get("hostID"), f"{where}[{i}].hostID")
        s = _uint(m.get("size"), f"{where}[{i}].size")
        if s == 0:
            raise InvalidArgument(f"{where}[{i}].size must be at least 1")
        if c + s > 1 << 32 or h + s > 1 << 32:
            raise InvalidArgument(f"{where}[{i}] runs past the 32-bit id range")
        for lo, hi in spans_c:
            if c < hi and lo < c + s:
                raise InvalidArgument(f"{where}[{i}]: container ids {c}-{c + s - 1} overlap another mapping")
        for lo, hi in spans_h:
            if h < hi and lo < h + s:
                raise InvalidArgument(f"{where}[{i}]: host ids {h}-{h + s - 1} overlap another mapping")
        spans_c.append((c, c + s))
        spans_h.append((h, h + s))
    return maps


def map_id(maps: list[dict], cid: int) -> int | None:
    """The host id a container id maps to, or None when unmapped."""
    for m in maps:
        if m["containerID"] <= cid < m["containerID"] + m["size"]:
            return m["hostID"] + cid - m["containerID"]
    return None


def validate(spec: dict, bundle: Path) -> Path:
    """Check everything that can be checked without side effects; return the absolute rootfs path."""
    version = spec.get("ociVersion")
    if not isinstance(version, str) or not version:
        raise InvalidArgument("config.json: ociVersion is missing")
    if version.split(".")[0] != SUPPORTED_MAJOR:
        raise InvalidArgument(f"config.json: unsupported ociVersion {version!r} (barque runs 1.x)")

    root = _obj(spec.get("root"), "root")
    if not isinstance(root.get("path"), str) or not root["path"]:
        raise InvalidArgument("config.json: root.path is missing")
    rootfs = Path(root["path"])
    if not rootfs.is_absolute():
        rootfs = bundle / rootfs
    rootfs = Path(os.path.realpath(rootfs))
    if not rootfs.is_dir():
        raise NotFound(f"rootfs {rootfs} does not exist or is not a directory (root.path in config.json)")

    process = spec.get("process")
    if process is None:
        raise InvalidArgument("config.json: process is missing")
    validate_process(process, "process")

    hostname = spec.get("hostname")
    if hostname is not None and not isinstance(hostname, str):
        raise InvalidArgument("hostname must be a string")

    for i, m in enumerate(_list(spec.get("mounts"), "mounts")):
        m = _obj(m, f"mounts[{i}]")
        dest = m.get("destination")
        if not isinstance(dest, str) or not dest.startswith("/"):
            raise InvalidArgument(f"mounts[{i}].destination must be an absolute path, not {dest!r}")
        if not isinstance(_list(m.get("options"), f"mounts[{i}].options"), list):
            raise InvalidArgument(f"mounts[{i}].options must be an array")

    linux = _obj(spec.get("linux"), "linux")
    seen = set()
    for i, ns in enumerate(_list(linux.get("namespaces"), "linux.namespaces")):
        ns = _obj(ns, f"linux.namespaces[{i}]")
        t = ns.get("type")
        if t not in NAMESPACES:
            raise InvalidArgument(f"unsupported namespace type {t!r} (linux.namespaces[{i}])")
        if t in seen:
            raise InvalidArgument(f"namespace {t!r} is listed twice")
        seen.add(t)
        path = ns.get("path")
        if path is not None and (not isinstance(path, str) or not os.path.exists(path)):
            raise NotFound(f"namespace {t}: path {path!r} does not exist")

    uid_maps = validate_mappings(linux.get("uidMappings"), "linux.uidMappings")
    gid_maps = validate_mappings(linux.get("gidMappings"), "linux.gidMappings")
    user_ns = namespace(spec, "user")
    if (uid_maps or gid_maps) and user_ns is None:
        raise InvalidArgument("uid/gid mappings are given but there is no user namespace in linux.namespaces")
    if user_ns is not None and not user_ns.get("path"):
        if not uid_maps or not gid_maps:
            raise InvalidArgument("a new user namespace needs both linux.uidMappings and linux.gidMappings")
        user = process.get("user") or {}
        if map_id(uid_maps, user.get("uid", 0)) is None:
            raise InvalidArgument(f"process.user.uid {user.get('uid', 0)} is not mapped by linux.uidMappings")
        if map_id(gid_maps, user.get("gid", 0)) is None:
            raise InvalidArgument(f"process.user.gid {user.get('gid', 0)} is not mapped by linux.gidMappings")
    if (hostname or spec.get("domainname")) and (namespace(spec, "uts") is None):
        raise InvalidArgument("hostname/domainname need a private UTS namespace (add {\"type\": \"uts\"})")
    if namespace(spec, "mount") is None:
        raise InvalidArgument("barque needs a mount namespace (add {\"type\": \"mount\"} to linux.namespaces)")

    cg = linux.get("cgroupsPath")
    if cg is not None and (not isinstance(cg, str) or "\0" in cg or ".." in cg.split("/")):
        raise InvalidArgument(f"invalid linux.cgroupsPath {cg!r}")
    prop = linux.get("rootfsPropagation")
    if prop is not None and prop not in _PROPAGATION:
        raise InvalidArgument(f"invalid linux.rootfsPropagation {prop!r}")
    for key, value in _obj(linux.get("sysctl"), "linux.sysctl").items():
        if not isinstance(value, str) or "/" in key or ".." in key:
            raise InvalidArgument(f"invalid linux.sysctl {key!r}: {value!r}")
    for i, d in enumerate(_list(linux.get("devices"), "linux.devices")):
        d = _obj(d, f"linux.devices[{i}]")
        if not isinstance(d.get("path"), str) or not d["path"].startswith("/dev/"):
            raise InvalidArgument(f"linux.devices[{i}].path must be under /dev, not {d.get('path')!r}")
        if d.get("type") not in ("c", "b", "u", "p"):
            raise InvalidArgument(f"linux.devices[{i}].type must be c, b, u or p, not {d.get('type')!r}")
        if d["type"] != "p":
            _uint(d.get("major"), f"linux.devices[{i}].major", 32)
            _uint(d.get("minor"), f"linux.devices[{i}].minor", 32)

    hooks = _obj(spec.get("hooks"), "hooks")
    for phase, entries in hooks.items():
        for i, h in enumerate(_list(entries, f"hooks.{phase}")):
            h = _obj(h, f"hooks.{phase}[{i}]")
            if not isinstance(h.get("path"), str) or not h["path"].startswith("/"):
                raise InvalidArgument(f"hooks.{phase}[{i}].path must be an absolute path")
            if h.get("timeout") is not None and (_uint(h["timeout"], f"hooks.{phase}[{i}].timeout") == 0):
                raise InvalidArgument(f"hooks.{phase}[{i}].timeout must be positive")
    return rootfs


def validate_process(process, where: str = "process") -> None:
    process = _obj(process, where)
    args = process.get("args")
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise InvalidArgument(f"{where}.args must be a non-empty array of strings")
    cwd = process.get("cwd", "/")
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise InvalidArgument(f"{where}.cwd must be an absolute path, not {cwd!r}")
    for e in _list(process.get("env"), f"{where}.env"):
        if not isinstance(e, str) or "=" not in e:
            raise InvalidArgument(f"{where}.env entries must be KEY=VALUE strings, not {e!r}")
    user = _obj(process.get("user"), f"{where}.user")
    _uint(user.get("uid", 0), f"{where}.user.uid")
    _uint(user.get("gid", 0), f"{where}.user.gid")
    for g in _list(user.get("additionalGids"), f"{where}.user.additionalGids"):
        _uint(g, f"{where}.user.additionalGids[]")
    if user.get("umask") is not None:
        _uint(user["umask"], f"{where}.user.umask")
    for i, r in enumerate(_list(process.get("rlimits"), f"{where}.rlimits")):
        r = _obj(r, f"{where}.rlimits[{i}]")
        if rlimit_number(r.get("type")) is None:
            raise InvalidArgument(f"{where}.rlimits[{i}]: unknown rlimit type {r.get('type')!r}")
        soft = _uint(r.get("soft"), f"{where}.rlimits[{i}].soft", 64)
        hard = _uint(r.get("hard"), f"{where}.rlimits[{i}].hard", 64)
        if soft > hard:
            raise InvalidArgument(f"{where}.rlimits[{i}] ({r['type']}): soft limit {soft} exceeds hard {hard}")
    console = process.get("consoleSize")
    if console is not None:
        console = _obj(console, f"{where}.consoleSize")
        _uint(console.get("height", 0), f"{where}.consoleSize.height", 16)
        _uint(console.get("width", 0), f"{where}.consoleSize.width", 16)
    oom = process.get("oomScoreAdj")
    if oom is not None and (not isinstance(oom, int) or not -1000 <= oom <= 1000):
        raise InvalidArgument(f"{where}.oomScoreAdj must be between -1000 and 1000, not {oom!r}")


_RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4, "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}


def rlimit_number(name) -> int | None:
    return _RLIMITS.get(name) if isinstance(name, str) else None


def cgroups_path(spec: dict, cid: str) -> str:
    """linux.cgroupsPath, or barque's default `/barque/<id>` (under the parent whose limits bind every container)."""
    path = (spec.get("linux") or {}).get("cgroupsPath")
    return path if path else f"/barque/{cid}"
