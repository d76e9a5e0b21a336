"""The embedded DNS server's edges that need no root: its public names, the control requests it refuses, what
`detach` does with no server, unix socket paths too long for sockaddr_un, reading resolv.conf, which resolvers a
container gets, the nftables table that sends 127.0.0.11:53 to the server, and forwarding through sockets made
elsewhere."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
from pathlib import Path

import pytest

import barque.network.dns as dns
from barque.network.dns import client, nat, wire
from barque.network.dns.server import DnsServer
from barque.network.dns.upstream import Forwarder, own_servers, read_resolv_conf


def test_the_public_surface():
    assert dns.__all__ == ["attach", "detach", "upstreams_for"]
    assert dns.attach is client.attach and dns.detach is client.detach and dns.upstreams_for is client.upstreams_for


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
    ({"op": "attach", "id": "a" * 64, "netns": "/x", "upstreams": "192.0.2.53"}, "invalid upstream servers"),
    ({"op": "attach", "id": "a" * 64, "netns": "/x", "upstreams": [53]}, "invalid upstream servers"),
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


def test_which_resolvers_a_container_gets(tmp_path: Path, monkeypatch):
    """Docker's order: the container's --dns, else the config file's dns, else the host's (None)."""
    config = tmp_path / "daemon.json"
    monkeypatch.setenv("BARQUE_CONFIG", str(config))
    assert dns.upstreams_for({"Dns": ["192.0.2.53"]}) == ["192.0.2.53"]
    assert dns.upstreams_for({"Dns": []}) is None and dns.upstreams_for({}) is None   # no config file
    config.write_text(json.dumps({"dns": ["198.51.100.1", "198.51.100.2"]}))
    assert dns.upstreams_for({"Dns": None}) == ["198.51.100.1", "198.51.100.2"]
    assert dns.upstreams_for({"Dns": ["192.0.2.53"]}) == ["192.0.2.53"]
    config.write_text("{broken")   # reported by the network commands; here the host's resolvers
    assert dns.upstreams_for({}) is None
    assert client.pick_upstreams(None, ("198.51.100.1",)) == ["198.51.100.1"]


def test_a_containers_own_servers_are_checked_by_the_server():
    assert own_servers(["192.0.2.53", "not-an-ip", "127.0.0.11", "192.0.2.53", "2001:db8::1", "10.0.0.1",
                        "10.0.0.2"]) == ("192.0.2.53", "2001:db8::1", "10.0.0.1")   # never itself; three at most
    assert own_servers([]) == ()
    for bad in ("192.0.2.53", None, [1], {"a": 1}):
        with pytest.raises(ValueError):
            own_servers(bad)


def test_the_table_that_sends_port_53_to_the_server():
    rules = nat.ruleset(40001, 40002)["nftables"]
    table = {"family": "ip", "name": "barque_dns"}
    assert rules[:3] == [{"add": {"table": table}}, {"delete": {"table": table}}, {"add": {"table": table}}]
    chains = {c["add"]["chain"]["name"]: c["add"]["chain"] for c in rules if "chain" in c.get("add", {})}
    assert (chains["output"]["type"], chains["output"]["hook"]) == ("nat", "output")
    assert (chains["postrouting"]["type"], chains["postrouting"]["hook"]) == ("nat", "postrouting")

    def said(rule):
        out = []
        for e in rule["expr"]:
            if "match" in e:
                left = e["match"]["left"]["payload"]
                out.append(f"{left['protocol']} {left['field']} {e['match']['right']}")
            elif "dnat" in e:
                out.append(f"dnat to {e['dnat']['addr']}:{e['dnat']['port']}")
            else:
                out.append(f"snat to :{e['snat']['port']}")
        return rule["chain"] + ": " + " ".join(out)

    assert [said(r["add"]["rule"]) for r in rules if "rule" in r.get("add", {})] == [
        "output: ip daddr 127.0.0.11 udp dport 53 dnat to 127.0.0.11:40001",
        "postrouting: ip saddr 127.0.0.11 udp sport 40001 snat to :53",
        "output: ip daddr 127.0.0.11 tcp dport 53 dnat to 127.0.0.11:40002",
        "postrouting: ip saddr 127.0.0.11 tcp sport 40002 snat to :53",
    ]


class _LoopbackResolver:
    """A DNS server on 127.0.0.1 at a random port (udp and tcp, one port): every name is 192.0.2.7."""

    def __init__(self) -> None:
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.port = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.udp.settimeout(0.1)
        self.tcp.settimeout(0.1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def answer(self, data: bytes) -> bytes:
        return wire.response(wire.parse_query(data), answers=[wire.a_record("192.0.2.7", 5)], authoritative=False)

    def serve(self) -> None:
        for _ in range(600):   # a minute at most
            if self.stop.is_set():
                return
            try:
                data, addr = self.udp.recvfrom(65535)
                self.udp.sendto(self.answer(data), addr)
            except socket.timeout:
                pass
            try:
                conn, _ = self.tcp.accept()
            except socket.timeout:
                continue
            with conn:
                conn.settimeout(2)
                (n,) = struct.unpack("!H", conn.recv(2))
                reply = self.answer(conn.recv(n))
                conn.sendall(struct.pack("!H", len(reply)) + reply)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.udp.close()
        self.tcp.close()


def test_forwarding_through_sockets_made_elsewhere():
    """A container's own resolvers are asked over sockets the server has made in the container's namespace: every
    socket the forwarder uses, over UDP and TCP, comes from the factory it was given."""
    resolver = _LoopbackResolver()
    made: list[int] = []

    async def sockets(family: int, kind: int) -> socket.socket:
        made.append(kind)
        return socket.socket(family, kind | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)

    async def go():
        forwarder = Forwarder(("127.0.0.1",), port=resolver.port, sockets=sockets)
        out = []
        for tcp in (False, True):
            q = wire.parse_query(wire.build_query("example.test", qid=7 + tcp))
            out.append(wire.read_answers(await forwarder.forward(q, tcp=tcp)))
        return out

    try:
        answers = asyncio.run(go())
    finally:
        resolver.close()
    assert [[a[3] for a in got[2]] for got in answers] == [["192.0.2.7"], ["192.0.2.7"]]
    assert made == [socket.SOCK_DGRAM, socket.SOCK_STREAM]
