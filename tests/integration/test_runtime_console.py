"""A terminal through --console-socket, as containerd's shim receives it: a unix stream socket server gets one
message carrying the pty master (SCM_RIGHTS) and the pty's name, and reads the container's output through it."""

from __future__ import annotations

import os
import select
import socket
import threading
import time

import pytest

from barque.runtime.console import recv_master
from tests.integration.runtime_support import bundle, busybox_tree, rt, wait_exit  # noqa: F401 - fixtures

pytestmark = pytest.mark.root


class ConsoleServer:
    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.sock.settimeout(30)
        self.master: int | None = None
        self.name = ""
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            self.master, self.name = recv_master(conn)

    def read_until(self, marker: bytes, timeout: float = 20) -> bytes:
        assert self.master is not None
        data = b""
        deadline = time.monotonic() + timeout
        while marker not in data and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                data += chunk
        return data

    def close(self) -> None:
        self.sock.close()
        if self.master is not None:
            os.close(self.master)


def test_console_socket_receives_the_pty(rt, bundle, tmp_path):
    server = ConsoleServer(str(tmp_path / "console.sock"))
    try:
        bundle.spec["process"]["terminal"] = True
        bundle.spec["process"]["consoleSize"] = {"height": 33, "width": 101}
        bundle.set_args("sh", "-c", "tty; [ -t 0 ] && echo stdin-is-a-tty; stty size; read line; echo got:$line; "
                                    "echo done-marker")
        rt("create", "--bundle", bundle.path, "--console-socket", server.path, bundle.cid)
        server.thread.join(10)
        assert server.master is not None, "the console socket received the master"
        assert server.name.startswith("/dev/pts/")
        pid = rt.state(bundle.cid)["pid"]
        rt("start", bundle.cid)
        os.write(server.master, b"typed-in\n")
        out = server.read_until(b"done-marker").decode(errors="replace")
        assert "/dev/pts/0" in out
        assert "stdin-is-a-tty" in out
        assert "33 101" in out
        assert "got:typed-in" in out
        assert wait_exit(pid) == 0
    finally:
        server.close()


def test_terminal_without_console_socket_is_refused(rt, bundle):
    bundle.spec["process"]["terminal"] = True
    bundle.write()
    res = rt("create", "--bundle", bundle.path, bundle.cid, check=False)
    assert res.returncode != 0 and "console-socket" in res.stderr
    assert not (rt.root / bundle.cid).exists()
