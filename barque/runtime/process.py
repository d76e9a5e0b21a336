"""The last steps of a container process, from the spec's `process`: rlimits, uid/gid/groups, capabilities, umask,
no_new_privs, cwd, environment, seccomp, execve.

Order matters and follows runc's reasons:
- rlimits first, while CAP_SYS_RESOURCE is still held (raising a hard limit needs it);
- without noNewPrivileges, loading a seccomp filter needs CAP_SYS_ADMIN, so the filter goes in *before* the uid
  change and the capability drop (the filter must then allow setresuid/capset/execve, as Docker's does);
  with noNewPrivileges it goes in last, right before execve, so as few syscalls as possible run under it;
- PR_SET_KEEPCAPS before setresuid so the permitted set survives it; capabilities applied after it.
"""

from __future__ import annotations

import errno
import os
import resource

from barque.errors import FailedPrecondition, NotFound
from barque.runtime.spec import rlimit_number

__all__ = ["resolve_executable", "set_rlimits", "environment", "finalize_and_exec", "DEFAULT_PATH"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def environment(process: dict) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in process.get("env") or []:
        k, _, v = item.partition("=")
        env[k] = v
    return env


def resolve_executable(arg0: str, env: dict[str, str], cwd: str = "/") -> str:
    """args[0] as execvp would find it, with the container's PATH (not the runtime's); runc's messages, which
    engines parse (Docker maps "not found" to exit 127 and "permission denied" to 126)."""
    if "/" in arg0:
        path = arg0 if arg0.startswith("/") else os.path.join(cwd, arg0)
        if not os.path.exists(path):
            raise NotFound(f'exec: "{arg0}": stat {arg0}: no such file or directory')
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise FailedPrecondition(f'exec: "{arg0}": permission denied')
        return path
    for d in env.get("PATH", DEFAULT_PATH).split(":"):
        candidate = os.path.join(d or ".", arg0)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise NotFound(f'exec: "{arg0}": executable file not found in $PATH')


def set_rlimits(rlimits: list[dict]) -> None:
    for r in rlimits:
        number = rlimit_number(r["type"])
        want = (r["soft"], r["hard"])
        try:
            resource.setrlimit(number, want)
        except (OSError, ValueError) as e:
            current = resource.getrlimit(number)
            raise FailedPrecondition(
                f"cannot set {r['type']} to soft={want[0]} hard={want[1]}: {getattr(e, 'strerror', None) or e} "
                f"(the current limits are soft={current[0]} hard={current[1]}; raising the hard limit needs "
                f"CAP_SYS_RESOURCE in the initial user namespace)"
            ) from e


def write_oom_score_adj(pid: int, value: int) -> None:
    try:
        with open(f"/proc/{pid}/oom_score_adj", "w") as f:
            f.write(str(value))
    except OSError as e:
        raise FailedPrecondition(f"cannot set oom_score_adj to {value}: {e.strerror or e}") from e


def switch_user(user: dict) -> None:
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    groups = list(user.get("additionalGids") or [])
    try:
        os.setgroups(groups)
    except PermissionError:
        # setgroups is denied in a user namespace whose gid_map was written by an unprivileged parent
        if groups:
            raise FailedPrecondition("cannot set the additional groups: setgroups is denied here") from None
    try:
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as e:
        raise FailedPrecondition(f"cannot switch to uid {uid} gid {gid}: {e.strerror or e}") from e


def finalize_and_exec(process: dict, exe: str, seccomp_filter=None, *, in_userns: bool = False) -> None:
    """Become the container's process. Never returns: execve or an exception."""
    from barque.linux import _libc
    from barque.runtime import caps as capsmod

    user = process.get("user") or {}
    nnp = bool(process.get("noNewPrivileges"))
    _default_signals()
    set_rlimits(process.get("rlimits") or [])
    if seccomp_filter is not None and not nnp:
        _load_seccomp(seccomp_filter)
    capabilities = process.get("capabilities")
    if capabilities is not None:
        capsmod.keep_caps_across_setuid()
    switch_user(user)
    if capabilities is not None:
        capsmod.apply_capabilities(capabilities)
    os.umask(user.get("umask", 0o022) if user.get("umask") is not None else 0o022)
    if nnp:
        _libc.set_no_new_privs()
    cwd = process.get("cwd") or "/"
    try:
        os.chdir(cwd)
    except OSError as e:
        raise FailedPrecondition(f"cannot change to the working directory {cwd}: {e.strerror or e}") from e
    env = environment(process)
    if seccomp_filter is not None and nnp:
        _load_seccomp(seccomp_filter)
    try:
        os.execve(exe, process["args"], env)
    except OSError as e:
        if e.errno == errno.EACCES:
            raise FailedPrecondition(f'exec: "{process["args"][0]}": permission denied') from e
        raise FailedPrecondition(f'exec {exe}: {e.strerror or e}') from e


def _default_signals() -> None:
    """A process starts with every signal at its default and none blocked, as runc leaves it. An ignored signal
    survives execve, and Python ignores SIGPIPE and SIGXFSZ: without this, `yes | head -1` in a container would
    never end on a broken pipe."""
    import signal

    from barque.linux import _libc

    for signum in range(1, signal.NSIG):
        if signum in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            if signal.getsignal(signum) is not signal.SIG_DFL:
                signal.signal(signum, signal.SIG_DFL)
        except (OSError, ValueError):
            _libc.default_signal(signum)  # the ones glibc reserves (32, 33): Python cannot reach them
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _load_seccomp(f) -> None:
    from barque.runtime import bpf

    bpf.load(f)
