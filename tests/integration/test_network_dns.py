"""barque's embedded DNS server on the real kernel: containers' network namespaces ask 127.0.0.11 and get each
other's addresses, other names come from the host's resolvers or from a container's own (`--dns`, the config
file's `dns`), port 53 stays free inside the container, and the server lets namespaces go and exits.

Nothing touches the machine's network: a throwaway namespace plays the host (the server is started from a thread
inside it, so it runs and forwards there), fake upstream DNS servers listen on that namespace's loopback or inside
the containers' namespaces, and each "container" is a namespace of its own made by `barque.network.netns`.
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
    """A DNS server on `address`:53 (udp and tcp) of the namespace `ns`: example.test is `example` (192.0.2.1);
    big.test answers truncated over UDP and in full (20 addresses) over TCP; anything else is NXDOMAIN. Answers
    wait `delay` seconds. It notes what it was asked."""

    BIG = [f"192.0.2.{i}" for i in range(1, 21)]

    def __init__(self, ns: Path, address: str = "127.0.0.1", example: str = "192.0.2.1", delay: float = 0) -> None:
        def bind():
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            udp.bind((address, 53))
            tcp.bind((address, 53))
            tcp.listen(8)
            return udp, tcp

        self.udp, self.tcp = netns.run_in(ns, bind)
        self.example = example
        self.delay = delay
        self.asked: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _answer(self, data: bytes, proto: str) -> bytes:
        q = wire.parse_query(data)
        self.asked.append((proto, q.name))
        time.sleep(self.delay)
        if q.name == "example.test":
            return wire.response(q, answers=[wire.a_record(self.example, 30)], authoritative=False)
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
        timeout: float = 6.0, server: str = DNS_ADDRESS) -> bytes:
    """What `server`:53 (127.0.0.11) answers inside the namespace at `ns`, asked as glibc's stub resolver asks:
    over a connected socket, which takes only datagrams from the address and port it asked."""
    data = raw if raw is not None else wire.build_query(name, qtype, qid=random.randrange(65536))

    def body() -> bytes:
        if tcp:
            with socket.create_connection((server, 53), timeout=timeout) as s:
                assert s.getpeername() == (server, 53)
                s.sendall(struct.pack("!H", len(data)) + data)
                (n,) = struct.unpack("!H", _recv_exactly(s, 2))
                return _recv_exactly(s, n)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.connect((server, 53))
            s.send(data)
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
        self.records: dict[str, dict] = {}
        self._n = 0
        with self.db.transaction() as conn:
            for nid, name in (("n-front", "front"), ("n-back", "back"), ("n-bridge", "bridge")):
                conn.execute("INSERT INTO networks (id, name, driver, created, record) VALUES (?, ?, ?, ?, ?)",
                             (nid, name, "bridge", "2024-01-01T00:00:00Z", "{}"))

    def container(self, cid: str, name: str, endpoints: list[tuple[str, str, list[str]]],
                  dns: list[str] | None = None) -> Path:
        """A running container (with `--dns` `dns`): its rows and its namespace (with lo up) at
        <run root>/netns/<id>."""
        record = {"Id": cid, "HostConfig": {"Dns": dns or [], "NetworkMode": "front"}}
        self.records[cid] = record
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO containers (id, name, image_id, created, record) VALUES (?, ?, ?, ?, ?)",
                         (cid, name, "sha256:x", 0.0, json.dumps(record)))
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
        """`dns.attach` as barque calls it (sandbox.enter), from the host namespace: a server it starts runs there."""
        host_config = self.records.get(cid, {}).get("HostConfig", {})
        netns.run_in(self.host_ns, lambda: dns.attach(self.root, self.run_root, cid, self.run_root / "netns" / cid,
                                                       dns.upstreams_for(host_config)))

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
        monkeypatch.setenv("BARQUE_CONFIG", str(tmp_path / "daemon.json"))   # none: no engine-wide dns
        h = Host(tmp_path, resolv)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


@pytest.fixture
def upstreams():
    made: list[FakeUpstream] = []

    def make(ns: Path, **kw) -> FakeUpstream:
        made.append(FakeUpstream(ns, **kw))
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


def holds_namespace(pid: int, ns_ino: int) -> bool:
    """Whether process `pid` holds the network namespace with inode `ns_ino` open, or has a thread in it."""
    links = [f"/proc/{pid}/fd/{fd}" for fd in os.listdir(f"/proc/{pid}/fd")]
    links += [f"/proc/{pid}/task/{tid}/ns/net" for tid in os.listdir(f"/proc/{pid}/task")]
    for link in links:
        try:
            if os.readlink(link) == f"net:[{ns_ino}]":
                return True
        except OSError:
            pass
    return False


def test_detach_frees_the_namespace_and_an_idle_server_exits(host, upstreams):
    h = host(idle=1)
    web = h.container(WEB, "web", [("n-front", "172.18.0.2", [])], dns=["127.0.0.1"])
    db = h.container(DB, "db", [("n-front", "172.18.0.3", [])])
    own = upstreams(web)
    h.attach(WEB)
    h.attach(DB)
    h.attach(DB)  # again: nothing changes
    pid = h.server_pid()
    assert addresses(ask(web, "example.test")) == (0, ["192.0.2.1"])   # asked from inside web's namespace
    web_ino = os.stat(web).st_ino
    assert holds_namespace(pid, web_ino)

    dns.detach(h.run_root, WEB)
    assert client.status(h.run_root)["containers"] == [DB]

    def refused():  # 127.0.0.11:53 still goes to the server's port, where nothing listens any more
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((DNS_ADDRESS, 53), timeout=5)

    netns.run_in(web, refused)
    deadline = time.monotonic() + 5
    while holds_namespace(pid, web_ino) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not holds_namespace(pid, web_ino)
    own.close()
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


def nft_tables(ns: Path | None) -> str:
    """`nft list tables` in the namespace at `ns` (None: the test's own)."""
    argv = ["nft", "list", "tables"]
    if ns is not None:
        argv = ["nsenter", f"--net={ns}", *argv]
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout


def in_ns(ns: Path, *argv: str) -> None:
    subprocess.run(["nsenter", f"--net={ns}", *argv], check=True, timeout=30)


def wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)


