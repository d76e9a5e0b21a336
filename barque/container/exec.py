"""`exec`: one more process in a running container, as `docker exec` runs it — and the health-check probe, which is
the same thing started by the container's monitor (barque.container.health).

The process spec starts from the container's own (`process` of the config.json it was started with: env, user,
cwd, capabilities, rlimits, no_new_privs), as dockerd starts from the spec containerd holds, then takes the exec's
changes: `-e` merged over the env by name, `-u` resolved in the container's /etc/passwd and /etc/group (HOME follows
the user unless the container's Config.Env sets it), `-w`, `-t` (and TERM=xterm when the env has none), and
`--privileged` (every capability the host can grant).

Who waits for the process. The runtime's stage 1 forks it inside the container's PID namespace and exits, so the
process is orphaned at once and handed to the nearest child subreaper above us. In the foreground we make ourselves
that subreaper before the runtime forks: the process becomes our child, we collect its status and leave with it.
With `-d` we are no subreaper, so it goes to whoever is (or the host's init), which reaps it; the runtime reaps its
stage 1, and nothing of it is left as our zombie. The same holds for the probe runner: it is a subreaper, waits
for the check, and is itself the monitor's child.

The terminal (`-t`): the runtime hands the pty's master over a console socket (runc's protocol); we proxy it to our
own terminal, raw, with its window size, and Docker's detach keys (ctrl-p ctrl-q). After a detach a small drainer
keeps the master open so the process is not hung up, as Docker's shim keeps it.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

from barque.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound

__all__ = ["ExecFailed", "exec_in", "spawn", "exec_process_spec", "probe_main", "OUTPUT_LIMIT"]

#: Docker keeps this much of a health check's output (the first bytes, then "...")
OUTPUT_LIMIT = 4096
#: signals forwarded to a foreground exec without a terminal
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


class ExecFailed(FailedPrecondition):
    """The process could not be started; `code` is Docker's exit status for that: 126, whatever the reason."""

    def __init__(self, message: str, code: int = 126) -> None:
        super().__init__(message)
        self.code = code


# -- the process spec ------------------------------------------------------------------------------------------

def _container_process(run_dir: Path) -> dict:
    try:
        spec = json.loads((Path(run_dir) / "config.json").read_bytes())
    except (OSError, ValueError) as e:
        raise FailedPrecondition(f"cannot read the container's runtime config in {run_dir}: {e}") from None
    return spec.get("process") or {}


def _merge_env(base: list[str], extra: list[str]) -> list[str]:
    """`extra` over `base` by name: a replaced variable keeps its place, a new one is appended."""
    out = {e.partition("=")[0]: e for e in base}
    for e in extra:
        out[e.partition("=")[0]] = e
    return list(out.values())


def exec_process_spec(base: dict, argv: list[str], *, env: list[str] = (), user: tuple | None = None,
                      workdir: str | None = None, tty: bool = False, privileged: bool = False,
                      config_env: list[str] = (), all_caps: list[str] | None = None) -> dict:
    """The exec's process: the container's `base` process with the changes. `user` is resolve_user's
    (uid, gid, additional gids, home); `config_env` is the container's Config.Env (whether it names HOME)."""
    if not argv:
        raise InvalidArgument("No exec command specified")
    process = copy.deepcopy(base)
    process["args"] = list(argv)
    process["terminal"] = bool(tty)
    process.pop("consoleSize", None)
    environ = list(process.get("env") or [])
    if user is not None:
        uid, gid, extra, home = user
        umask = (process.get("user") or {}).get("umask")
        process["user"] = {"uid": uid, "gid": gid, **({"additionalGids": list(extra)} if extra else {}),
                           **({"umask": umask} if umask is not None else {})}
        if "HOME" not in {e.partition("=")[0] for e in config_env}:
            environ = _merge_env(environ, [f"HOME={home}"])
    if tty and not any(e.startswith("TERM=") for e in [*environ, *env]):
        environ.append("TERM=xterm")
    process["env"] = _merge_env(environ, list(env))
    if workdir:
        process["cwd"] = workdir
    if privileged:
        caps = list(all_caps or [])
        process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": list(caps)}
    return process


# -- starting it -----------------------------------------------------------------------------------------------

