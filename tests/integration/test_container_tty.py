"""`run -it` driven through a real pseudo-terminal: the shell's prompt and output, the window size, the exit
status, and detaching with ctrl-p ctrl-q then re-attaching."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import struct
import time

import pytest

from tests.conftest import BARQUE

pytestmark = pytest.mark.timeout(120)


class Terminal:
    def __init__(self, argv: list[str], rows: int = 33, cols: int = 101) -> None:
        import fcntl
        import termios

        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # pragma: no cover - the child
            try:
                os.execv(argv[0], argv)
            finally:
                os._exit(127)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.seen = b""

    def read_until(self, needle: bytes, timeout: float = 15.0) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"did not see {needle!r}; got {self.seen[-500:]!r}")
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    data = os.read(self.fd, 4096)
                except OSError:
                    data = b""
                if not data:
                    raise AssertionError(f"terminal closed before {needle!r}; got {self.seen[-500:]!r}")
                self.seen += data
        return self.seen

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def wait(self, timeout: float = 15.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:  # keep draining so the child never blocks on a full terminal
                r, _, _ = select.select([self.fd], [], [], 0.05)
                if r:
                    self.seen += os.read(self.fd, 4096)
            except OSError:
                pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        raise AssertionError("the CLI did not exit")


def cli(b, *args: str) -> list[str]:
    import sys

    return [sys.executable, *BARQUE[1:], *b.args(), *args]


def test_interactive_terminal_session(bb):
    t = Terminal(cli(bb, "run", "-it", "--name", "tty1", "busybox", "sh"))
    t.read_until(b"# ")
    t.send(b"stty size; tty; echo $TERM\r")
    out = t.read_until(b"xterm")
    assert b"33 101" in out and b"/dev/pts/0" in out
    t.send(b"exit 7\r")
    assert t.wait() == 7
    info = json.loads(bb("inspect", "tty1").stdout)[0]
    assert info["Config"]["Tty"] is True and info["State"]["ExitCode"] == 7


def test_detach_and_reattach(bb):
    t = Terminal(cli(bb, "run", "-it", "--name", "tty2", "busybox", "sh"))
    t.read_until(b"# ")
    t.send(b"echo first\r")
    t.read_until(b"first")
    t.send(b"\x10\x11")  # ctrl-p ctrl-q
    assert t.wait() == 0
    assert json.loads(bb("inspect", "tty2").stdout)[0]["State"]["Running"] is True
    t2 = Terminal(cli(bb, "attach", "tty2"))
    t2.send(b"echo second\r")
    t2.read_until(b"second")
    t2.send(b"exit 3\r")
    assert t2.wait() == 3
    assert json.loads(bb("inspect", "tty2").stdout)[0]["State"]["Status"] == "exited"
    assert "first" in bb("logs", "tty2").stdout  # a terminal's output is logged too


def test_ctrl_c_reaches_the_container(bb):
    t = Terminal(cli(bb, "run", "-it", "--rm", "busybox", "sh", "-c", "trap 'echo got-int; exit 5' INT; "
                     "echo ready; while true; do sleep 0.1; done"))
    t.read_until(b"ready")
    t.send(b"\x03")
    t.read_until(b"got-int")
    assert t.wait() == 5


@pytest.mark.parametrize("monitor", ["c", "python"])
def test_attach_to_a_detached_terminal(bb, monitor):
    """`run -dit`, then `attach`: the detached container's own monitor (the C one, or the Python one) serves the
    terminal — input, window size, detach keys, re-attach, exit status."""
    env = {"BARQUE_MONITOR": monitor}
    bb("run", "-d", "-i", "-t", "--name", "dtty", "busybox", "sh", env=env)
    state = json.loads((bb.root / "containers" / json.loads(bb("inspect", "dtty").stdout)[0]["Id"]
                        / "state.json").read_text())
    exe = os.path.basename(os.readlink(f"/proc/{state['_MonitorPid']}/exe"))
    assert (exe == "barque-monitor") == (monitor == "c"), exe
    t = Terminal(cli(bb, "attach", "dtty"), rows=21, cols=77)
    t.send(b"stty size\r")
    t.read_until(b"21 77")
    t.send(b"\x10\x11")
    assert t.wait() == 0
    t2 = Terminal(cli(bb, "attach", "dtty"))
    t2.send(b"echo again; exit 4\r")
    t2.read_until(b"again")
    assert t2.wait() == 4
    info = json.loads(bb("inspect", "dtty").stdout)[0]
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 4
    assert "21 77" in bb("logs", "dtty").stdout
