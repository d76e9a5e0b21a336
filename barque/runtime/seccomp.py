"""The spec's `linux.seccomp` turned into a libseccomp filter (through pyseccomp), and loaded.

Choices, and where they differ from runc:

- A syscall name libseccomp does not know for any of the filter's architectures is an error naming it. runc
  skips such names with a debug log; for barque a typo in a security profile should not pass silently. A name
  known for one of the filter's architectures but not the native one (``socketcall`` in an x86_64 filter that
  also covers x86) is fine: libseccomp applies it where it exists.
- An architecture name libseccomp does not know is an error (as in runc).
- A rule whose action equals the default action is skipped (as in runc: libseccomp refuses such rules).
- Several conditions on the same argument become one rule each, i.e. they are OR-ed (runc's behaviour; one
  libseccomp rule cannot compare an argument twice).
- libseccomp would set no_new_privs itself when loading; barque turns that off, so no_new_privs follows the
  spec's `process.noNewPrivileges`. Without no_new_privs the kernel only lets a process holding CAP_SYS_ADMIN
  load a filter, so a runtime honouring `noNewPrivileges: false` must load the filter before it drops
  capabilities (runc does the same); `load_filter` says so if the kernel refuses.
- SCMP_ACT_NOTIFY needs `listenerPath`; it is refused as the default action and for ``write`` (the runtime
  needs write to hand the notify fd over), as runc does.

pyseccomp is imported inside the functions (through `caps.import_ffi`, which spares its ldconfig runs): the
CLI should not pay for it on every start.
"""

from __future__ import annotations

import errno as errno_mod
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from barque.errors import FailedPrecondition, InvalidArgument
from barque.runtime.caps import import_ffi

if TYPE_CHECKING:
    import pyseccomp

__all__ = [
    "ACTIONS",
    "OPERATORS",
    "ARCHITECTURES",
    "FLAGS",
    "build_filter",
    "load_filter",
    "notify_fd",
    "known_syscall",
]

log = logging.getLogger(__name__)

ACTIONS: tuple[str, ...] = (
    "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY",
)
_ACTIONS_WITH_ERRNO = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")

# libseccomp's scmp_compare values.
OPERATORS: dict[str, int] = {
    "SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7,
}

# The spec's architecture names → pyseccomp.Arch attribute names.
ARCHITECTURES: dict[str, str] = {
    "SCMP_ARCH_X86": "X86", "SCMP_ARCH_X86_64": "X86_64", "SCMP_ARCH_X32": "X32",
    "SCMP_ARCH_ARM": "ARM", "SCMP_ARCH_AARCH64": "AARCH64",
    "SCMP_ARCH_MIPS": "MIPS", "SCMP_ARCH_MIPS64": "MIPS64", "SCMP_ARCH_MIPS64N32": "MIPS64N32",
    "SCMP_ARCH_MIPSEL": "MIPSEL", "SCMP_ARCH_MIPSEL64": "MIPSEL64", "SCMP_ARCH_MIPSEL64N32": "MIPSEL64N32",
    "SCMP_ARCH_PPC": "PPC", "SCMP_ARCH_PPC64": "PPC64", "SCMP_ARCH_PPC64LE": "PPC64LE",
    "SCMP_ARCH_S390": "S390", "SCMP_ARCH_S390X": "S390X",
    "SCMP_ARCH_PARISC": "PARISC", "SCMP_ARCH_PARISC64": "PARISC64",
    "SCMP_ARCH_RISCV64": "RISCV64",
}

# The spec's filter flags → pyseccomp.Attr attribute names (libseccomp filter attributes).
# SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs libseccomp 2.6, which this code does not assume.
FLAGS: dict[str, str] = {
    "SECCOMP_FILTER_FLAG_TSYNC": "CTL_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG": "CTL_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": "CTL_SSB",
}

_MAX_ARGS = 6
_U64 = 1 << 64
_NR_SCMP_ERROR = -1
_PNR_NOT_HERE = -10000  # libseccomp's pseudo numbers for "no such syscall on this architecture" lie below


