"""The container side of create and exec: what runs in the forked children, in runc's two stages.

Stage 1 (a child of the runtime, already placed in the container's cgroup by the parent): join the namespaces given
by path (the user namespace first, the mount namespace last), create a user namespace and wait while the parent
writes its id maps, then unshare every other new namespace at once. A new PID (or time) namespace only applies to
children, so stage 1 forks stage 2 — the container's PID 1 — reports its pid and exits: the container process is no
child of the runtime and outlives it (the caller, a shim, is its subreaper).

Stage 2 (create): build the rootfs (rootfs.py), let the parent run createRuntime hooks, run createContainer hooks,
pivot_root, make the terminal, hostname, sysctls, read-only and masked paths, check the executable, report ready, then
block opening the exec fifo until `start` opens its other end; then startContainer hooks and process.py's final steps.
Stage 2 (exec): after joining the container's namespaces it is already inside; terminal, checks, ready, exec.

Python's import system cannot reach the host's files after pivot_root: everything the later steps need is imported
before it (`_preimport`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from barque.errors import FailedPrecondition
from barque.linux import _libc
from barque.runtime import console, rootfs
from barque.runtime.channel import Channel
from barque.runtime.spec import NAMESPACES
from barque.runtime.syscalls import REAL, Syscalls

__all__ = ["InitConfig", "stage1"]

# setns order: the user namespace first (it grants the rights to join the others), mount last (it changes root)
_JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "time", "cgroup", "mount")
SETUP_TIMEOUT = 120.0


@dataclass
class InitConfig:
    process: dict
    join: list[tuple[str, str]] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    uid_maps: list[dict] = field(default_factory=list)
    #: create only
    spec: dict | None = None
    rootfs_ctx: rootfs.RootfsContext | None = None
    fifo: str | None = None
    hook_sync: bool = False
    hostname: str | None = None
    domainname: str | None = None
    sysctl: dict = field(default_factory=dict)
    #: terminal: where the master goes (a --console-socket path, or the parent over the channel)
    console_socket: str | None = None
    console_to_parent: bool = False
    seccomp: object | None = None
    preserve_fds: int = 0
    sc: Syscalls = REAL
    #: opened by the parent and inherited (a remapped root may not be allowed to reach them by path):
    #: the exec fifo (O_PATH) and the connected console socket
    fifo_fd: int = field(default=-1, repr=False)
    console_conn: object | None = field(default=None, repr=False)
    #: set by stage 2 itself: a handle on the host's /proc to reopen the fifo after pivot_root; the channel
    proc_fd: int = field(default=-1, repr=False)
    channel: Channel | None = field(default=None, repr=False)


#: in a handed-over configuration: the seccomp filter is libseccomp's own (not picklable), build it again here
BUILD_IN_CHILD = "build-in-child"


def stage1_early(ch: Channel) -> None:
    """Forked first thing in `create`, before the bundle is even read: import what nearly every container needs
    while the parent validates and sets up, then take the configuration — a pickle in a memfd, with the exec fifo
    and the console socket as further fds — and go on as stage 1. Never returns."""
    try:
        _preimport_common()
        _msg, fds = ch.expect("config", SETUP_TIMEOUT)
        cfg = _load_config(fds)
    except BaseException as e:  # noqa: BLE001 - a forked child must never unwind into the parent's code
        _report(ch, e)
        os._exit(1)
    stage1(ch, cfg)


def _preimport_common() -> None:
    import barque.errors  # noqa: F401
    import barque.runtime.bpf  # noqa: F401
    import barque.runtime.process  # noqa: F401
    import barque.runtime.spec  # noqa: F401
    from barque.runtime.caps import import_ffi

    import_ffi("pyprctl")  # without the ldconfig forks of its find_library


def send_config(ch: Channel, cfg: InitConfig) -> None:
    """The parent's side of the hand-over to `stage1_early`."""
    import copy
    import pickle

    from barque.runtime.bpf import CompiledFilter

    portable = copy.copy(cfg)
    portable.channel, portable.console_conn, portable.fifo_fd = None, None, -1
    if portable.seccomp is not None and not isinstance(portable.seccomp, CompiledFilter):
        portable.seccomp = BUILD_IN_CHILD
    memfd = os.memfd_create("barque-init-config", os.MFD_CLOEXEC)
    try:
        data = pickle.dumps(portable, protocol=pickle.HIGHEST_PROTOCOL)
        view = memoryview(data)
        while view:
            view = view[os.write(memfd, view):]
        os.lseek(memfd, 0, os.SEEK_SET)
        fds = [memfd, cfg.fifo_fd] + ([cfg.console_conn.fileno()] if cfg.console_conn is not None else [])
        ch.send("config", fds=fds)
    finally:
        os.close(memfd)


