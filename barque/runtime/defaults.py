"""The engine's security defaults, Docker-equivalent: capabilities, seccomp profile, masked and read-only paths,
mounts, devices, and a complete OCI runtime config built from them (`base_spec`), plus what --privileged lifts.

Everything here returns plain spec data (plans, not effects); the runtime applies it. Where barque departs from
Docker on purpose:

- `noNewPrivileges` is true by default (Docker's is false unless --security-opt no-new-privileges);
- no inheritable capabilities (Docker and runc stopped setting them after CVE-2022-24769: they let a non-root
  process regain capabilities by exec'ing a binary with inheritable file capabilities);
- `privileged()` also turns no_new_privs off, since --privileged asks for the unrestricted container.
"""

from __future__ import annotations

import copy
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

from barque.errors import InvalidArgument
from barque.runtime import caps as _caps
from barque.runtime.profiles import seccomp_default as _profile

__all__ = [
    "OCI_VERSION",
    "DEFAULT_CAPABILITIES",
    "MASKED_PATHS",
    "READONLY_PATHS",
    "DEFAULT_ENV_PATH",
    "default_seccomp_profile",
    "default_mounts",
    "default_devices",
    "default_device_rules",
    "masked_paths",
    "base_spec",
    "privileged",
]

log = logging.getLogger(__name__)

OCI_VERSION = "1.1.0"

#: Docker's default capability set.
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

#: /proc and /sys paths hidden from containers (Docker's list): host information and kernel interfaces.
MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
    "/sys/devices/virtual/powercap",
)

#: /proc paths containers may read but not write (Docker's list).
READONLY_PATHS: tuple[str, ...] = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

DEFAULT_ENV_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_CPU_DIR = re.compile(r"cpu\d+")


def masked_paths(sys_root: Path = Path("/sys")) -> list[str]:
    """`MASKED_PATHS` plus, as Docker does, each CPU's thermal_throttle directory this host has."""
    extra: list[str] = []
    cpu_dir = sys_root / "devices/system/cpu"
    try:
        cpus = sorted((p for p in cpu_dir.iterdir() if _CPU_DIR.fullmatch(p.name)), key=lambda p: int(p.name[3:]))
    except OSError:
        cpus = []
    for cpu in cpus:
        if (cpu / "thermal_throttle").exists():
            extra.append(f"/sys/devices/system/cpu/{cpu.name}/thermal_throttle")
    return [*MASKED_PATHS, *extra]


# -- seccomp --------------------------------------------------------------------------------------------------

def _family(arch: str | None) -> str:
    name = arch or os.uname().machine
    family = _profile.ARCH_ALIASES.get(name, name)
    if family not in _profile.ARCH_FAMILIES:
        raise InvalidArgument(f"no default seccomp profile for architecture \"{name}\"")
    return family


def _kernel_version(release: str | None = None) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", release or os.uname().release)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def default_seccomp_profile(capabilities: Sequence[str] = DEFAULT_CAPABILITIES, arch: str | None = None,
                            kernel: tuple[int, int] | None = None) -> dict:
    """barque's default seccomp profile for a container granted `capabilities`, in the spec's form.

    `arch` is a machine name (x86_64, aarch64, … or Go's amd64, arm64, …; default: this host's); `kernel` the
    (major, minor) it will run on (default: this host's), which decides whether ptrace and friends are allowed
    to everyone (from 4.8) or only with CAP_SYS_PTRACE. Syscall names this libseccomp cannot resolve for the
    profile's architectures are left out (they would be refused by `build_filter`); such syscalls then fail
    with EPERM, as under a Docker built against the same libseccomp.
    """
    from barque.runtime.seccomp import ARCHITECTURES, known_syscall

    pyseccomp = _caps.import_ffi("pyseccomp")

    _caps.validate_capabilities({"bounding": list(capabilities)})
    family = _family(arch)
    arches = [getattr(pyseccomp.Arch, ARCHITECTURES[a]) for a in _profile.ARCH_FAMILIES[family]]
    dropped: list[str] = []

    def keep(name: str) -> bool:
        if known_syscall(name, arches):
            return True
        dropped.append(name)
        return False

    profile = _profile.render(capabilities, family, kernel or _kernel_version(), keep)
    if dropped:
        log.debug("default seccomp profile: libseccomp does not know %s", ", ".join(sorted(set(dropped))))
    return profile


