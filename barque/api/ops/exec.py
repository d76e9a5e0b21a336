"""Exec operations of the API: create (the container's checks and the event) and start — the child that starts the
process is the one that waits for it.

`exec.start` starts the command (barque.container.exec.spawn) with pipes, or a pty, instead of its own stdio, and
then speaks the monitor's frame protocol (barque/container/monitor.py) on the stream socket the server passed
(`chan.fds[0]`), so the server joins it to the client's hijacked connection with sessions.relay: stdout (1) and
stderr (2) frames out — a pty's output all as stdout — and the exit frame (3, `{"ExitCode": n}`) last; stdin (0),
stdin closed (5) and resize (4, "rows cols") frames in. The call's own socket carries the answer (`{"Pid": n}` once
the process runs), then resize requests from the server (`{"resize": [rows, cols]}` lines) and, last, one more
line, `{"ExitCode": n}`, whether or not anyone is still attached — that is how `exec inspect` learns it.

When the client goes away (its connection closed, or it detached), the process runs on as Docker's does: its stdin
is closed (a pty is kept open: closing it would hang the process up), its output read and dropped, its exit
recorded. Without a stream (Detach) the same from the start.
"""

from __future__ import annotations

import errno
import json
import os
import selectors
import socket

from barque.api.zygote import op
from barque.container.monitor import ERR, EXIT, HEADER, OUT, RESIZE, STDIN, STDIN_CLOSE, split_frames

#: after the exit, output still arriving within this long is passed on (a background child may hold the pipe)
DRAIN_QUIET = 0.1
CHUNK = 65536


def _container(engine, ref: str):
    return engine.containers.get(ref)


def _command_text(cmd: list[str]) -> str:
    return " ".join(cmd)


@op("exec.create")
def create(engine, args, chan):
    """Docker's refusals at exec create (not running, paused, restarting) and its `exec_create` event."""
    from barque.container.events import container_event
    from barque.container.exec import check_running

    c = _container(engine, args["container"])
    check_running(c)
    container_event(engine.settings.root, c.record, f"exec_create: {_command_text(args['cmd'])}",
                    execID=args["exec_id"])
    return {"Id": c.id}


@op("exec.start")
def start(engine, args, chan):
    from barque.container.events import container_event
    from barque.linux import _libc

    _keep_descriptors_from_the_process()
    stream = socket.socket(fileno=chan.fds[0]) if chan.fds else None
    c = _container(engine, args["container"])
    tty = bool(args.get("tty"))
    attached = stream is not None
    want_in = attached and bool(args.get("stdin"))
    want_out = attached and bool(args.get("stdout"))
    want_err = attached and bool(args.get("stderr"))
    devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    ours: list[int] = []    # our ends: kept
    theirs: list[int] = []  # the process's ends: closed once it has them

    def pipe() -> tuple[int, int]:
        r, w = os.pipe2(os.O_CLOEXEC)
        return r, w

    in_w = out_r = err_r = None
    stdio = {0: devnull, 1: devnull, 2: devnull}
    if not tty:
        if want_in:
            r, in_w = pipe()
            stdio[0] = r
            ours.append(in_w)
            theirs.append(r)
        if want_out:
            out_r, w = pipe()
            stdio[1] = w
            ours.append(out_r)
            theirs.append(w)
        if want_err:
            err_r, w = pipe()
            stdio[2] = w
            ours.append(err_r)
            theirs.append(w)
    size = args.get("console_size") or None
    _libc.set_child_subreaper(True)
    try:
        from barque.container.exec import spawn

        pid, master = spawn(engine, c, list(args["cmd"]), env=args.get("env") or [], user=args.get("user") or None,
                            workdir=args.get("workdir") or None, tty=tty, privileged=bool(args.get("privileged")),
                            stdio=stdio, console_size=tuple(size) if size else None)
    except BaseException:
        for fd in ours:
            os.close(fd)
        raise
    finally:
        for fd in theirs:
            os.close(fd)
        os.close(devnull)
    root, record, exec_id, text = engine.settings.root, c.record, args["exec_id"], _command_text(args["cmd"])
    try:
        container_event(root, record, f"exec_start: {text}", execID=exec_id)
    except Exception:  # noqa: BLE001 - an event is not worth the exec
        pass
    chan.reply({"Pid": pid})
    engine.close()  # the session may last long: no database held meanwhile
    session = _Session(chan.sock, stream, pid, tty=tty, master=master, in_w=in_w, out_r=out_r, err_r=err_r,
                       stdin=want_in)
    code = session.run()
    try:
        container_event(root, record, "exec_die", execID=exec_id, exitCode=str(code))
    except Exception:  # noqa: BLE001
        pass
    try:
        chan.sock.sendall(json.dumps({"ExitCode": code}).encode() + b"\n")
    except OSError:
        pass
    return None


