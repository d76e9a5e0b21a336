"""barque's embedded DNS server on the real kernel: containers' network namespaces ask 127.0.0.11 and get each
other's addresses, other names come from the host's resolvers, and the server lets namespaces go and exits.

Nothing touches the machine's network: a throwaway namespace plays the host (the server is started from a thread
inside it, so it runs and forwards there), a fake upstream DNS server listens on that namespace's loopback, and
each "container" is a namespace of its own made by `barque.network.netns`.
"""

from __future__ import annotations

import json
import os
import random
import selectors
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from barque.errors import Unavailable
from barque.metadata import Database
from barque.network import dns, netns
from barque.network.dns import client, wire

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creates network namespaces: needs root")

DNS_ADDRESS = "127.0.0.11"
WEB, DB, OTHER, LATE = "a1" * 32, "b2" * 32, "c3" * 32, "d4" * 32


def lo_up(path: Path) -> None:
    subprocess.run(["nsenter", f"--net={path}", "ip", "link", "set", "lo", "up"], check=True, timeout=30)


class FakeUpstream:
    """A DNS server on 127.0.0.1:53 of the host namespace: example.test is 192.0.2.1; big.test answers truncated
    over UDP and in full (20 addresses) over TCP; anything else is NXDOMAIN. It notes what it was asked."""

    BIG = [f"192.0.2.{i}" for i in range(1, 21)]

    def __init__(self, host_ns: Path) -> None:
        def bind():
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            udp.bind(("127.0.0.1", 53))
            tcp.bind(("127.0.0.1", 53))
            tcp.listen(8)
            return udp, tcp

        self.udp, self.tcp = netns.run_in(host_ns, bind)
        self.asked: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _answer(self, data: bytes, proto: str) -> bytes:
        q = wire.parse_query(data)
        self.asked.append((proto, q.name))
        if q.name == "example.test":
            return wire.response(q, answers=[wire.a_record("192.0.2.1", 30)], authoritative=False)
        if q.name == "big.test":
            if proto == "udp":
                return wire.response(q, answers=[wire.a_record(ip, 30) for ip in self.BIG], limit=60)
            return wire.response(q, answers=[wire.a_record(ip, 30) for ip in self.BIG], limit=wire.TCP_MAX)
        return wire.response(q, wire.NXDOMAIN, authoritative=False)

    def _serve(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.udp, selectors.EVENT_READ)
        sel.register(self.tcp, selectors.EVENT_READ)
        deadline = time.monotonic() + 300
        while not self._stop.is_set() and time.monotonic() < deadline:
            for key, _ in sel.select(0.1):
                try:
                    if key.fileobj is self.udp:
                        data, addr = self.udp.recvfrom(65535)
                        self.udp.sendto(self._answer(data, "udp"), addr)
                    else:
                        conn, _ = self.tcp.accept()
                        with conn:
                            conn.settimeout(5)
                            (n,) = struct.unpack("!H", _recv_exactly(conn, 2))
                            reply = self._answer(_recv_exactly(conn, n), "tcp")
                            conn.sendall(struct.pack("!H", len(reply)) + reply)
                except (OSError, wire.Malformed):
                    pass
        sel.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.udp.close()
        self.tcp.close()


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


def ask(ns: Path, name: str = "", qtype: int = wire.A, *, tcp: bool = False, raw: bytes | None = None,
        timeout: float = 6.0) -> bytes:
    """What 127.0.0.11 answers inside the namespace at `ns` (as a container's stub resolver asks it)."""
    data = raw if raw is not None else wire.build_query(name, qtype, qid=random.randrange(65536))

    def body() -> bytes:
        if tcp:
            with socket.create_connection((DNS_ADDRESS, 53), timeout=timeout) as s:
                s.sendall(struct.pack("!H", len(data)) + data)
                (n,) = struct.unpack("!H", _recv_exactly(s, 2))
                return _recv_exactly(s, n)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(data, (DNS_ADDRESS, 53))
            return s.recv(65535)

    return netns.run_in(ns, body)


def addresses(reply: bytes) -> tuple[int, list[str]]:
    _, rcode, answers = wire.read_answers(reply)
    return rcode, sorted(v for _, t, _, v in answers if t == wire.A)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"barque.network.dns" in f.read()
    except OSError:
        return False


