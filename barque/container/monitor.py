"""The per-container monitor: the small process that stays beside a container so no daemon is needed (Podman's
conmon, containerd's shim).

It is the container's parent (a child subreaper, so the container's PID 1 is reparented to it when the runtime's
stage 1 exits) and holds the container's stdio: output goes to the log file and to whoever is attached; input comes
from the attached client that owns stdin. It records the exit (state.json, atomically), applies the restart policy,
runs health checks, and removes the container when it was created with --rm.

Two lives: `launch` runs in a process forked from the CLI — every module the runtime needs is already imported, so
create and start cost no interpreter start-up. Once the container runs, a detached monitor re-executes itself as a
fresh, lean interpreter (`python -S`, standard library plus this module and the log writer) and carries on in
`serve` with the same pid, the same children and the same descriptors: an idle container then costs one small
process. A foreground `run` keeps the forked process: it is about to end anyway.

The attach protocol, on the unix socket `<run dir>/attach.sock` (and on the socket pair a foreground `run` is born
with): the client sends one JSON line — `{"stdin": bool, "stdout": bool, "stderr": bool}` or `{"wait": true}` —
then both sides exchange frames with Docker's 8-byte header (type, 0, 0, 0, big-endian length) and a payload.
Monitor → client: 1 stdout, 2 stderr, 3 exit (JSON: ExitCode, Removed, OOMKilled). Client → monitor: 0 stdin data,
5 stdin closed, 4 resize ("rows cols").
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
import time

OUT, ERR, EXIT = 1, 2, 3
STDIN, RESIZE, STDIN_CLOSE = 0, 4, 5
HEADER = struct.Struct(">BxxxI")
DRAIN_TIMEOUT = 2.0


#: state.json keys only barque reads (Docker's inspect has no such fields): the user stopped the container (no
#: restart policy applies, `system restore` leaves it), and a restart policy `update` gave a running container
STOPPED_BY_USER_KEY = "_StoppedByUser"
RESTART_POLICY_KEY = "_RestartPolicy"


def exit_code_of(status: int | None) -> int:
    """Docker's exit code from a wait status: the process's own, or 128 + the signal that killed it."""
    st = status or 0
    return 128 + os.WTERMSIG(st) if os.WIFSIGNALED(st) else os.WEXITSTATUS(st)


def frame(kind: int, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def split_frames(buf: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """The complete frames at the start of `buf` as (kind, payload), and what is left (the next one's beginning).
    Every reader of this protocol — the monitor, the CLI's attach, the API's exec — takes frames apart here."""
    out = []
    pos, n = 0, len(buf)
    while n - pos >= HEADER.size:
        kind, size = HEADER.unpack_from(buf, pos)
        end = pos + HEADER.size + size
        if end > n:
            break
        out.append((kind, buf[pos + HEADER.size:end]))
        pos = end
    return out, buf[pos:]


def now_rfc3339(t: float | None = None) -> str:
    t = time.time() if t is None else t
    secs = int(t)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{int((t - secs) * 1e9):09d}Z"


def proc_start(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in (b"Z", b"X") else int(fields[19])


def read_state(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return {}


def write_state(path: str, state: dict, durable: bool = True) -> None:
    """Replace the file atomically; `durable`: on disk (fsync) before the rename."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, json.dumps(state).encode())
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class state_lock:
    """An exclusive flock beside state.json: the monitor, its health checker and the CLI each do a read-modify-write
    of the state, and without it one of two concurrent writers (an exit and a health result, say) loses its
    change."""

    def __init__(self, path) -> None:
        self.path = f"{path}.lock"
        self.fd = -1

    def __enter__(self) -> "state_lock":
        import fcntl

        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)  # closing the only descriptor releases the lock
        self.fd = -1


def update_state(path: str, **changes) -> dict:
    with state_lock(path):
        state = read_state(path)
        state.update(changes)
        write_state(path, state)
    return state


# -- life 1: launch (forked from the CLI) -----------------------------------------------------------------------