def _start_error(c, e: Exception) -> Exception:
    """The runtime's failure as Docker reports an exec that could not start."""
    msg = getattr(e, "message", None) or str(e)
    if isinstance(e, NotFound) or msg.startswith("cannot exec in container"):
        return Conflict(f"Container {c.id} is not running")
    # dockerd: 126 whatever the reason (a command not found included): its exec start sets 127 for that, then its
    # deferred cleanup overwrites every failed start's code with 126 (unlike a container's start, which keeps 127)
    return ExecFailed(f"OCI runtime exec failed: exec failed: unable to start container process: {msg}: unknown")


def check_running(c) -> None:
    """Docker's refusals before an exec: not running, paused, restarting."""
    status = c.refresh().get("Status")
    if status == "paused":
        raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
    if status == "restarting":
        raise Conflict(f"Container {c.id} is restarting, wait until the container is running")
    if status != "running":
        raise Conflict(f"Container {c.id} is not running")


@contextmanager
def _stdio(fds: dict[int, int]):
    """Our fds 0-2 replaced by `fds` while the runtime forks (the process inherits them), then restored.
    SIGPIPE and SIGXFSZ go back to their defaults meanwhile: Python ignores them, and an ignored signal would be
    inherited by the container's process."""
    saved = {i: os.dup(i) for i in fds}
    handlers = {s: signal.signal(s, signal.SIG_DFL) for s in (signal.SIGPIPE, signal.SIGXFSZ)}
    try:
        for i, fd in fds.items():
            os.dup2(fd, i)
        yield
    finally:
        for i, fd in saved.items():
            os.dup2(fd, i)
            os.close(fd)
        for s, h in handlers.items():
            signal.signal(s, h)


@contextmanager
def _private_dir():
    """A directory for the console socket and the pid file, reached through /proc/self/fd (a unix socket path has
    a 108-byte limit that a temporary directory's path need not respect)."""
    import shutil
    import tempfile

    d = tempfile.mkdtemp(prefix="barque-exec-")
    fd = os.open(d, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)
        shutil.rmtree(d, ignore_errors=True)


def _read_pid(path: str) -> int:
    with open(path) as f:
        return int(f.read().strip())


def exec_in(engine, c, argv: list[str], *, env: list[str] = (), user: str | None = None,
            workdir: str | None = None, tty: bool = False, detach: bool = False, privileged: bool = False,
            stdin: bool = False, detach_keys: str | None = None) -> int | None:
    """Run `argv` in the running container `c`. Foreground: our stdio (stdin only with `stdin`, else /dev/null) or,
    with `tty`, a pty proxied to our terminal; returns the process's exit status (128+N for signal N), or None
    when the user detached. With `detach`, returns 0 once it runs. Raises Conflict when the container does not
    run, ExecFailed (with Docker's 126) when the process cannot start."""
    from barque.linux import _libc

    devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    try:
        if detach:
            redirect = {0: devnull, 1: devnull, 2: devnull}
        else:
            redirect = {} if stdin and not tty else {0: devnull}
            _libc.set_child_subreaper(True)
        pid, master = spawn(engine, c, argv, env=env, user=user, workdir=workdir, tty=tty, privileged=privileged,
                            stdio=redirect)
    finally:
        os.close(devnull)
    if detach:
        if master is not None:
            _drain_in_background(master)
        return 0
    if master is not None:
        return _tty_session(master, pid, stdin=stdin, detach_keys=detach_keys)
    from barque.runtime.run import wait_foreground

    return wait_foreground(pid)


def spawn(engine, c, argv: list[str], *, env: list[str] = (), user: str | None = None, workdir: str | None = None,
          tty: bool = False, privileged: bool = False, stdio: dict[int, int] | None = None,
          console_size: tuple[int, int] | None = None) -> tuple[int, int | None]:
    """Start `argv` in the running container `c` and return at once: (its pid, the pty's master with `tty`, else
    None). Its fds 0-2 are ours with `stdio`'s replacements (fd → the fd to put there: pipes, /dev/null); with
    `tty` they are the pty's slave, sized `console_size` (rows, cols) from the start. To collect its exit status the
    caller makes itself a child subreaper first: the process is then its child. Raises Conflict when the container
    does not run, ExecFailed (with Docker's 126) when the process cannot start."""
    import socket

    from barque.runtime import Runtime

    check_running(c)
    if workdir and not workdir.startswith("/"):
        raise InvalidArgument(f"the working directory '{workdir}' is invalid, it needs to be an absolute path")
    process = build_exec_process(engine, c, argv, env=env, user=user, workdir=workdir, tty=tty,
                                 privileged=privileged)
    if tty and console_size and console_size[0] and console_size[1]:
        process["consoleSize"] = {"height": int(console_size[0]), "width": int(console_size[1])}
    runtime = Runtime(engine.runtime_root if engine is not None else c.runtime_root)
    master = None
    with _private_dir() as d:
        pid_file = f"{d}/pid"
        listener = None
        if tty:
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            listener.bind(f"{d}/console.sock")
            listener.listen(1)
        try:
            try:
                with _stdio(stdio or {}):
                    runtime.exec(c.id, process, detach=True, pid_file=Path(pid_file),
                                 console_socket=f"{d}/console.sock" if tty else None)
            except (FailedPrecondition, NotFound) as e:
                raise _start_error(c, e) from None
            pid = _read_pid(pid_file)
            if listener is not None:
                from barque.runtime.console import recv_master

                conn, _ = listener.accept()
                try:
                    master, _name = recv_master(conn)
                finally:
                    conn.close()
        finally:
            if listener is not None:
                listener.close()
    return pid, master