def _action(name: Any, errno_ret: Any, where: str) -> int:
    pyseccomp = import_ffi("pyseccomp")

    if name not in ACTIONS:
        raise InvalidArgument(f"unknown seccomp action \"{name}\" in {where}")
    if errno_ret is not None:
        if name not in _ACTIONS_WITH_ERRNO:
            raise InvalidArgument(f"errnoRet is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {name} ({where})")
        if not isinstance(errno_ret, int) or isinstance(errno_ret, bool) or not 0 <= errno_ret <= 0xFFFF:
            raise InvalidArgument(f"errnoRet must be an integer from 0 to 65535, not {errno_ret!r} ({where})")
    ret = errno_mod.EPERM if errno_ret is None else errno_ret
    return {
        "SCMP_ACT_KILL": pyseccomp.KILL_THREAD,
        "SCMP_ACT_KILL_THREAD": pyseccomp.KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS": pyseccomp.KILL_PROCESS,
        "SCMP_ACT_TRAP": pyseccomp.TRAP,
        "SCMP_ACT_ERRNO": pyseccomp.ERRNO(ret),
        "SCMP_ACT_TRACE": pyseccomp.TRACE(ret),
        "SCMP_ACT_ALLOW": pyseccomp.ALLOW,
        "SCMP_ACT_LOG": pyseccomp.LOG,
        "SCMP_ACT_NOTIFY": pyseccomp.NOTIFY,
    }[name]


def _arch(name: Any) -> int:
    pyseccomp = import_ffi("pyseccomp")

    if name not in ARCHITECTURES:
        raise InvalidArgument(f"unknown seccomp architecture \"{name}\"")
    return getattr(pyseccomp.Arch, ARCHITECTURES[name])


def known_syscall(name: str, arches: Iterable[int]) -> bool:
    """Whether `name` is a syscall on at least one of `arches` (pyseccomp.Arch values), as libseccomp sees it.

    libseccomp answers a number, -1 for a name it has never heard of, a number from -101 to -224 for the socket
    and IPC calls an architecture multiplexes through socketcall(2)/ipc(2) (real there: libseccomp filters the
    multiplexer), and one below -10000 for a syscall it knows elsewhere but that does not exist on that
    architecture.
    """
    pyseccomp = import_ffi("pyseccomp")

    for arch in arches:
        number = pyseccomp.resolve_syscall(arch, name)
        if number >= 0 or _PNR_NOT_HERE < number < _NR_SCMP_ERROR:
            return True
    return False


def _conditions(args: Any, where: str) -> list[list["pyseccomp.Arg"]]:
    """The rule's argument comparisons, as the list of condition groups to add as separate rules."""
    pyseccomp = import_ffi("pyseccomp")

    if not args:
        return [[]]
    if not isinstance(args, Sequence) or isinstance(args, str):
        raise InvalidArgument(f"args must be a list ({where})")
    conds: list[pyseccomp.Arg] = []
    indexes: list[int] = []
    for arg in args:
        if not isinstance(arg, Mapping):
            raise InvalidArgument(f"each of args must be an object ({where})")
        index, op = arg.get("index"), arg.get("op")
        value, value_two = arg.get("value", 0), arg.get("valueTwo", 0)
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < _MAX_ARGS:
            raise InvalidArgument(f"seccomp argument index must be 0 to {_MAX_ARGS - 1}, not {index!r} ({where})")
        if op not in OPERATORS:
            raise InvalidArgument(f"unknown seccomp operator \"{op}\" ({where})")
        for v in (value, value_two):
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < _U64:
                raise InvalidArgument(f"seccomp argument values must be 64-bit unsigned integers, not {v!r} ({where})")
        conds.append(pyseccomp.Arg(index, OPERATORS[op], value, value_two))
        indexes.append(index)
    if len(set(indexes)) != len(indexes):
        return [[c] for c in conds]
    return [conds]


def _check_flags(flags: Any) -> list[str]:
    if not flags:
        return []
    if not isinstance(flags, Sequence) or isinstance(flags, str):
        raise InvalidArgument("linux.seccomp.flags must be a list")
    for flag in flags:
        if flag not in FLAGS:
            raise InvalidArgument(f"unsupported seccomp flag \"{flag}\"")
    return list(flags)


def _entries(spec: Mapping) -> list[Mapping]:
    syscalls = spec.get("syscalls") or []
    if not isinstance(syscalls, Sequence) or isinstance(syscalls, str):
        raise InvalidArgument("linux.seccomp.syscalls must be a list")
    for i, entry in enumerate(syscalls):
        if not isinstance(entry, Mapping):
            raise InvalidArgument(f"linux.seccomp.syscalls[{i}] must be an object")
        names = entry.get("names")
        if not names or isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
            raise InvalidArgument(f"linux.seccomp.syscalls[{i}].names must be a non-empty list of syscall names")
    return list(syscalls)


