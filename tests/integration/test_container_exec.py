"""`barque exec` through the real CLI on the real kernel: output and exit status, -e/--env-file/-w/-u/--privileged,
Docker's refusals and 126, -d, -i with piped stdin, and -t through a real pty (window size, exit status,
detach keys)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import sys
import termios
import time

import pytest

from tests.conftest import BARQUE, wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def box(bb):
    """A running busybox container named `box` (removed by the `barque` fixture's teardown)."""
    bb("run", "-d", "--name", "box", "-e", "FROM_RUN=1", "-e", "SHARED=run", "busybox", "sleep", "600")
    return bb


def test_output_streams_and_exit_status(box):
    r = box("exec", "box", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert r.returncode == 3
    assert r.stdout == "out\n"
    assert r.stderr == "err\n"
    assert box("exec", "box", "true").returncode == 0


def test_command_arguments_are_not_barque_flags(box):
    r = box("exec", "box", "echo", "-e", "x", "--help")
    assert r.stdout == "x --help\n" or r.stdout == "-e x --help\n"  # busybox echo knows -e; barque must not see it


def test_env_workdir_and_user(box, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("FROM_FILE=f\nSHARED=file\n")
    r = box("exec", "-e", "FOO=bar", "--env-file", str(env_file), "-e", "SHARED=flag", "-w", "/tmp", "-u", "nobody",
            "box", "sh", "-c", 'echo "$FOO $FROM_FILE $SHARED $FROM_RUN"; pwd; id -u; id -g')
    foo, cwd, uid, gid = r.stdout.splitlines()
    assert foo == "bar f flag 1"  # -e wins over --env-file, both over the container's env, which is kept
    assert cwd == "/tmp"
    assert uid == "65534"
    assert gid == "65534"
    r = box("exec", "-u", "1234:5678", "box", "sh", "-c", "id -u; id -g")
    assert r.stdout.split() == ["1234", "5678"]
    r = box("exec", "box", "sh", "-c", "id -u; pwd")  # defaults: the container's user and working directory
    assert r.stdout.split() == ["0", "/"]


def test_unknown_user_and_relative_workdir_are_refused(box):
    r = box("exec", "-u", "nosuchuser", "box", "true", check=False)
    assert r.returncode == 126
    assert "unable to find user nosuchuser" in r.stderr
    r = box("exec", "-w", "relative", "box", "true", check=False)
    assert r.returncode != 0
    assert "needs to be an absolute path" in r.stderr


def test_privileged_grants_every_capability(box):
    def cap_eff(*flags):
        out = box("exec", *flags, "box", "cat", "/proc/self/status").stdout
        return int(next(line.split()[1] for line in out.splitlines() if line.startswith("CapEff:")), 16)

    normal, privileged = cap_eff(), cap_eff("--privileged")
    assert normal & privileged == normal
    assert privileged != normal
    assert privileged & (1 << 21)  # CAP_SYS_ADMIN, which Docker's default set leaves out


def test_not_running_and_paused_containers_are_refused(bb):
    bb("create", "--name", "idle", "busybox", "sleep", "600")
    r = bb("exec", "idle", "true", check=False)
    assert r.returncode == 1
    assert "is not running" in r.stderr
    bb("run", "-d", "--name", "frozen", "busybox", "sleep", "600")
    bb("pause", "frozen")
    r = bb("exec", "frozen", "true", check=False)
    assert r.returncode == 1
    assert "is paused, unpause the container before exec" in r.stderr
    bb("unpause", "frozen")
    assert bb("exec", "frozen", "true").returncode == 0
    bb("stop", "-t", "0", "frozen")
    r = bb("exec", "frozen", "true", check=False)
    assert r.returncode == 1 and "is not running" in r.stderr
    r = bb("exec", "nosuch", "true", check=False)
    assert r.returncode == 1 and "No such container: nosuch" in r.stderr


def test_not_found_and_not_executable_126(box):
    r = box("exec", "box", "nope", check=False)
    assert r.returncode == 126  # dockerd 20.10-24 (docker exec): 126 for a command not found too
    assert 'exec: "nope": executable file not found in $PATH' in r.stderr
    r = box("exec", "box", "/etc/passwd", check=False)
    assert r.returncode == 126
    assert "permission denied" in r.stderr
    r = box("exec", "-w", "/not/there", "box", "pwd", check=False)
    assert r.returncode == 126 and r.stdout == ""
    assert 'chdir to cwd ("/not/there") set in config.json failed: no such file or directory' in r.stderr


def test_detached_exec_keeps_running_and_leaves_no_zombie(box):
    start = time.monotonic()
    r = box("exec", "-d", "box", "sh", "-c", "echo lost; sleep 77")
    assert r.stdout == "" and time.monotonic() - start < 10
    assert "sleep 77" in box("exec", "box", "ps", "-o", "pid,stat,args").stdout
    box("exec", "-d", "box", "true")

    def no_zombie():
        out = box("exec", "box", "ps", "-o", "stat,args").stdout
        return all(not line.split()[0].startswith("Z") for line in out.splitlines()[1:])

    wait_for(no_zombie, timeout=5)


def test_interactive_reads_piped_stdin_and_without_i_stdin_is_empty(box):
    r = box("exec", "-i", "box", "tr", "a-z", "A-Z", input="hello\n")
    assert r.stdout == "HELLO\n"
    r = box("exec", "box", "cat", input="ignored\n")
    assert r.stdout == ""


def test_tty_needs_a_terminal_with_i(box):
    r = box("exec", "-it", "box", "sh", input="echo hi\n", check=False)
    assert r.returncode != 0
    assert "the input device is not a TTY" in r.stderr


class Terminal:
    """`barque exec …` on the slave side of a real pty, driven from its master."""

    def __init__(self, b, *args: str, rows: int = 33, cols: int = 99) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                os.execv(sys.executable, BARQUE + b.args() + list(args))
            finally:
                os._exit(127)
        self.pid, self.fd, self.out, self.status = pid, fd, b"", None
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def read_until(self, text: bytes, timeout: float = 15.0) -> bytes:
        deadline = time.monotonic() + timeout
        while text not in self.out:
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} did not appear; got {self.out!r}")
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    data = os.read(self.fd, 4096)
                except OSError:
                    data = b""
                if not data:
                    raise AssertionError(f"the terminal closed before {text!r}; got {self.out!r}")
                self.out += data
        return self.out

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def wait(self, timeout: float = 15.0) -> int:
        deadline = time.monotonic() + timeout
        while True:
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.1)
                if ready:
                    self.out += os.read(self.fd, 4096)
            except OSError:
                pass
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.status = os.waitstatus_to_exitcode(status)
                return self.status
            if time.monotonic() > deadline:
                raise AssertionError(f"barque exec did not end; output {self.out!r}")

    def close(self) -> None:
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        os.close(self.fd)


def test_tty_session_output_window_size_and_exit_status(box):
    t = Terminal(box, "exec", "-it", "box", "sh")
    try:
        t.read_until(b"# ")
        t.write(b"stty size; tty; echo $TERM; echo h''i; exit 3\r")
        out = t.read_until(b"hi\r\n")
        assert b"33 99" in out  # our window size reached the container's terminal
        assert b"/dev/pts/" in out
        assert b"xterm" in out
        assert t.wait() == 3
    finally:
        t.close()


def test_tty_detach_keys_leave_the_process_running(box):
    t = Terminal(box, "exec", "-it", "box", "sh")
    try:
        t.read_until(b"# ")
        t.write(b"sleep 4242\r")
        time.sleep(0.5)
        t.write(b"\x10\x11")  # ctrl-p ctrl-q
        assert t.wait() == 0
    finally:
        t.close()
    out = box("exec", "box", "ps", "-o", "args").stdout
    assert "sleep 4242" in out
    assert "sh" in out.split()


def test_tty_custom_detach_keys(box):
    t = Terminal(box, "exec", "-it", "--detach-keys", "ctrl-x", "box", "sh")
    try:
        t.read_until(b"# ")
        t.write(b"sleep 4343\r")
        time.sleep(0.5)
        t.write(b"\x18")
        assert t.wait() == 0
    finally:
        t.close()
    assert "sleep 4343" in box("exec", "box", "ps", "-o", "args").stdout
