"""The client side of a monitor's attach socket (protocol: barque.container.monitor's docstring).

`connect` opens a container's attach socket; `Attachment` speaks the frames; `wait_exit` waits for the exit frame
alone, which is how `wait`, `stop` and a foreground `run` learn the exit code without polling.
"""

from __future__ import annotations

import json
import os
import socket

# the monitor's protocol: its frame header and kinds, and the one place frames are taken apart
from barque.container.monitor import EXIT, HEADER, OUT, RESIZE, STDIN, STDIN_CLOSE, split_frames
from barque.errors import FailedPrecondition

__all__ = ["Attachment", "connect", "wait_exit", "parse_detach_keys"]


def connect(c, hello: dict) -> "Attachment":
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    dir_fd = -1
    try:  # through /proc/self/fd: a unix socket path is limited to 108 bytes, the run directory's path is not
        dir_fd = os.open(c.run_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        sock.connect(f"/proc/self/fd/{dir_fd}/attach.sock")
    except OSError as e:
        sock.close()
        raise FailedPrecondition(f"cannot attach to container {c.id[:12]}: it is not running ({e.strerror})") from None
    finally:
        if dir_fd >= 0:
            os.close(dir_fd)
    try:
        return Attachment(sock, hello)
    except OSError as e:  # the monitor ended between our connect and our hello (EPIPE, ECONNRESET)
        sock.close()
        raise FailedPrecondition(f"cannot attach to container {c.id[:12]}: it is not running ({e.strerror})") from None


class Attachment:
    def __init__(self, sock: socket.socket, hello: dict) -> None:
        self.sock = sock
        self.sock.sendall(json.dumps(hello).encode() + b"\n")
        self.buf = b""
        self.exit: dict | None = None

    def fileno(self) -> int:
        return self.sock.fileno()

    def send_stdin(self, data: bytes) -> None:
        self.sock.sendall(HEADER.pack(STDIN, len(data)) + data)

    def close_stdin(self) -> None:
        self.sock.sendall(HEADER.pack(STDIN_CLOSE, 0))

    def resize(self, rows: int, cols: int) -> None:
        payload = f"{rows} {cols}".encode()
        try:
            self.sock.sendall(HEADER.pack(RESIZE, len(payload)) + payload)
        except OSError:
            pass

    def frames(self, data: bytes):
        """Feed received bytes; yields (stream, payload) for each complete frame. An exit frame sets `exit`."""
        frames, self.buf = split_frames(self.buf + data)
        for kind, payload in frames:
            if kind == EXIT:
                self.exit = json.loads(payload)
            else:
                yield kind, payload

    def recv(self) -> bytes:
        try:
            return self.sock.recv(65536)
        except OSError:
            return b""

    def close(self) -> None:
        self.sock.close()


def wait_exit(c, timeout: float | None = None) -> dict | None:
    """Block until the container's monitor reports the exit ({"ExitCode", "Removed"}); None if there is no monitor
    to ask (the container is not running) or the monitor went away without saying."""
    try:
        a = connect(c, {"wait": True})
    except FailedPrecondition:
        return None
    a.sock.settimeout(timeout)
    try:
        while a.exit is None:
            data = a.recv()
            if not data:
                break
            for _ in a.frames(data):
                pass
    except (socket.timeout, TimeoutError):
        return None
    finally:
        a.close()
    return a.exit


def _send_file(a: Attachment, fd: int) -> None:
    while True:
        data = os.read(fd, 65536)
        if not data:
            break
        a.send_stdin(data)
    a.close_stdin()


def pump(a: Attachment, stdout, stderr, stdin_fd: int | None, tty: bool, detach_keys: bytes = b"\x10\x11") -> dict | None:
    """Copy between the terminal (or pipes) and the attachment until the container exits or the user detaches
    (ctrl-p ctrl-q on a terminal). Returns the exit frame, or None after a detach."""
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(a.sock, selectors.EVENT_READ, "sock")
    if stdin_fd is not None:
        try:
            sel.register(stdin_fd, selectors.EVENT_READ, "stdin")
        except (PermissionError, ValueError, OSError):  # a regular file (`< file`): send it whole, then EOF
            _send_file(a, stdin_fd)
            stdin_fd = None
    pending = b""
    while True:
        for key, _ in sel.select():
            if key.data == "sock":
                data = a.recv()
                if not data:
                    return a.exit
                for kind, payload in a.frames(data):
                    out = stdout if kind == OUT else stderr
                    out.write(payload)
                    out.flush()
                if a.exit is not None:
                    return a.exit
            else:
                try:
                    data = os.read(stdin_fd, 65536)
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(stdin_fd)
                    stdin_fd = None
                    try:
                        a.close_stdin()
                    except OSError:
                        pass
                    continue
                if tty and detach_keys:
                    data = pending + data
                    pending = b""
                    idx = data.find(detach_keys)
                    if idx >= 0:
                        if idx:
                            a.send_stdin(data[:idx])
                        return None
                    if data.endswith(detach_keys[:1]):
                        pending, data = data[-1:], data[:-1]
                if data:
                    try:
                        a.send_stdin(data)
                    except OSError:
                        pass


def parse_detach_keys(text: str | None) -> bytes:
    """Docker's --detach-keys syntax: comma-separated keys, each a letter or `ctrl-<x>` (x in a-z, @, [, \\, ], ^, _)."""
    from barque.errors import InvalidArgument

    if not text:
        return b"\x10\x11"
    out = bytearray()
    for key in text.split(","):
        if key.startswith("ctrl-") and len(key) == 6:
            ch = key[5]
            if "a" <= ch <= "z":
                out.append(ord(ch) - ord("a") + 1)
            elif ch in "@[\\]^_":
                out.append(ord(ch) - 64)
            else:
                raise InvalidArgument(f"Unknown character: '{key}'")
        elif len(key) == 1:
            out.append(ord(key))
        else:
            raise InvalidArgument(f"Unknown character: '{key}'")
    return bytes(out)