def test_port_53_stays_free_for_a_dns_server_of_the_containers_own(host, upstreams):
    """A container running dnsmasq or coredns on 0.0.0.0:53 still resolves through 127.0.0.11: the server listens
    at random ports, and a table of barque's own in the container's namespace sends 127.0.0.11:53 there."""
    h = host()
    upstreams(h.host_ns)
    web = h.container(WEB, "web", [("n-front", "172.18.0.2", [])])
    h.container(DB, "db", [("n-front", "172.18.0.3", [])])
    h.attach(WEB)
    h.attach(DB)
    # the container's own DNS server starts after barque's is attached, as a container's process does
    own = upstreams(web, address="0.0.0.0", example="192.0.2.99")

    for tcp in (False, True):
        assert addresses(ask(web, "db", tcp=tcp)) == (0, ["172.18.0.3"])
        assert addresses(ask(web, "example.test", tcp=tcp)) == (0, ["192.0.2.1"])   # the host's resolver's
    assert own.asked == []
    for tcp in (False, True):   # and the container's own server answers at its own addresses
        assert addresses(ask(web, "example.test", tcp=tcp, server="127.0.0.1")) == (0, ["192.0.2.99"])
    assert own.asked == [("udp", "example.test"), ("tcp", "example.test")]

    # the redirection lives in the container's namespace, never in the host's
    assert "table ip barque_dns" in nft_tables(web)
    assert "barque_dns" not in nft_tables(h.host_ns)
    assert "barque_dns" not in nft_tables(None)

    # a server started anew (the old one killed) finds the container again, port 53 taken or not
    first = h.server_pid()
    os.kill(first, signal.SIGKILL)
    wait_gone(first)
    h.attach(DB)
    assert h.server_pid() != first
    for tcp in (False, True):
        assert addresses(ask(web, "db", tcp=tcp)) == (0, ["172.18.0.3"])
        assert addresses(ask(web, "example.test", tcp=tcp)) == (0, ["192.0.2.1"])
    assert nft_tables(web).count("barque_dns") == 1
    assert len(own.asked) == 2


def test_a_slow_answer_that_outlives_its_conntrack_entry_still_comes_from_port_53(host, upstreams):
    """The query's conntrack entry turns the reply's source back into 127.0.0.11:53 — while it lives. An
    unanswered UDP entry lives 30 s (here 1 s, in the container's namespace only): a later answer is a new flow,
    which the table's postrouting chain sends from port 53, or a resolver's connected socket would drop it."""
    h = host()
    web = h.container(WEB, "web", [("n-front", "172.18.0.2", [])], dns=["127.0.0.1"])
    upstreams(web, delay=1.5)   # the container's own resolver, slow
    h.attach(WEB)
    in_ns(web, "sysctl", "-q", "-w", "net.netfilter.nf_conntrack_udp_timeout=1")
    assert addresses(ask(web, "example.test")) == (0, ["192.0.2.1"])


