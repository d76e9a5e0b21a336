"""The embedded DNS server's edges that need no root: its public names, the control requests it refuses, what
`detach` does with no server, unix socket paths too long for sockaddr_un, and reading resolv.conf."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

import barque.network.dns as dns
from barque.network.dns import client
from barque.network.dns.server import DnsServer
from barque.network.dns.upstream import read_resolv_conf


def test_the_public_surface():
    assert dns.__all__ == ["attach", "detach"]
    assert dns.attach is client.attach and dns.detach is client.detach


def test_importing_the_client_stays_light():
    import subprocess
    import sys

    code = ("import sys; import barque.network.dns; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('asyncio', 'sqlite3', 'pyroute2')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_detach_without_a_server_is_a_quick_no_op(tmp_path: Path):
    dns.detach(tmp_path / "run", "a" * 64)            # no run root at all
    (tmp_path / "run").mkdir()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:   # a dead server's socket file
        stale.bind(str(tmp_path / "run" / "dns.sock"))
    dns.detach(tmp_path / "run", "a" * 64)
    assert client.status(tmp_path / "run") is None
    assert client.stop(tmp_path / "run") is False


def test_long_socket_paths_go_through_the_directory(tmp_path: Path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = deep / "dns.sock"
    assert len(str(path)) > 108
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        with client.unix_address(path) as address:
            assert address.startswith("/proc/self/fd/")
            server.bind(address)
        server.listen(1)
        assert path.exists()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            with client.unix_address(path) as address:
                c.connect(address)


class _NoDirectory:
    def dns_containers(self):
        return []

    def networks_of(self, cid):
        return []


@pytest.mark.parametrize("req, error", [
    ([], "bad request"),
    ({"op": "attach", "id": "../../etc", "netns": "/x"}, "invalid container id"),
    ({"op": "attach", "id": "", "netns": "/x"}, "invalid container id"),
    ({"op": "attach", "id": "a" * 64, "netns": "relative/path"}, "invalid network namespace path"),
    ({"op": "attach", "id": "a" * 64, "netns": "/x", "root": "/elsewhere"}, "serves root"),
    ({"op": "attach", "id": "a" * 64, "netns": "/nonexistent/netns"}, "cannot listen on 127.0.0.11:53"),
    ({"op": "reboot", "id": "a" * 64}, "unknown operation"),
])
def test_control_requests_that_are_refused(tmp_path: Path, req, error):
    server = DnsServer(tmp_path / "root", tmp_path / "run", _NoDirectory(), None)
    reply = asyncio.run(server.command(req))
    assert reply["ok"] is False and error in reply["error"]
    assert server.attached == {}


def test_status_and_detach_of_an_unknown_container(tmp_path: Path):
    server = DnsServer(tmp_path / "root", tmp_path / "run", _NoDirectory(), None)
    assert asyncio.run(server.command({"op": "detach", "id": "a" * 64})) == {"ok": True, "detached": False}
    st = asyncio.run(server.command({"op": "status"}))
    assert st["ok"] and st["containers"] == [] and st["root"] == str(tmp_path / "root")


def test_resolv_conf(tmp_path: Path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("# made by hand\nnameserver 127.0.0.11\nnameserver 127.0.0.53 # the stub\nnameserver bogus\n"
                    "domain old.example\nsearch Corp.Example. lab.example\nnameserver fe80::1%eth0\n"
                    "nameserver 192.0.2.1\nnameserver 192.0.2.2\nnameserver 192.0.2.3\noptions edns0\n")
    got = read_resolv_conf(str(conf))
    assert got.nameservers == ("127.0.0.53", "fe80::1%eth0", "192.0.2.1")   # glibc uses three; never ourselves
    assert got.search == ("corp.example", "lab.example")
    assert read_resolv_conf(str(tmp_path / "missing")).nameservers == ()