class Host:
    """A barque root and run root, a namespace playing the host, containers' namespaces, and the DB rows."""

    def __init__(self, tmp: Path, resolv: str) -> None:
        self.root = tmp / "root"
        self.run_root = tmp / "run"
        self.db = Database(self.root / "barque.db")
        self.host_ns = tmp / "hostns"
        self.namespaces: list[Path] = []
        netns.create(self.host_ns)
        lo_up(self.host_ns)
        self.resolv = tmp / "resolv.conf"
        self.resolv.write_text(resolv)
        self._n = 0
        with self.db.transaction() as conn:
            for nid, name in (("n-front", "front"), ("n-back", "back"), ("n-bridge", "bridge")):
                conn.execute("INSERT INTO networks (id, name, driver, created, record) VALUES (?, ?, ?, ?, ?)",
                             (nid, name, "bridge", "2024-01-01T00:00:00Z", "{}"))

    def container(self, cid: str, name: str, endpoints: list[tuple[str, str, list[str]]]) -> Path:
        """A running container: its rows and its namespace (with lo up) at <run root>/netns/<id>."""
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO containers (id, name, image_id, created, record) VALUES (?, ?, ?, ?, ?)",
                         (cid, name, "sha256:x", 0.0, "{}"))
            for network, ip, aliases in endpoints:
                self._n += 1
                conn.execute("INSERT INTO endpoints (id, network_id, container_id, ip, mac, record) "
                             "VALUES (?, ?, ?, ?, ?, ?)", (f"ep{self._n}", network, cid, ip, "02:42:00:00:00:00",
                                                           json.dumps({"Aliases": aliases})))
        path = self.run_root / "netns" / cid
        netns.create(path)
        self.namespaces.append(path)
        lo_up(path)
        return path

    def attach(self, cid: str) -> None:
        """`dns.attach` as barque calls it, from the host namespace: a server it starts runs there."""
        netns.run_in(self.host_ns, lambda: dns.attach(self.root, self.run_root, cid, self.run_root / "netns" / cid))

    def server_pid(self) -> int:
        st = client.status(self.run_root)
        assert st is not None, "no DNS server answers"
        return st["pid"]

    def close(self) -> None:
        pid = client._server_pid(self.run_root)
        client.stop(self.run_root)
        if pid is not None and alive(pid):
            os.kill(pid, signal.SIGKILL)
        for path in self.namespaces:
            netns.remove(path)
        netns.remove(self.host_ns)
        self.db.close()


@pytest.fixture
def host(tmp_path: Path, monkeypatch):
    made: list = []

    def make(resolv: str = "nameserver 127.0.0.11\nnameserver 127.0.0.1\nsearch corp.test\n", idle: float = 30):
        monkeypatch.setenv("BARQUE_DNS_RESOLV_CONF", str(tmp_path / "resolv.conf"))
        monkeypatch.setenv("BARQUE_DNS_IDLE", str(idle))
        h = Host(tmp_path, resolv)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


@pytest.fixture
def upstreams():
    made: list[FakeUpstream] = []

    def make(host_ns: Path) -> FakeUpstream:
        made.append(FakeUpstream(host_ns))
        return made[-1]

    yield make
    for u in made:
        u.close()


def test_containers_resolve_each_other_and_the_rest_through_the_host(host, upstreams):
    h = host()
    upstream = upstreams(h.host_ns)
    web = h.container(WEB, "web", [("n-front", "172.18.0.2", [])])
    h.container(DB, "db", [("n-front", "172.18.0.3", ["database"]), ("n-back", "172.19.0.3", [])])
    other = h.container(OTHER, "other", [("n-back", "172.19.0.4", [])])
    for cid in (WEB, DB, OTHER):
        h.attach(cid)
    assert sorted(client.status(h.run_root)["containers"]) == sorted([WEB, DB, OTHER])

    assert addresses(ask(web, "db")) == (0, ["172.18.0.3"])
    assert addresses(ask(web, "database", tcp=True)) == (0, ["172.18.0.3"])
    assert addresses(ask(web, DB[:12])) == (0, ["172.18.0.3"])
    assert addresses(ask(web, "db.corp.test")) == (0, ["172.18.0.3"])   # the host's search domain tolerated
    assert addresses(ask(other, "db")) == (0, ["172.19.0.3"])           # the network they share
    assert addresses(ask(web, "db", wire.AAAA)) == (0, [])
    assert wire.read_answers(ask(web, "3.0.18.172.in-addr.arpa", wire.PTR))[2][0][3] == "db.front"

    # not a container web can see: the host's resolver answers
    assert addresses(ask(web, "other")) == (wire.NXDOMAIN, [])
    assert ("udp", "other") in upstream.asked
    assert addresses(ask(web, "example.test")) == (0, ["192.0.2.1"])
    assert addresses(ask(web, "example.test", tcp=True)) == (0, ["192.0.2.1"])
    assert ("tcp", "example.test") in upstream.asked
    # truncated over UDP upstream: the server asks again over TCP and the whole answer fits the client's UDP
    reply = ask(web, "big.test")
    assert not wire.truncated(reply) and addresses(reply) == (0, sorted(FakeUpstream.BIG))
    assert ("tcp", "big.test") in upstream.asked

    # garbage does not take the server down
    pid = h.server_pid()
    for junk in (b"", b"\x00", os.urandom(40), b"\x12\x34\x01\x00\x00\x02" + b"\x00" * 6):
        try:
            ask(web, raw=junk, timeout=0.3)
        except OSError:
            pass
    formerr = ask(web, raw=b"\x12\x34\x01\x00\x00\x02" + b"\x00" * 6)
    assert wire.rcode_of(formerr) == wire.FORMERR and formerr[:2] == b"\x12\x34"
    assert addresses(ask(web, "db")) == (0, ["172.18.0.3"])
    assert h.server_pid() == pid

    log = (h.run_root / "dns.log").read_text()
    assert "serving container " + WEB[:12] in log
    time.sleep(1.5)  # the server's sweep (every second) keeps containers whose namespace is still theirs
    assert sorted(client.status(h.run_root)["containers"]) == sorted([WEB, DB, OTHER])
    assert addresses(ask(web, "db")) == (0, ["172.18.0.3"])


