"""The container's terminal: a pty from the container's own devpts instance, its master handed out over a unix
socket with SCM_RIGHTS (runc's --console-socket protocol: a stream socket, one message whose payload is the pty's
name and whose one file descriptor is the master), its slave made the process's stdio and controlling terminal.
"""

from __future__ import annotations

import array
import fcntl
import os
import socket
import struct

from barque.errors import InvalidArgument

__all__ = ["open_pty", "set_size", "connect", "send_master", "recv_master", "make_controlling", "proxy"]

TIOCSCTTY = 0x540E
TIOCSWINSZ = 0x5414
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431


def open_pty(ptmx: str = "/dev/ptmx") -> tuple[int, str]:
    """A new pty from the devpts instance `ptmx` belongs to (inside the container: its own): (master fd, slave path)."""
    master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        n = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0" * 4))[0]
    except OSError:
        os.close(master)
        raise
    return master, os.path.join(os.path.dirname(os.path.realpath(ptmx)), str(n))


def set_size(fd: int, height: int, width: int) -> None:
    fcntl.ioctl(fd, TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def connect(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise InvalidArgument(f"cannot connect to the console socket {path}: {e.strerror or e}") from e
    return s


def send_master(sock: socket.socket, master: int, name: str) -> None:
    sock.sendmsg([name.encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [master]))])


def recv_master(conn: socket.socket) -> tuple[int, str]:
    """The receiving side (a shim, the engine, the tests): the master fd and the pty's name."""
    msg, ancdata, _flags, _addr = conn.recvmsg(4096, socket.CMSG_SPACE(4))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
            for extra in fds[1:]:
                os.close(extra)
            return fds[0], msg.decode(errors="replace")
    raise InvalidArgument("the console socket message carried no file descriptor")


def make_controlling(slave: int) -> None:
    """The slave becomes stdin, stdout, stderr and the controlling terminal (the caller already ran setsid)."""
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    fcntl.ioctl(0, TIOCSCTTY, 0)
    if slave > 2:
        os.close(slave)


def proxy(master: int, pid_alive, stdin: int = 0, stdout: int = 1) -> None:
    """Copy stdin to the master and the master to stdout until the master reports EOF/EIO (the container's side
    closed) — `run` and `exec` in the foreground with a terminal and no console socket."""
    import select
    import termios
    import tty

    saved = None
    if os.isatty(stdin):
        saved = termios.tcgetattr(stdin)
        tty.setraw(stdin)
        try:
            rows, cols = os.get_terminal_size(stdin)
            set_size(master, rows, cols)
        except OSError:
            pass
    try:
        watch = [master, stdin]
        while True:
            ready, _, _ = select.select(watch, [], [], 0.5)
            if not ready and not pid_alive():
                return
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    return
                if not data:
                    return
                os.write(stdout, data)
            if stdin in ready:
                data = os.read(stdin, 65536)
                if not data:
                    watch = [master]
                else:
                    os.write(master, data)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