def build_exec_process(engine, c, argv: list[str], *, env=(), user: str | None = None, workdir: str | None = None,
                       tty: bool = False, privileged: bool = False) -> dict:
    base = _container_process(c.run_dir)
    resolved = None
    if user:
        from barque.container.rootfs import resolve_user

        try:
            resolved = resolve_user(c.run_dir / "rootfs", user, c.record["HostConfig"].get("GroupAdd") or ())
        except InvalidArgument as e:  # Docker: the exec cannot start (126)
            raise ExecFailed(e.message, 126) from None
    caps = None
    if privileged:
        from barque.runtime.caps import available_capabilities

        caps = list(available_capabilities())
    return exec_process_spec(base, argv, env=list(env), user=resolved, workdir=workdir, tty=tty,
                             privileged=privileged, config_env=c.record["Config"].get("Env") or [], all_caps=caps)


# -- the terminal ----------------------------------------------------------------------------------------------

def _exited(pid: int) -> int | None:
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return 255 << 8
    return status if done else None


def _wait(pid: int) -> int:
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return 255 << 8


def _tty_session(master: int, pid: int, *, stdin: bool, detach_keys: str | None) -> int | None:
    """Proxy the pty to our terminal until the process exits (its status) or the user types the detach keys
    (None; the process keeps running)."""
    import select

    from barque.cli.attach_io import parse_detach_keys
    from barque.runtime.console import set_size
    from barque.runtime.run import exit_code

    keys = parse_detach_keys(detach_keys)
    in_fd = 0 if stdin else None
    restore = None
    previous: dict = {}

    def resize(*_):
        for fd in (0, 1):
            try:
                size = os.get_terminal_size(fd)
                set_size(master, size.lines, size.columns)
                return
            except OSError:
                continue

    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    resize()
    previous[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, resize)
    for s in (signal.SIGTERM, signal.SIGHUP):
        previous[s] = signal.signal(s, forward)
    if in_fd is not None and os.isatty(in_fd):
        import termios
        import tty as ttymod

        restore = termios.tcgetattr(in_fd)
        ttymod.setraw(in_fd)
    status = None
    pending = b""
    try:
        watch = [master] + ([in_fd] if in_fd is not None else [])
        while True:
            try:
                ready, _, _ = select.select(watch, [], [], 0.2)
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the last holder of the slave is gone
                    data = b""
                if not data:
                    break
                _write_all(1, data)
            if in_fd is not None and in_fd in ready:
                try:
                    data = os.read(in_fd, 65536)
                except OSError:
                    data = b""
                if not data:
                    watch.remove(in_fd)
                    in_fd = None
                    _write_all(master, b"\x04")  # EOF on a terminal is ^D
                    continue
                data, pending, detached = _split_detach(pending + data, keys)
                if data:
                    _write_all(master, data)
                if detached:
                    _drain_in_background(master)
                    return None
            status = _exited(pid)
            if status is not None:
                _drain(master)
                break
    finally:
        if restore is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, restore)
        for s, h in previous.items():
            signal.signal(s, h)
    os.close(master)
    if status is None:
        from barque.runtime.run import wait_foreground

        return wait_foreground(pid)
    from barque.runtime.run import _reap_orphans

    _reap_orphans()
    return exit_code(status)


def _split_detach(data: bytes, keys: bytes) -> tuple[bytes, bytes, bool]:
    """(bytes to send, bytes held back as a possible start of the detach keys, whether they were typed)."""
    if not keys:
        return data, b"", False
    i = data.find(keys)
    if i >= 0:
        return data[:i], b"", True
    for n in range(min(len(keys) - 1, len(data)), 0, -1):
        if data.endswith(keys[:n]):
            return data[:-n], data[-n:], False
    return data, b"", False


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            import select

            select.select([], [fd], [], 1.0)
        except OSError:
            return