def test_a_restarted_container_is_served_in_its_new_namespace(host):
    h = host()
    web = h.container(WEB, "web", [("n-front", "172.18.0.2", [])])
    h.attach(WEB)
    h.attach(WEB)  # again, the same namespace: nothing changes
    # stopped and started again without a detach in between: a new namespace at the same path
    netns.remove(web)
    netns.create(web)
    lo_up(web)
    h.attach(WEB)
    assert addresses(ask(web, "web")) == (0, ["172.18.0.2"])


def test_without_upstream_servers_other_names_fail_with_servfail(host):
    h = host(resolv="nameserver 127.0.0.11\n")
    web = h.container(WEB, "web", [("n-front", "172.18.0.2", [])])
    h.attach(WEB)
    assert addresses(ask(web, "web")) == (0, ["172.18.0.2"])
    assert wire.rcode_of(ask(web, "example.test")) == wire.SERVFAIL


def test_detach_frees_the_namespace_and_an_idle_server_exits(host):
    h = host(idle=1)
    web = h.container(WEB, "web", [("n-front", "172.18.0.2", [])])
    db = h.container(DB, "db", [("n-front", "172.18.0.3", [])])
    h.attach(WEB)
    h.attach(DB)
    h.attach(DB)  # again: nothing changes
    pid = h.server_pid()

    dns.detach(h.run_root, WEB)
    assert client.status(h.run_root)["containers"] == [DB]

    def port_free():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.11", 53))  # fails while the server's socket holds it

    netns.run_in(web, port_free)
    netns.remove(web)
    assert addresses(ask(db, "web")) == (wire.SERVFAIL, [])   # stopped: not a name any more (no upstream here)

    # a container whose namespace goes without a detach (a killed CLI) is let go by the server itself
    netns.remove(db)
    deadline = time.monotonic() + 10
    while client.status(h.run_root) and client.status(h.run_root)["containers"] and time.monotonic() < deadline:
        time.sleep(0.1)
    # and with nothing to serve the server exits and leaves no files behind
    deadline = time.monotonic() + 15
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid)
    assert not (h.run_root / "dns.sock").exists() and not (h.run_root / "dns.pid").exists()
    dns.detach(h.run_root, DB)  # no server: a quick no-op


def test_a_killed_server_is_replaced_by_the_next_attach_which_serves_everyone_again(host):
    h = host()
    web = h.container(WEB, "web", [("n-front", "172.18.0.2", [])])
    h.attach(WEB)
    first = h.server_pid()
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(first) and time.monotonic() < deadline:
        time.sleep(0.05)
    late = h.container(LATE, "late", [("n-front", "172.18.0.9", [])])
    h.attach(LATE)
    assert h.server_pid() != first
    assert sorted(client.status(h.run_root)["containers"]) == sorted([WEB, LATE])
    assert addresses(ask(web, "late")) == (0, ["172.18.0.9"])
    assert addresses(ask(late, "web")) == (0, ["172.18.0.2"])


def test_concurrent_attaches_share_one_server(host):
    h = host()
    ids = [f"{i:02x}" * 32 for i in range(6)]
    for i, cid in enumerate(ids):
        h.container(cid, f"c{i}", [("n-front", f"172.18.0.{10 + i}", [])])
    errors: list = []

    def go(cid):
        try:
            h.attach(cid)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=go, args=(cid,)) for cid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(client.status(h.run_root)["containers"]) == sorted(ids)
    out = subprocess.run(["pgrep", "-f", f"barque.network.dns.*{h.run_root}"], capture_output=True, text=True)
    assert len(out.stdout.split()) == 1
    assert addresses(ask(h.namespaces[0], "c5")) == (0, ["172.18.0.15"])


def test_attach_to_a_namespace_that_is_not_there_says_why(host):
    h = host()
    with pytest.raises(Unavailable, match="cannot serve container"):
        h.attach("e5" * 32)