def _load_config(fds: list[int]) -> InitConfig:
    import pickle
    import socket

    memfd, fifo_fd, *rest = fds
    chunks = []
    while chunk := os.read(memfd, 1 << 20):
        chunks.append(chunk)
    os.close(memfd)
    cfg: InitConfig = pickle.loads(b"".join(chunks))
    cfg.fifo_fd = fifo_fd
    if rest:
        cfg.console_conn = socket.socket(fileno=rest[0])
    if cfg.seccomp == BUILD_IN_CHILD:
        from barque.runtime.seccomp import build_filter

        cfg.seccomp = build_filter(cfg.spec["linux"]["seccomp"])  # type: ignore[index]
    return cfg


def stage1(ch: Channel, cfg: InitConfig) -> None:
    """Runs in the forked child; never returns."""
    code = 1
    try:
        _preimport(cfg)  # before joining a mount namespace, after which the host's files are out of reach
        go, _ = ch.expect("go", SETUP_TIMEOUT)
        if cfg.rootfs_ctx is not None and "cgroups" in go:
            cfg.rootfs_ctx.cgroup_binds = [rootfs.CgroupBind(name, d) for name, d in go["cgroups"]]
            cfg.rootfs_ctx.cgroup_v2_only = bool(go.get("v2only"))
        _join(cfg.join)
        if "user" in cfg.new:
            _libc.unshare(NAMESPACES["user"][0])
            ch.send("userns")
            _msg, fds = ch.expect("ack", SETUP_TIMEOUT)
            if fds and cfg.rootfs_ctx is not None:
                cfg.rootfs_ctx.idmap_fd = fds[0]
            if any(m["containerID"] == 0 for m in cfg.uid_maps):
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
            # changing credentials made us non-dumpable: our /proc/self would belong to the host's root, out of
            # reach for the exec fifo reopen; execve sets dumpability afresh (runc does the same)
            _libc.set_dumpable(True)
        flags = 0
        for t in cfg.new:
            if t != "user":
                flags |= NAMESPACES[t][0]
        if flags:
            _libc.unshare(flags)
        pid = os.fork()
        if pid == 0:
            _stage2(ch, cfg)  # never returns
        ch.send("pid", pid=pid)
        code = 0
    except BaseException as e:  # noqa: BLE001 - a forked child must never unwind into the parent's code
        _report(ch, e)
    finally:
        os._exit(code)