def launch(cfg: dict, status_fd: int, client_fd: int | None) -> None:
    """In the forked child: create and start the container, say how it went on `status_fd`, then serve. Never
    returns."""
    code = 0
    reported = False
    try:
        os.setsid()
        # the CLI's stdio (a terminal, or the pipes of whoever runs it) must not be held open by a process that
        # outlives it: `x=$(barque run -d …)` would never see end of file
        devnull = os.open("/dev/null", os.O_RDWR)
        for i in (0, 1, 2):
            os.dup2(devnull, i)
        os.close(devnull)
        from barque.linux import _libc

        _libc.set_child_subreaper(True)
        fds = _create_and_start(cfg)
        os.write(status_fd, json.dumps({"ok": True, "pid": fds["pid"]}).encode())
        reported = True
        if client_fd is None and cfg.get("lean", True):
            # the starter waits for the end of `status_fd`: the lean monitor closes it once it copies the
            # container's output, so what the container prints at once is in its log by then (a `logs` right
            # after `start` sees it, as with Docker, whose copier runs before its start returns)
            fds["ready"] = status_fd
            _reexec_lean(cfg, fds)
        os.close(status_fd)
        try:
            serve(cfg, fds, client_fd)
        except BaseException:
            import traceback

            update_state(cfg["state_path"], Error="monitor failed: " + traceback.format_exc(limit=3)[-500:])
            raise
    except BaseException as e:  # noqa: BLE001 - everything goes to the CLI waiting on status_fd
        if not reported:
            try:
                os.write(status_fd, json.dumps(_describe_failure(e)).encode())
            except OSError:
                pass
        code = 1
    finally:
        os._exit(code)


def _describe_failure(e: BaseException) -> dict:
    msg = str(getattr(e, "message", None) or e) or type(e).__name__
    code = 125
    if "executable file not found" in msg or "no such file or directory" in msg:
        code = 127
    elif "permission denied" in msg:
        code = 126
    kind = type(e).__name__
    return {"ok": False, "error": msg, "code": code, "kind": kind}