def _drain(master: int) -> None:
    """What the process wrote before it exited (a grandchild may still hold the slave: no waiting for EOF)."""
    import select

    while True:
        ready, _, _ = select.select([master], [], [], 0.05)
        if not ready:
            return
        try:
            data = os.read(master, 65536)
        except OSError:
            return
        if not data:
            return
        _write_all(1, data)


def _drain_in_background(master: int) -> None:
    """Keep the pty's master open (its process would get SIGHUP otherwise) and its output read, in a detached
    grandchild that ends when the last holder of the slave does."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            devnull = os.open("/dev/null", os.O_RDWR)
            os.dup2(master, 0)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            if os.access("/bin/cat", os.X_OK):  # a small process to keep around, not a copy of this one
                os.execv("/bin/cat", ["cat"])
            while True:
                try:
                    if not os.read(0, 65536):
                        break
                except OSError:
                    break
        finally:
            os._exit(0)
    os.close(master)
    os.waitpid(pid, 0)


# -- the health-check probe ------------------------------------------------------------------------------------

def probe_main() -> None:
    """Entry of a health-check probe, started by the container's monitor as a fresh interpreter with one JSON
    argument: {"id", "runtime_root", "run_dir", "args", "result"}. Runs the check in the container with the
    container's env and user, reads its output (Docker keeps the first 4096 bytes), and writes
    {"ExitCode", "Output"} to `result`: the check's exit status, or -1 and the reason when it could not start.
    SIGTERM (the monitor's timeout) kills the check and ends the probe."""
    req = json.loads(sys.argv[-1])
    sys.argv = ["barque-health-probe", req["id"]]
    try:
        code, output = _probe(req)
    except BaseException as e:  # noqa: BLE001 - the monitor learns everything through the result file
        code, output = -1, str(getattr(e, "message", None) or e) or type(e).__name__
    tmp = req["result"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"ExitCode": code, "Output": output}, f)
    os.replace(tmp, req["result"])
    os._exit(0)


class _Stopped(BaseException):
    """SIGTERM from the monitor: the check ran past its timeout."""


def _stop(*_) -> None:
    raise _Stopped


def _probe(req: dict) -> tuple[int, str]:
    from barque.linux import _libc
    from barque.runtime import Runtime
    from barque.runtime.run import exit_code

    # from the start: a stop during the runtime's setup unwinds through its cleanup, which kills what it forked
    signal.signal(signal.SIGTERM, _stop)
    process = exec_process_spec(_container_process(Path(req["run_dir"])), req["args"])
    _libc.set_child_subreaper(True)
    pid_file = os.path.join(req["run_dir"], "health.pid")
    r, w = os.pipe2(os.O_CLOEXEC)
    devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    try:
        with _stdio({0: devnull, 1: w, 2: w}):
            Runtime(Path(req["runtime_root"])).exec(req["id"], process, detach=True, pid_file=Path(pid_file))
    except (FailedPrecondition, NotFound) as e:
        os.close(r)
        return -1, ("OCI runtime exec failed: exec failed: unable to start container process: "
                    f"{getattr(e, 'message', e)}: unknown")
    finally:
        os.close(w)
        os.close(devnull)
    pid = _read_pid(pid_file)
    try:
        status, output = _collect_output(r, pid)
    except _Stopped:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _wait(pid)
        raise
    finally:
        os.close(r)
    return exit_code(status), output


def _collect_output(r: int, pid: int) -> tuple[int, str]:
    """Read the check's output (the first OUTPUT_LIMIT bytes kept) until it exits; (wait status, output)."""
    import select

    kept = bytearray()
    truncated = False
    status = None
    os.set_blocking(r, False)
    open_ = True
    while True:
        if open_:
            ready, _, _ = select.select([r], [], [], 0.05)
            while ready:
                try:
                    data = os.read(r, 65536)
                except BlockingIOError:
                    break
                if not data:
                    open_ = False
                    break
                room = OUTPUT_LIMIT - len(kept)
                kept += data[:max(room, 0)]
                truncated = truncated or len(data) > room
        if status is not None:
            break
        # after the exit, one more read for what it wrote last; a background child holding the pipe is not waited
        status = _exited(pid) if open_ else _wait(pid)
    return status, kept.decode(errors="replace") + ("..." if truncated else "")