def _join(join: list[tuple[str, str]]) -> None:
    # open every path first: /proc/PID/ns/* of another container may be unreachable once one namespace is joined
    opened = []
    for t, path in sorted(join, key=lambda tp: _JOIN_ORDER.index(tp[0])):
        try:
            opened.append((t, path, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
        except OSError as e:
            raise OSError(e.errno, f"opening the {t} namespace {path}: {e.strerror}") from e
    # a namespace owned by an ancestor of the user namespace (a network namespace the engine made before the
    # container, as Docker's and barque's are) can only be joined before entering that user namespace: so, as
    # root of the host, everything but user and mount is tried first; what that refuses is retried after
    later = []
    try:
        for t, path, fd in opened:
            if t in ("user", "mount"):
                later.append((t, path, fd))
                continue
            try:
                _libc.setns(fd, NAMESPACES[t][0])
                os.close(fd)
            except OSError:
                later.append((t, path, fd))
        later.sort(key=lambda tp: _JOIN_ORDER.index(tp[0]))
        while later:
            t, path, fd = later.pop(0)
            try:
                _libc.setns(fd, NAMESPACES[t][0])
            except OSError as e:
                raise OSError(e.errno, f"joining the {t} namespace {path}: {os.strerror(e.errno or 0)}") from e
            finally:
                os.close(fd)
    finally:
        for _t, _path, fd in later:
            os.close(fd)


def _report(ch: Channel, e: BaseException) -> None:
    msg = str(e) or type(e).__name__
    if not isinstance(e, (OSError, ValueError)) and type(e).__module__ != "barque.errors":
        msg = f"{type(e).__name__}: {msg}"
    if os.environ.get("BARQUE_RUNTIME_DEBUG"):
        import traceback

        msg += "\n" + "".join(traceback.format_exception(e))
    try:
        ch.send("error", msg=msg)
    except OSError:
        try:
            os.write(2, f"barque-runtime: {msg}\n".encode())
        except OSError:
            pass


def _preimport(cfg: InitConfig) -> None:
    import barque.runtime.process  # noqa: F401
    import barque.runtime.spec  # noqa: F401

    if cfg.process.get("capabilities") is not None:
        from barque.runtime.caps import import_ffi

        import_ffi("pyprctl")  # without the ldconfig forks of its find_library
    if cfg.seccomp is not None:
        import barque.runtime.bpf  # noqa: F401
        import barque.errors  # noqa: F401

        if not isinstance(cfg.seccomp, barque.runtime.bpf.CompiledFilter):
            import barque.runtime.seccomp  # noqa: F401
    if cfg.spec and (cfg.spec.get("hooks") or {}).get("startContainer"):
        import subprocess  # noqa: F401  (startContainer hooks run after pivot_root)
        import barque.runtime.hooks  # noqa: F401
    if cfg.process.get("terminal"):
        import fcntl  # noqa: F401
        import struct  # noqa: F401


def _stage2(ch: Channel, cfg: InitConfig) -> None:
    ready = False
    try:
        ch.expect("go", SETUP_TIMEOUT)
        os.setsid()
        if cfg.rootfs_ctx is None:
            exe, slave = _exec_setup(ch, cfg)
        else:
            exe, slave = _create_setup(ch, cfg)
        if slave is not None:
            console.make_controlling(slave)
        _keep_fds(cfg.preserve_fds)
        _check_cwd(cfg.process)
        ch.send("ready")
        ready = True
        ch.close()
        if cfg.fifo is not None:
            _wait_for_start(cfg)
            if cfg.spec and (cfg.spec.get("hooks") or {}).get("startContainer"):
                from barque.runtime.hooks import run_hooks

                run_hooks(cfg.spec, "startContainer", cfg.spec.get("_state", {}))
        from barque.runtime.process import finalize_and_exec

        finalize_and_exec(cfg.process, exe, cfg.seccomp, in_userns="user" in cfg.new)
    except BaseException as e:  # noqa: BLE001
        if not ready:
            _report(ch, e)
        else:
            try:
                os.write(2, f"barque-runtime: {e}\n".encode())
            except OSError:
                pass
        os._exit(127 if "not found" in str(e) else 126 if "permission denied" in str(e) else 1)
    os._exit(1)


def _check_cwd(process: dict) -> None:
    """A missing working directory is a setup error the caller hears about (runc's message; Docker: 126), not a
    failure after `ready` that only the process's stderr would show. Checked as root: a directory the process's
    user may not enter still fails at the chdir, later."""
    cwd = process.get("cwd") or "/"
    if not os.path.isdir(cwd):
        why = "not a directory" if os.path.lexists(cwd) else "no such file or directory"
        raise FailedPrecondition(f'chdir to cwd ("{cwd}") set in config.json failed: {why}')


def _keep_fds(n: int) -> None:
    """--preserve-fds: fds 3..3+n-1 are passed to the container process — and no other: whatever the runtime's
    caller left inheritable (an engine's sockets, a shell's pipes) is closed at the exec, as runc does."""
    from barque.linux import _libc

    _libc.cloexec_from(3 + n)
    for fd in range(3, 3 + n):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass


def _terminal(cfg: InitConfig, console_sock) -> int | None:
    """Make the pty (inside the container, after devpts and pivot_root), hand over the master; the slave fd."""
    if not cfg.process.get("terminal"):
        return None
    master, slave_path = console.open_pty("/dev/ptmx")
    try:
        slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY)
        user = cfg.process.get("user") or {}
        try:
            os.fchown(slave, user.get("uid", 0), user.get("gid", 0))
        except OSError:
            pass
        size = cfg.process.get("consoleSize") or {}
        if size.get("height") or size.get("width"):
            console.set_size(slave, size.get("height", 0), size.get("width", 0))
        if cfg.rootfs_ctx is not None and os.path.lexists("/dev"):
            if not os.path.exists("/dev/console"):
                cfg.sc.create_file("/dev/console", 0o600)
            cfg.sc.mount(slave_path, "/dev/console", None, rootfs.MS_BIND)
        if console_sock is not None:
            console.send_master(console_sock, master, slave_path)
            console_sock.close()
        else:
            assert cfg.channel is not None
            cfg.channel.send("console", fds=[master], name=slave_path)
    finally:
        os.close(master)
    return slave


def _create_setup(ch: Channel, cfg: InitConfig):
    ctx = cfg.rootfs_ctx
    assert ctx is not None and cfg.fifo is not None
    sc = cfg.sc
    # what must survive pivot_root: a handle on the host's /proc to reopen the exec fifo through
    cfg.proc_fd = os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    console_sock = cfg.console_conn
    cfg.channel = ch
    rootfs.prepare(ctx, sc)
    if cfg.hook_sync:
        ch.send("hooks")
        msg, _ = ch.expect("ack", SETUP_TIMEOUT)
        cfg.spec["_state"] = msg.get("state", {})  # type: ignore[index]
        if (cfg.spec.get("hooks") or {}).get("createContainer"):  # type: ignore[union-attr]
            from barque.runtime.hooks import run_hooks

            run_hooks(cfg.spec, "createContainer", cfg.spec["_state"])  # type: ignore[arg-type]
    if ctx.idmap_fd is not None:
        os.close(ctx.idmap_fd)
    rootfs.pivot_root(ctx.rootfs, sc)
    slave = _terminal(cfg, console_sock)
    if cfg.hostname is not None:
        sc.sethostname(cfg.hostname)
    if cfg.domainname is not None:
        sc.setdomainname(cfg.domainname)
    for key, value in cfg.sysctl.items():
        try:
            sc.write_file("/proc/sys/" + key.replace(".", "/"), value)
        except OSError as e:
            raise OSError(e.errno, f"setting sysctl {key}={value}: {e.strerror}") from e
    rootfs.finalize(ctx, sc)
    exe = _resolve(cfg)
    return exe, slave


def _exec_setup(ch: Channel, cfg: InitConfig):
    cfg.channel = ch
    slave = _terminal(cfg, cfg.console_conn)
    return _resolve(cfg), slave


def _resolve(cfg: InitConfig) -> str:
    from barque.runtime.process import environment, resolve_executable

    return resolve_executable(cfg.process["args"][0], environment(cfg.process), cfg.process.get("cwd") or "/")


def _wait_for_start(cfg: InitConfig) -> None:
    """Block until `start` opens the fifo's read end, then tell it we are going (runc's exec.fifo handshake). The
    write end stays open, close-on-exec, until the execve: `start` waits for its end, so when `start` returns the
    container's program runs (or the process died) — what it prints at once is there to read."""
    fd = os.open(f"self/fd/{cfg.fifo_fd}", os.O_WRONLY | os.O_CLOEXEC, dir_fd=cfg.proc_fd)
    try:
        os.write(fd, b"0")
    finally:
        os.close(cfg.fifo_fd)
        os.close(cfg.proc_fd)