def test_containers_with_resolvers_of_their_own_ask_them_from_their_namespace(host, upstreams, tmp_path):
    """`--dns` (HostConfig.Dns), else the config file's `dns`, replaces the host's resolvers, and is asked from
    inside the container's namespace, as Docker asks it: 127.0.0.1 is the container's loopback, and a server only
    the container's network reaches is reached. A restarted server finds them again in the containers' records."""
    h = host()
    (tmp_path / "daemon.json").write_text(json.dumps({"dns": ["127.0.0.1"]}))
    host_resolver = upstreams(h.host_ns)
    plain = h.container(WEB, "web", [("n-front", "172.18.0.2", [])])                  # no --dns: the config's
    loop = h.container(DB, "db", [("n-front", "172.18.0.3", [])], dns=["127.0.0.1"])
    routed = h.container(OTHER, "other", [("n-front", "172.18.0.4", [])], dns=["192.0.2.53"])
    plain_own = upstreams(plain, example="192.0.2.88")
    loop_own = upstreams(loop, example="192.0.2.77")
    # 192.0.2.53 lies behind a veth of the container's own; the host's namespace has no route there
    far_ns = tmp_path / "farns"
    netns.create(far_ns)
    h.namespaces.append(far_ns)
    in_ns(routed, "ip", "link", "add", "vcon", "type", "veth", "peer", "name", "vfar", "netns", str(far_ns))
    in_ns(routed, "ip", "addr", "add", "192.0.2.2/24", "dev", "vcon")
    in_ns(routed, "ip", "link", "set", "vcon", "up")
    in_ns(far_ns, "ip", "addr", "add", "192.0.2.53/24", "dev", "vfar")
    in_ns(far_ns, "ip", "link", "set", "vfar", "up")
    far = upstreams(far_ns, address="192.0.2.53", example="192.0.2.53")
    for cid in (WEB, DB, OTHER):
        h.attach(cid)

    def check(rounds: int) -> None:
        for tcp in (False, True):
            assert addresses(ask(plain, "example.test", tcp=tcp)) == (0, ["192.0.2.88"])
            assert addresses(ask(loop, "example.test", tcp=tcp)) == (0, ["192.0.2.77"])
            assert addresses(ask(routed, "example.test", tcp=tcp)) == (0, ["192.0.2.53"])
            assert addresses(ask(routed, "web", tcp=tcp)) == (0, ["172.18.0.2"])   # names stay the server's
        assert addresses(ask(routed, "nowhere.test")) == (wire.NXDOMAIN, [])
        for resolver in (plain_own, loop_own):
            assert resolver.asked == [("udp", "example.test"), ("tcp", "example.test")] * rounds
        assert far.asked == [("udp", "example.test"), ("tcp", "example.test"), ("udp", "nowhere.test")] * rounds
        assert host_resolver.asked == []

    check(1)
    expected = {WEB: ["127.0.0.1"], DB: ["127.0.0.1"], OTHER: ["192.0.2.53"]}
    assert client.status(h.run_root)["upstreams"] == expected

    first = h.server_pid()
    os.kill(first, signal.SIGKILL)
    wait_gone(first)
    late = h.container(LATE, "late", [("n-front", "172.18.0.9", [])], dns=["127.0.0.11", "192.0.2.53"])
    h.attach(LATE)   # a new server, which serves the others again from their records and the config file
    assert client.status(h.run_root)["upstreams"] == {**expected, LATE: ["192.0.2.53"]}   # never itself
    check(2)
    assert wire.rcode_of(ask(late, "example.test")) == wire.SERVFAIL   # 192.0.2.53: no route from late's network
    assert addresses(ask(late, "web")) == (0, ["172.18.0.2"])


def test_a_container_with_a_dns_server_of_its_own_and_dns_resolvers_on_the_command_line(lab_barque, netlab,
                                                                                      upstreams):
    """`run --network NET --dns OUTSIDE` with real containers: the container's own server takes 0.0.0.0:53 (httpd
    on tcp, a socket of the test's on udp), names of containers still resolve at 127.0.0.11, and other names come
    from the resolver the container was given, reached from the container's network through masquerade."""
    from tests.netlab import OUTSIDE_ADDR

    b = lab_barque
    outside = upstreams(Path(netlab.outside_path), address=OUTSIDE_ADDR, example="192.0.2.42")
    b("network", "create", "dnsnet")
    b("run", "-d", "--name", "srv", "--network", "dnsnet", "busybox", "sleep", "600")
    cid = b("run", "-d", "--name", "app", "--network", "dnsnet", "--dns", OUTSIDE_ADDR, "busybox",
            "httpd", "-f", "-p", "53", "-h", "/etc").stdout.strip()

    def take_udp_53():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", 53))   # "address in use" when barque's server sits on 127.0.0.11:53
        return s

    udp53 = netns.run_in(Path(b.run_root) / "netns" / cid, take_udp_53)
    try:
        assert "nameserver 127.0.0.11" in b("exec", "app", "cat", "/etc/resolv.conf").stdout
        out = b("exec", "app", "nslookup", "srv").stdout
        srv_ip = json.loads(b("inspect", "srv").stdout)[0]["NetworkSettings"]["Networks"]["dnsnet"]["IPAddress"]
        assert f"Address: {srv_ip}" in out, out
        out = b("exec", "app", "nslookup", "example.test").stdout
        assert "Address: 192.0.2.42" in out, out
        assert ("udp", "example.test") in outside.asked and ("udp", "srv") not in outside.asked
        # the container's own server on port 53 serves too
        assert cid[:12] in b("exec", "app", "wget", "-q", "-O-", "http://127.0.0.1:53/hostname").stdout
    finally:
        udp53.close()
    assert "barque_dns" not in netlab.ruleset()   # the redirection lives in the container's namespace only