def build_filter(spec_seccomp: Mapping) -> "pyseccomp.SyscallFilter":
    """A libseccomp filter for the spec's `linux.seccomp` object; InvalidArgument names whatever is wrong."""
    pyseccomp = import_ffi("pyseccomp")

    if not isinstance(spec_seccomp, Mapping):
        raise InvalidArgument("linux.seccomp must be an object")
    default_name = spec_seccomp.get("defaultAction")
    if default_name is None:
        raise InvalidArgument("linux.seccomp.defaultAction is required")
    if default_name == "SCMP_ACT_NOTIFY":
        raise InvalidArgument("SCMP_ACT_NOTIFY cannot be the seccomp default action")
    default = _action(default_name, spec_seccomp.get("defaultErrnoRet"), "linux.seccomp.defaultAction")
    arch_names = list(spec_seccomp.get("architectures") or [])
    arches = [_arch(a) for a in arch_names]
    flags = _check_flags(spec_seccomp.get("flags"))
    entries = _entries(spec_seccomp)

    f = _new_filter(default, dict(zip(arch_names, arches)), flags)
    filter_arches = [pyseccomp.system_arch(), *arches]
    for i, entry in enumerate(entries):
        _add_entry(f, entry, f"linux.seccomp.syscalls[{i}]", default, filter_arches,
                   bool(spec_seccomp.get("listenerPath")))
    return f


def _new_filter(default: int, arches: Mapping[str, int], flags: Sequence[str]) -> "pyseccomp.SyscallFilter":
    pyseccomp = import_ffi("pyseccomp")

    f = pyseccomp.SyscallFilter(default)
    f.set_attr(pyseccomp.Attr.CTL_NNP, 0)
    try:  # the kernel's own errno when loading fails, not libseccomp's ECANCELED (libseccomp >= 2.5)
        f.set_attr(pyseccomp.Attr.API_SYSRAWRC, 1)
    except OSError:
        log.debug("libseccomp cannot report the kernel's errno on load")
    for name, arch in arches.items():
        if not f.exist_arch(arch):
            try:
                f.add_arch(arch)
            except OSError as e:  # EDOM: an architecture of the other endianness than this host's
                raise InvalidArgument(f"seccomp architecture \"{name}\" cannot be used on this host "
                                      f"(libseccomp: {e.strerror})") from e
    for flag in flags:
        try:
            f.set_attr(getattr(pyseccomp.Attr, FLAGS[flag]), 1)
        except OSError as e:
            raise InvalidArgument(f"seccomp flag \"{flag}\" is not supported here: {e.strerror}") from e
    return f


def _add_entry(f: "pyseccomp.SyscallFilter", entry: Mapping, where: str, default: int,
               filter_arches: Sequence[int], has_listener: bool) -> None:
    """Add one element of `syscalls`: its action for each of its names, under its argument conditions."""
    pyseccomp = import_ffi("pyseccomp")

    action_name = entry.get("action")
    action = _action(action_name, entry.get("errnoRet"), where)
    if action_name == "SCMP_ACT_NOTIFY":
        if not has_listener:
            raise InvalidArgument(f"SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath ({where})")
        if "write" in entry["names"]:
            raise InvalidArgument(f"SCMP_ACT_NOTIFY cannot be used for the write syscall ({where})")
    groups = _conditions(entry.get("args"), where)
    for name in entry["names"]:
        if not known_syscall(name, filter_arches):
            raise InvalidArgument(f"unknown syscall \"{name}\" in {where}")
        if action == default:
            log.debug("seccomp: %s has the default action; rule skipped", name)
            continue
        number = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
        for conds in groups:
            try:
                f.add_rule(action, number, *conds)
            except OSError as e:
                raise InvalidArgument(f"cannot add the seccomp rule for syscall \"{name}\" ({where}): "
                                      f"{e.strerror}") from e


def load_filter(f: "pyseccomp.SyscallFilter") -> None:
    """Load `f` into the calling process: the last step before execve, after no_new_privs and capabilities."""
    try:
        f.load()
    except OSError as e:
        if e.errno == errno_mod.EACCES:
            raise FailedPrecondition(
                "cannot load the seccomp filter: the kernel requires no_new_privs or CAP_SYS_ADMIN "
                "(with noNewPrivileges false, load it before dropping capabilities)", cause=e) from e
        raise FailedPrecondition(f"cannot load the seccomp filter: {e.strerror or e}", cause=e) from e


def notify_fd(f: "pyseccomp.SyscallFilter") -> int:
    """The notification fd of a loaded filter with SCMP_ACT_NOTIFY rules, to send to the spec's listenerPath.

    pyseccomp has no public call for it, hence the reach into its library handle.
    """
    pyseccomp = import_ffi("pyseccomp")

    fd = pyseccomp._libseccomp.seccomp_notify_fd(f._filter)  # noqa: SLF001
    if fd < 0:
        raise FailedPrecondition(f"no seccomp notify fd: {errno_mod.errorcode.get(-fd, -fd)}")
    return fd