def _create_and_start(cfg: dict) -> dict:
    from pathlib import Path

    from barque.runtime.create import CreateOptions, create
    from barque.runtime.start import start
    from barque.runtime.state import StateStore

    store = StateStore(Path(cfg["runtime_root"]))
    tty = cfg["tty"]
    devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    saved = [os.dup(i) for i in (0, 1, 2)]
    fds: dict = {}
    ours: list[int] = []
    try:
        if tty:
            for i in (0, 1, 2):
                os.dup2(devnull, i)
        else:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            fds.update(out=out_r, err=err_r)
            ours += [out_w, err_w]
            if cfg["stdin"]:
                in_r, in_w = os.pipe2(os.O_CLOEXEC)
                fds["in"] = in_w
                ours.append(in_r)
                os.dup2(in_r, 0)
            else:
                os.dup2(devnull, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
        created = create(store, cfg["id"], CreateOptions(bundle=Path(cfg["bundle"]), console_to_parent=tty))
        if tty:
            fds["master"] = created.console_fd
            if cfg.get("size"):
                from barque.runtime.console import set_size

                set_size(created.console_fd, *cfg["size"])
        try:
            start(store, cfg["id"])
        except BaseException:
            from barque.runtime.delete import delete

            delete(store, cfg["id"], force=True)
            raise
        fds["pid"] = created.container.pid
        fds["pid_start"] = created.container.start_time
    finally:
        for i, fd in enumerate(saved):
            os.dup2(fd, i)
            os.close(fd)
        for fd in ours:
            os.close(fd)
        os.close(devnull)
    with state_lock(cfg["state_path"]):
        state = read_state(cfg["state_path"])
        state.update(Status="running", Running=True, Paused=False, Restarting=False, OOMKilled=False, Dead=False,
                     Pid=fds["pid"], _PidStart=fds["pid_start"], _MonitorPid=os.getpid(),
                     _MonitorStart=proc_start(os.getpid()), ExitCode=0, Error="", StartedAt=now_rfc3339(),
                     FinishedAt="0001-01-01T00:00:00Z")
        state.pop(STOPPED_BY_USER_KEY, None)
        if cfg.get("healthcheck"):
            state["Health"] = {"Status": "starting", "FailingStreak": 0, "Log": []}
        else:
            state.pop("Health", None)
        write_state(cfg["state_path"], state)
    return fds


def c_monitor_path() -> str | None:
    """The C monitor (barque/container/cmonitor, built by scripts/install.sh beside the interpreter), unless
    BARQUE_MONITOR=python asks for the Python one."""
    if os.environ.get("BARQUE_MONITOR") == "python":
        return None
    path = os.path.join(os.path.dirname(sys.executable), "barque-monitor")
    return path if os.access(path, os.X_OK) else None


def _c_monitor_serves(cfg: dict) -> bool:
    """What the C monitor does not do stays with the Python one: health checks, compressed (local) logs."""
    log_cfg = cfg.get("log") or {}
    return not cfg.get("healthcheck") and not log_cfg.get("compress")


def _reexec_lean(cfg: dict, fds: dict) -> None:
    """Replace this (large, forked) interpreter by a small program for the idle life: the C monitor when it serves
    this container, else a fresh `python -S` running `main`. Pid, children, subreaper status and the descriptors in
    `fds` carry over."""
    keep = [fd for k, fd in fds.items() if k in ("out", "err", "in", "master", "ready") and fd is not None]
    for fd in keep:
        os.set_inheritable(fd, True)
    pkg_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    blob = json.dumps({"cfg": cfg, "fds": fds})
    cmon = c_monitor_path()
    if cmon is not None and _c_monitor_serves(cfg):
        # the finisher's configuration beside the state (in the container's directory under the root, so the
        # monitor's command line names the root, as the Python monitor's does)
        blob_path = os.path.join(os.path.dirname(cfg["state_path"]), "monitor.json")
        # (not fsynced: it matters only while this boot's monitor lives, and the starter waits for it)
        write_state(blob_path, {"cfg": cfg, "fds": fds}, durable=False)
        log_cfg = cfg.get("log") or {}
        driver = log_cfg.get("driver", "json-file")
        max_size = log_cfg.get("max_size")
        argv = [cmon, "--pid", str(fds["pid"]), "--tty", "1" if cfg["tty"] else "0",
                "--stdin-once", "1" if cfg.get("stdin_once", True) else "0", "--run-dir", cfg["run_dir"],
                "--log", "" if driver == "none" else log_cfg["path"],
                "--max-size", str(-1 if max_size is None else max_size),
                "--max-file", str(log_cfg.get("max_file", 1))]
        for key, flag in (("out", "--stdout"), ("err", "--stderr"), ("in", "--stdin"), ("master", "--master"),
                          ("ready", "--ready-fd")):
            if fds.get(key) is not None:
                argv += [flag, str(fds[key])]
        argv += ["--", sys.executable, "-S", "-c",
                 f"import sys; sys.path.insert(0, {pkg_parent!r}); "
                 "from barque.container.monitor import finish_from_c; finish_from_c()", blob_path]
        os.execv(cmon, argv)
    argv = [sys.executable, "-S", "-c",
            f"import sys; sys.path.insert(0, {pkg_parent!r}); from barque.container.monitor import main; main()",
            blob]
    os.execv(sys.executable, argv)


def finish_from_c() -> None:
    """Entry of the C monitor's finisher: `… BLOB_PATH WAIT_STATUS CLIENT_FD…` — record the exit, restart or remove
    as asked (`finish`), then tell each attached client, as `serve` does at its end."""
    blob_path, status = sys.argv[1], int(sys.argv[2])
    clients = [int(fd) for fd in sys.argv[3:]]
    sys.argv = ["barque-monitor-finish", blob_path]
    blob = read_state(blob_path)
    cfg = blob["cfg"]
    try:
        os.unlink(blob_path)
    except OSError:
        pass
    code = 255 if status < 0 else exit_code_of(status)  # < 0: never reaped, nothing is known of the exit
    removed = False
    try:
        removed = finish(cfg, code)
    except BaseException:  # noqa: BLE001 - as `main`: the state file is all there is to report to
        import traceback

        update_state(cfg["state_path"], Error="monitor failed: " + traceback.format_exc(limit=3)[-500:])
    payload = frame(EXIT, json.dumps({"ExitCode": code, "Removed": removed}).encode())
    for fd in clients:
        try:
            os.write(fd, payload)
        except OSError:
            pass
        os.close(fd)
    os._exit(0)


def main() -> None:
    """Entry of the lean life (see `_reexec_lean`)."""
    blob = json.loads(sys.argv[-1])
    sys.argv = ["barque-monitor", blob["cfg"]["id"]]
    code = 0
    try:
        serve(blob["cfg"], blob["fds"], None)
    except BaseException:  # noqa: BLE001 - a monitor has nobody to report to but the state file
        import traceback

        update_state(blob["cfg"]["state_path"], Error="monitor failed: " + traceback.format_exc(limit=3)[-500:])
        code = 1
    os._exit(code)


# -- life 2: serve ---------------------------------------------------------------------------------------------

class Client:
    def __init__(self, sock: socket.socket, hello: dict) -> None:
        self.sock = sock
        self.stdin = bool(hello.get("stdin"))
        self.stdout = bool(hello.get("stdout"))
        self.stderr = bool(hello.get("stderr"))
        self.buf = b""

    def send(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False


class Monitor:
    def __init__(self, cfg: dict, fds: dict) -> None:
        import selectors

        self.cfg = cfg
        self.pid = fds["pid"]
        self.sel = selectors.DefaultSelector()
        self.clients: list[Client] = []
        self.pending: dict[socket.socket, bytes] = {}
        self.status: int | None = None
        self.exited_at = 0.0
        self.outputs: dict[int, int] = {}  # fd -> stream number
        self.stdin_fd = fds.get("master") if cfg["tty"] else fds.get("in")
        self.stdin_owner: Client | None = None
        self.writer = None
        log_cfg = cfg.get("log") or {}
        if log_cfg.get("driver", "json-file") != "none":
            from barque.container.logs import LogWriter

            self.writer = LogWriter(log_cfg["path"], log_cfg.get("max_size"), log_cfg.get("max_file", 1),
                                    log_cfg.get("compress", False))
        if cfg["tty"]:
            self._watch(fds["master"], OUT)
        else:
            self._watch(fds["out"], OUT)
            self._watch(fds["err"], ERR)
        self.health = None
        if cfg.get("healthcheck"):
            from barque.container.health import HealthChecker

            self.health = HealthChecker(cfg, self.pid)

    def _watch(self, fd: int, stream: int) -> None:
        import selectors

        os.set_blocking(fd, False)
        self.outputs[fd] = stream
        self.sel.register(fd, selectors.EVENT_READ, ("out", stream))

    # output
    def on_output(self, fd: int, stream: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: the terminal's last holder is gone
            data = b""
        if not data:
            self.sel.unregister(fd)
            os.close(fd)
            del self.outputs[fd]
            return
        if self.writer is not None:
            self.writer.write("stdout" if stream == OUT else "stderr", data)
        payload = frame(stream, data)
        for c in list(self.clients):
            if (stream == OUT and c.stdout) or (stream == ERR and c.stderr):
                if not c.send(payload):
                    self.drop(c)

    # clients
    def accept(self, listener: socket.socket) -> None:
        import selectors

        try:
            sock, _ = listener.accept()
        except OSError:
            return
        sock.setblocking(True)
        self.pending[sock] = b""
        self.sel.register(sock, selectors.EVENT_READ, ("hello", sock))

    def add_client(self, sock: socket.socket, hello: dict, rest: bytes = b"") -> None:
        import selectors

        if hello.get("wait"):
            # answered at the end of `serve`, after `finish` recorded the exit: an answer sent as soon as the
            # container is reaped would let `stop` return before the state says "exited"
            c = Client(sock, {})
            self.clients.append(c)
            self.sel.register(sock, selectors.EVENT_READ, ("client", c))
            return
        c = Client(sock, hello)
        self.clients.append(c)
        if c.stdin and self.stdin_fd is not None and self.stdin_owner is None:
            self.stdin_owner = c
        else:
            c.stdin = False
        self.sel.register(sock, selectors.EVENT_READ, ("client", c))
        if rest:
            c.buf = rest
            self._client_frames(c)

    def on_hello(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        buf = self.pending.get(sock, b"") + data
        if not data or len(buf) > 65536:
            self.sel.unregister(sock)
            self.pending.pop(sock, None)
            sock.close()
            return
        if b"\n" not in buf:
            self.pending[sock] = buf
            return
        line, rest = buf.split(b"\n", 1)
        self.sel.unregister(sock)
        del self.pending[sock]
        try:
            hello = json.loads(line)
        except ValueError:
            sock.close()
            return
        self.add_client(sock, hello, rest)

    def on_client(self, c: Client) -> None:
        try:
            data = c.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.drop(c)
            return
        c.buf += data
        self._client_frames(c)

    def _client_frames(self, c: Client) -> None:
        frames, c.buf = split_frames(c.buf)
        for kind, payload in frames:
            if kind == STDIN and c is self.stdin_owner and self.stdin_fd is not None:
                self._write_stdin(payload)
            elif kind == STDIN_CLOSE and c is self.stdin_owner:
                self._close_stdin()
            elif kind == RESIZE and self.cfg["tty"]:
                try:
                    rows, cols = (int(x) for x in payload.split())
                    self._resize(rows, cols)
                except ValueError:
                    pass

    def _write_stdin(self, data: bytes) -> None:
        view = memoryview(data)
        fd = self.stdin_fd
        os.set_blocking(fd, True)
        try:
            while view:
                n = os.write(fd, view)
                view = view[n:]
        except OSError:
            pass
        finally:
            if fd in self.outputs:
                os.set_blocking(fd, False)

    def _close_stdin(self) -> None:
        if self.cfg["tty"]:
            self._write_stdin(b"\x04")  # EOF on a terminal is ^D
            return
        if self.stdin_fd is not None and self.cfg.get("stdin_once", True):
            os.close(self.stdin_fd)
            self.stdin_fd = None

    def _resize(self, rows: int, cols: int) -> None:
        import fcntl
        import termios

        for fd, _ in self.outputs.items():
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            return

    def drop(self, c: Client) -> None:
        if c in self.clients:
            self.clients.remove(c)
            try:
                self.sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
            c.sock.close()
        if c is self.stdin_owner:
            self.stdin_owner = None
            if self.cfg.get("stdin_once") and not self.cfg["tty"]:
                self._close_stdin()

    def _send_exit(self, c: Client, removed: bool = False) -> None:
        payload = json.dumps({"ExitCode": self.exit_code(), "Removed": removed}).encode()
        c.send(frame(EXIT, payload))

    def exit_code(self) -> int:
        return exit_code_of(self.status)

    def reap(self) -> None:
        while True:
            try:
                pid, st = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if not pid:
                return
            if pid == self.pid and self.status is None:
                self.status = st
                self.exited_at = time.monotonic()
            elif self.health is not None:
                self.health.reaped(pid, st)


def serve(cfg: dict, fds: dict, client_fd: int | None) -> None:
    import selectors  # noqa: F401 - imported for the Monitor

    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)  # only the container's exit ends a monitor
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    m = Monitor(cfg, fds)
    import selectors as _s

    m.sel.register(wake_r, _s.EVENT_READ, ("wake", None))
    sock_path = os.path.join(cfg["run_dir"], "attach.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        os.unlink(sock_path)
    except FileNotFoundError:
        pass
    dir_fd = os.open(cfg["run_dir"], os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:  # through /proc/self/fd: a unix socket path is limited to 108 bytes, the run directory's path is not
        listener.bind(f"/proc/self/fd/{dir_fd}/attach.sock")
    finally:
        os.close(dir_fd)
    os.chmod(sock_path, 0o600)
    listener.listen(64)
    listener.setblocking(False)
    m.sel.register(listener, _s.EVENT_READ, ("listen", listener))
    ready = fds.pop("ready", None)
    if ready is not None:  # the starter returns now: the output is copied from here on (launch)
        os.close(ready)
    if client_fd is not None:  # born attached: its hello is already written, take it before any output
        sock = socket.socket(fileno=client_fd)
        sock.setblocking(True)
        buf = b""
        while b"\n" not in buf:
            data = sock.recv(4096)
            if not data:
                break
            buf += data
        line, _, rest = buf.partition(b"\n")
        try:
            m.add_client(sock, json.loads(line), rest)
        except ValueError:
            sock.close()
    m.reap()
    while True:
        timeout = None
        if m.status is not None:
            if not m.outputs or time.monotonic() - m.exited_at > DRAIN_TIMEOUT:
                break
            timeout = 0.05
        if m.health is not None:
            t = m.health.next_due()
            timeout = t if timeout is None else min(timeout, t)
        for key, _ in m.sel.select(timeout):
            kind, obj = key.data
            if kind == "out":
                m.on_output(key.fd, obj)
            elif kind == "wake":
                try:
                    while os.read(wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
                m.reap()
            elif kind == "listen":
                m.accept(obj)
            elif kind == "hello":
                m.on_hello(obj)
            elif kind == "client":
                m.on_client(obj)
        if m.health is not None and m.status is None:
            m.health.tick()
        m.reap()
    for fd in list(m.outputs):
        os.close(fd)
    listener.close()
    try:
        os.unlink(sock_path)
    except OSError:
        pass
    if m.writer is not None:
        m.writer.close()
    removed = finish(cfg, m.exit_code())
    for c in list(m.clients):
        m._send_exit(c, removed)
        c.sock.close()


def finish(cfg: dict, exit_code: int) -> bool:
    """After the container's exit: record it, release what it held, then restart it or remove it as asked.
    Returns whether the container was removed."""
    from barque.container.exit import after_exit

    return after_exit(cfg, exit_code)
