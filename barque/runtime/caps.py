"""Process capabilities (the spec's `process.capabilities`, all five sets) through pyprctl.

The init process calls, in this order:

1. `keep_caps_across_setuid()` before it changes uid/gid, so the permitted set survives a change away from uid 0;
2. setgroups/setgid/setuid (not here);
3. `apply_capabilities(spec_caps)`: bounding set, then effective/permitted/inheritable, then ambient;
4. no_new_privs and the seccomp filter (`barque.runtime.seccomp`), then execve.

Capabilities are per thread: all of this must run in the (single-threaded) init process, never in a process with
other threads running.

pyprctl is imported inside the functions (through `import_ffi`, which spares its ldconfig run), so that importing
this module (for `validate_capabilities`, say, in the CLI) costs nothing.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import ModuleType

from barque.errors import FailedPrecondition, InvalidArgument

__all__ = [
    "ALL_CAPABILITIES",
    "CAPABILITY_SETS",
    "validate_capabilities",
    "available_capabilities",
    "keep_caps_across_setuid",
    "apply_capabilities",
    "capability_mask",
    "import_ffi",
]

log = logging.getLogger(__name__)

# Linux capability names by number (include/uapi/linux/capability.h).
_CAPABILITY_NAMES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)

# Libraries pyprctl and pyseccomp look up with ctypes.util.find_library when imported, by their sonames.
_SONAMES = {"c": "libc.so.6", "seccomp": "libseccomp.so.2"}


@contextlib.contextmanager
def _find_library_by_soname() -> Iterator[None]:
    """While it lasts, `ctypes.util.find_library` tries the known sonames first. When ctypes.util is not imported
    yet, a stand-in module serves the import (the real one imports subprocess and shutil, ~10 ms) and the real one is
    loaded only for a name the sonames do not cover."""
    import ctypes
    import types

    real = sys.modules.get("ctypes.util")
    original = real.find_library if real is not None else None

    def find_library(name: str) -> str | None:
        soname = _SONAMES.get(name)
        if soname:
            try:
                ctypes.CDLL(soname)
                return soname
            except OSError:
                pass
        if original is not None:
            return original(name)
        sys.modules.pop("ctypes.util", None)  # the stand-in: load the real module for this one
        return importlib.import_module("ctypes.util").find_library(name)

    if real is not None:
        real.find_library = find_library
        try:
            yield
        finally:
            real.find_library = original
        return
    stand_in = types.ModuleType("ctypes.util")
    stand_in.find_library = find_library  # type: ignore[attr-defined]
    sys.modules["ctypes.util"] = ctypes.util = stand_in  # type: ignore[attr-defined]  # what `import` binds
    try:
        yield
    finally:
        if sys.modules.get("ctypes.util") is stand_in:
            del sys.modules["ctypes.util"]
        if getattr(ctypes, "util", None) is stand_in:
            del ctypes.util


def import_ffi(name: str) -> ModuleType:
    """Import pyprctl or pyseccomp without the ldconfig runs their find_library calls cost (~13 ms together).

    Both look libc (and libseccomp) up when imported; ctypes.util.find_library forks `ldconfig -p` for each.
    The runtime's start-up time counts, so known sonames are tried first.
    """
    module = sys.modules.get(name)
    if module is not None:
        return module
    with _find_library_by_soname():
        return importlib.import_module(name)


CAPABILITY_SETS: tuple[str, ...] = ("bounding", "effective", "inheritable", "permitted", "ambient")


def _kernel_last_cap(proc: Path = Path("/proc")) -> int:
    """The highest capability number this kernel knows, or the highest barque knows if /proc cannot tell."""
    try:
        return int((proc / "sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        return len(_CAPABILITY_NAMES) - 1


def _known_capabilities(last_cap: int) -> tuple[str, ...]:
    if last_cap >= len(_CAPABILITY_NAMES):
        log.debug("kernel knows capabilities up to %d, barque names only %d", last_cap, len(_CAPABILITY_NAMES) - 1)
    return _CAPABILITY_NAMES[: last_cap + 1]


#: The capabilities this kernel supports (and barque can name), in kernel order.
ALL_CAPABILITIES: tuple[str, ...] = _known_capabilities(_kernel_last_cap())
_CAP_NUMBER = {name: number for number, name in enumerate(ALL_CAPABILITIES)}


def capability_mask(names: Iterable[str]) -> int:
    """The bit mask of `names`, as the Cap* lines of /proc/PID/status show it in hex."""
    mask = 0
    for name in names:
        mask |= 1 << _CAP_NUMBER[name]
    return mask


def available_capabilities(proc: Path = Path("/proc")) -> tuple[str, ...]:
    """The capabilities this process may still grant: its bounding set (everything, on an unrestricted host).

    What --privileged grants, as Docker does: inside a restricted environment (a container, a sandbox) a spec
    asking for more could not be applied.
    """
    try:
        status = (proc / "self/status").read_text()
        mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("CapBnd:")), 16)
    except (OSError, StopIteration, ValueError, IndexError):
        return ALL_CAPABILITIES
    return tuple(name for number, name in enumerate(ALL_CAPABILITIES) if mask & (1 << number))


def validate_capabilities(caps: Mapping | None) -> None:
    """Check the spec's `process.capabilities`: known set names, lists of capability names this kernel has.

    Unknown names are refused (runc only warns and skips them): a typo in a security setting should not pass
    silently.
    """
    if caps is None:
        return
    if not isinstance(caps, Mapping):
        raise InvalidArgument(f"process.capabilities must be an object, not {type(caps).__name__}")
    for set_name, names in caps.items():
        if set_name not in CAPABILITY_SETS:
            raise InvalidArgument(f"unknown capability set \"{set_name}\"")
        if names is None:
            continue
        if isinstance(names, str) or not isinstance(names, Iterable):
            raise InvalidArgument(f"process.capabilities.{set_name} must be a list of capability names")
        for name in names:
            if not isinstance(name, str) or name not in _CAP_NUMBER:
                raise InvalidArgument(f"unknown capability \"{name}\"")


def keep_caps_across_setuid() -> None:
    """Set PR_SET_KEEPCAPS so that changing from uid 0 to another uid keeps the permitted set.

    The kernel still clears the effective set on that change; `apply_capabilities` raises it again. The flag is
    cleared by `apply_capabilities` (and by execve in any case).
    """
    pyprctl = import_ffi("pyprctl")

    pyprctl.set_keepcaps(True)


def _wanted(caps: Mapping | None) -> dict[str, set]:
    pyprctl = import_ffi("pyprctl")

    validate_capabilities(caps)
    caps = caps or {}
    return {s: {pyprctl.Cap.from_name(n) for n in (caps.get(s) or ())} for s in CAPABILITY_SETS}


def apply_capabilities(caps: Mapping | None) -> None:
    """Make the calling thread's five capability sets exactly what `caps` says; None means none at all.

    Runs after the uid/gid change. Order matters:

    1. raise the effective set to the whole permitted set (a change away from uid 0 emptied it), so that
       CAP_SETPCAP is in force for the next step;
    2. drop from the bounding set every capability not in `bounding`;
    3. clear the ambient set, then set effective, permitted and inheritable in one capset(2);
    4. raise the `ambient` capabilities — what lets a non-root process keep capabilities across execve.
       As runc does, one that cannot be raised (not in both permitted and inheritable) is logged and skipped.
    """
    pyprctl = import_ffi("pyprctl")

    want = _wanted(caps)
    if not want["effective"] <= want["permitted"]:
        extra = sorted("CAP_" + c.name for c in want["effective"] - want["permitted"])
        raise InvalidArgument(f"effective capabilities must also be permitted: {', '.join(extra)}")
    try:
        state = pyprctl.CapState.get_current()
        if state.effective != state.permitted:
            state.effective = set(state.permitted)
            state.set_current()
    except OSError as e:
        raise FailedPrecondition(f"cannot set capabilities: {e.strerror or e}", cause=e) from e
    missing = want["permitted"] - state.permitted
    if missing:
        names = ", ".join(sorted("CAP_" + c.name for c in missing))
        raise FailedPrecondition(f"cannot grant capabilities this process does not hold: {names}")
    try:
        if want["bounding"]:
            pyprctl.capbset.limit(*want["bounding"])
        else:
            pyprctl.capbset.clear()
        pyprctl.cap_ambient_clear_all()
        pyprctl.CapState(
            effective=want["effective"], permitted=want["permitted"], inheritable=want["inheritable"]
        ).set_current()
    except OSError as e:
        raise FailedPrecondition(f"cannot set capabilities: {e.strerror or e}", cause=e) from e
    for cap in sorted(want["ambient"], key=lambda c: c.value):
        try:
            pyprctl.cap_ambient_raise(cap)
        except OSError as e:
            log.warning("cannot raise ambient capability CAP_%s: %s", cap.name, e.strerror or e)
    pyprctl.set_keepcaps(False)