# -- mounts and devices ---------------------------------------------------------------------------------------

_MOUNTS: tuple[dict, ...] = (
    {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
     "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
     "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
)


def default_mounts() -> list[dict]:
    """The spec mounts every container gets (Docker's): proc, /dev tmpfs, devpts, sysfs ro, cgroup ro, mqueue, shm."""
    return copy.deepcopy(list(_MOUNTS))


# (path, major, minor) of the character devices every container gets, all 0666 and owned by root.
_DEVICES: tuple[tuple[str, int, int], ...] = (
    ("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7), ("/dev/random", 1, 8), ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
)


def default_devices() -> list[dict]:
    """The spec's `linux.devices` for the nodes every container gets: null zero full random urandom tty."""
    return [{"path": path, "type": "c", "major": major, "minor": minor, "fileMode": 0o666, "uid": 0, "gid": 0}
            for path, major, minor in _DEVICES]


def default_device_rules() -> list[dict]:
    """The device cgroup allowlist (`linux.resources.devices`): deny all, then what Docker (runc) allows.

    mknod of any device (it cannot be opened unless allowed below), the default nodes, /dev/console, /dev/ptmx
    and the container's own ptys (/dev/pts/*, major 136).
    """
    def allow(type_: str, major: int | None, minor: int | None, access: str) -> dict:
        rule: dict = {"allow": True, "type": type_, "access": access}
        if major is not None:
            rule["major"] = major
        if minor is not None:
            rule["minor"] = minor
        return rule

    return [
        {"allow": False, "access": "rwm"},
        allow("c", None, None, "m"),
        allow("b", None, None, "m"),
        *(allow("c", major, minor, "rwm") for _, major, minor in _DEVICES),
        allow("c", 5, 1, "rwm"),     # /dev/console
        allow("c", 5, 2, "rwm"),     # /dev/ptmx
        allow("c", 136, None, "rwm"),  # /dev/pts/*
    ]


# -- the whole config -----------------------------------------------------------------------------------------

def base_spec(args: Sequence[str] = ("sh",), rootfs: str = "rootfs", terminal: bool = False) -> dict:
    """A complete OCI runtime config.json with barque's defaults: what `runc spec` writes plus Docker's defaults."""
    if isinstance(args, str) or not args:
        raise InvalidArgument("the container process needs args: a non-empty list")
    env = [DEFAULT_ENV_PATH] + (["TERM=xterm"] if terminal else [])
    capabilities = list(DEFAULT_CAPABILITIES)
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": terminal,
            "user": {"uid": 0, "gid": 0},
            "args": list(args),
            "env": env,
            "cwd": "/",
            "capabilities": {"bounding": list(capabilities), "effective": list(capabilities),
                             "permitted": list(capabilities)},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": rootfs, "readonly": False},
        "hostname": "barque",
        "mounts": default_mounts(),
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "devices": default_devices(),
            "resources": {"devices": default_device_rules()},
            "maskedPaths": masked_paths(),
            "readonlyPaths": list(READONLY_PATHS),
            "seccomp": default_seccomp_profile(capabilities),
        },
    }


def privileged(spec: dict) -> dict:
    """A copy of `spec` with what --privileged lifts, as Docker does.

    Every capability this process can grant (bounding, effective, permitted: Docker's "all capabilities available
    in the current environment"), no seccomp filter, no masked or read-only paths, every
    device allowed in the device cgroup, sysfs and the cgroup filesystem writable; and no_new_privs off.
    Namespaces, mounts otherwise, and the user stay as they were. (Docker also adds the host's device nodes to
    the container; that needs a scan of the host's /dev, left to the engine.)
    """
    out = copy.deepcopy(spec)
    process = out.setdefault("process", {})
    all_caps = list(_caps.available_capabilities())
    process["capabilities"] = {"bounding": list(all_caps), "effective": list(all_caps),
                               "permitted": list(all_caps)}
    process["noNewPrivileges"] = False
    linux = out.setdefault("linux", {})
    linux.pop("seccomp", None)
    linux["maskedPaths"] = []
    linux["readonlyPaths"] = []
    linux.setdefault("resources", {})["devices"] = [{"allow": True, "access": "rwm"}]
    for mount in out.get("mounts", []):
        if mount.get("type") in ("sysfs", "cgroup", "cgroup2"):
            mount["options"] = [("rw" if o == "ro" else o) for o in mount.get("options", [])]
    return out