def _keep_descriptors_from_the_process() -> None:
    """Every descriptor of ours above stdio close-on-exec: the process must get only its own stdio. Descriptors
    passed over a socket (the call's, the stream) arrive inheritable, and the zygote may hold others."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass  # the listing's own descriptor, closed meanwhile


class _Session:
    """The exec's stdio ↔ the server's frame stream, until the process exits."""

    def __init__(self, control: socket.socket, stream: socket.socket | None, pid: int, *, tty: bool,
                 master: int | None, in_w: int | None, out_r: int | None, err_r: int | None, stdin: bool) -> None:
        self.control = control
        self.stream = stream
        self.pid = pid
        self.tty = tty
        self.master = master
        self.sel = selectors.DefaultSelector()
        self.outputs: dict[int, int] = {}  # fd → frame kind
        if master is not None:
            os.set_blocking(master, False)
            self.outputs[master] = OUT
        for fd, kind in ((out_r, OUT), (err_r, ERR)):
            if fd is not None:
                os.set_blocking(fd, False)
                self.outputs[fd] = kind
        # where stdin goes: the pipe, or the pty's master (only when the client sends stdin)
        self.stdin_fd = in_w if in_w is not None else (master if stdin else None)
        if in_w is not None:
            os.set_blocking(in_w, False)
        self.pending = b""       # stdin not yet taken by the process
        self.stdin_eof = False   # the client's stdin ended: close the process's once `pending` is written
        self.frames = b""        # a partial frame from the stream
        self.control_buf = b""
        self.exited: int | None = None

    # -- plumbing ---------------------------------------------------------------------------------------------

    def _send(self, kind: int, payload: bytes) -> None:
        if self.stream is None:
            return
        try:
            self.stream.sendall(HEADER.pack(kind, len(payload)) + payload)
        except OSError:
            self._lose_client()

    def _lose_client(self) -> None:
        """The client is gone (or detached): the process runs on without it."""
        if self.stream is not None:
            self._unwatch(self.stream)
            try:
                self.stream.close()
            except OSError:
                pass
            self.stream = None
        self.pending = b""
        if self.stdin_fd is not None and self.stdin_fd != self.master:
            self._unwatch(self.stdin_fd)
            os.close(self.stdin_fd)
        self.stdin_fd = None

    def _unwatch(self, fileobj) -> None:
        try:
            self.sel.unregister(fileobj)
        except (KeyError, ValueError):
            pass

    def _watch(self, fileobj, events: int, data) -> None:
        try:
            self.sel.register(fileobj, events, data)
        except KeyError:
            self.sel.modify(fileobj, events, data)

    def _close_stdin(self) -> None:
        """The client's stdin ended: the process's ends once it has taken what is pending."""
        if self.stdin_fd is None:
            return
        if self.stdin_fd == self.master:
            self._write_stdin(b"\x04")  # the end of a terminal's input is ^D
            self.stdin_fd = None
            return
        self.stdin_eof = True
        self._flush_stdin()

    def _write_stdin(self, data: bytes) -> None:
        if self.stdin_fd is None:
            return
        self.pending += data
        self._flush_stdin()

    def _flush_stdin(self) -> None:
        fd = self.stdin_fd
        while self.pending and fd is not None:
            try:
                n = os.write(fd, self.pending)
            except BlockingIOError:
                break
            except OSError:  # the process closed its stdin: what it did not read is dropped
                self.pending = b""
                break
            self.pending = self.pending[n:]
        if fd is not None and fd != self.master and self.stdin_eof and not self.pending:
            self._unwatch(fd)
            os.close(fd)
            self.stdin_fd = None
        self._arm()

    def _arm(self) -> None:
        """Stdin pending: wait for the process to take it before reading more from the client (backpressure)."""
        fd = self.stdin_fd
        if fd is not None and fd != self.master:
            if self.pending:
                self._watch(fd, selectors.EVENT_WRITE, "stdin")
            else:
                self._unwatch(fd)
        if self.stream is not None:
            if self.pending:
                self._unwatch(self.stream)
            else:
                self._watch(self.stream, selectors.EVENT_READ, "stream")
        if self.master is not None and self.master in self.outputs:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.pending and fd == self.master else 0)
            self._watch(self.master, events, "output")

    # -- events -----------------------------------------------------------------------------------------------

    def _read_output(self, fd: int) -> bool:
        """Pass on what `fd` has; False at its end."""
        try:
            data = os.read(fd, CHUNK)
        except BlockingIOError:
            return True
        except OSError as e:  # EIO: the pty's last slave holder is gone
            if e.errno != errno.EIO:
                raise
            data = b""
        if not data:
            self._unwatch(fd)
            del self.outputs[fd]
            if fd != self.master:
                os.close(fd)
            return False
        self._send(self.outputs[fd], data)
        return True

    def _read_stream(self) -> None:
        try:
            data = self.stream.recv(CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lose_client()
            return
        frames, self.frames = split_frames(self.frames + data)
        for kind, payload in frames:
            if kind == STDIN:
                self._write_stdin(payload)
            elif kind == STDIN_CLOSE:
                self._close_stdin()
            elif kind == RESIZE:
                self._resize(payload.decode(errors="replace").split())

    def _read_control(self) -> None:
        try:
            data = self.control.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the server is gone: nobody to tell anything any more
            self._unwatch(self.control)
            self._lose_client()
            return
        self.control_buf += data
        while b"\n" in self.control_buf:
            line, _, self.control_buf = self.control_buf.partition(b"\n")
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict) and "resize" in msg:
                self._resize(msg["resize"])

    def _resize(self, size) -> None:
        if self.master is None:
            return
        try:
            rows, cols = int(size[0]), int(size[1])
        except (ValueError, IndexError, TypeError):
            return
        from barque.runtime.console import set_size

        try:
            set_size(self.master, rows, cols)
        except OSError:
            pass

    # -- the loop ---------------------------------------------------------------------------------------------

    def run(self) -> int:
        import time

        from barque.runtime.run import _reap_orphans, exit_code

        pidfd = os.pidfd_open(self.pid)
        try:
            # both sockets stay blocking: they are read only when ready, and written whole (the client's pace)
            self.sel.register(pidfd, selectors.EVENT_READ, "exit")
            self.sel.register(self.control, selectors.EVENT_READ, "control")
            for fd in self.outputs:
                if fd != self.master:
                    self.sel.register(fd, selectors.EVENT_READ, "output")
            self._arm()
            status = None
            quiet_until = None
            while True:
                timeout = None if quiet_until is None else max(0.0, quiet_until - time.monotonic())
                ready = self.sel.select(timeout)
                got_output = False
                for key, events in ready:
                    what = key.data
                    if what == "exit" and status is None:
                        self._unwatch(pidfd)
                        status = _wait(self.pid)
                    elif what == "output":
                        if events & selectors.EVENT_READ:
                            got_output = self._read_output(key.fd) or got_output
                        if events & selectors.EVENT_WRITE and key.fd == self.master:
                            self._flush_stdin()
                    elif what == "stdin":
                        self._flush_stdin()
                    elif what == "stream" and self.stream is not None:
                        self._read_stream()
                    elif what == "control":
                        self._read_control()
                if status is not None:
                    if not self.outputs:
                        break
                    if quiet_until is None or got_output:
                        quiet_until = time.monotonic() + DRAIN_QUIET
                    elif time.monotonic() >= quiet_until:
                        break
            code = exit_code(status)
            self._send(EXIT, json.dumps({"ExitCode": code}).encode())
            return code
        finally:
            os.close(pidfd)
            self.sel.close()
            for fd in list(self.outputs):
                if fd != self.master:
                    os.close(fd)
            if self.stdin_fd is not None and self.stdin_fd != self.master:
                try:
                    os.close(self.stdin_fd)
                except OSError:
                    pass
            if self.master is not None:
                os.close(self.master)
            _reap_orphans()


def _wait(pid: int) -> int:
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except ChildProcessError:
            return 255 << 8
        except InterruptedError:
            continue

