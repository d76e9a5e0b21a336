"""The attach client when the monitor ends under it: a monitor that exits between a client's connect and its hello
(a `rm -f` racing a container's own end) is "not running", never a bare broken pipe."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest

from barque.container import attach
from barque.errors import FailedPrecondition


def test_monitor_gone_between_connect_and_hello(tmp_path, monkeypatch):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "attach.sock"))
    listener.listen(1)
    c = SimpleNamespace(run_dir=tmp_path, id="f" * 64)

    def hello_fails(self, data):  # what the kernel says once the monitor closed its end
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(socket.socket, "sendall", hello_fails)
    with pytest.raises(FailedPrecondition, match="it is not running"):
        attach.connect(c, {"wait": True})
    assert attach.wait_exit(c, 1.0) is None  # `stop`/`rm -f` then watch the state instead
    listener.close()


def test_no_socket_is_not_running(tmp_path):
    c = SimpleNamespace(run_dir=tmp_path, id="e" * 64)
    with pytest.raises(FailedPrecondition, match="not running"):
        attach.connect(c, {"wait": True})
