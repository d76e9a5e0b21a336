"""Unit tests of networking's pure parts: network records and subnets, IPAM, the nftables ruleset, the config
file, and the rtnetlink encoding (a fake socket at the seam)."""

from __future__ import annotations

import errno
import ipaddress
import json
import socket
import struct
import threading

import pytest

from barque.errors import Conflict, InvalidArgument, NotFound
from barque.linux import rtnetlink as rt
from barque.metadata import Database
from barque.network import config as netconfig
from barque.network import ipam
from barque.network.nft import LinkRule, Mapping, ruleset
from barque.network.store import NetworkStore


@pytest.fixture
def store(tmp_path):
    db = Database(tmp_path / "barque.db")
    yield NetworkStore(db, netconfig.NetworkConfig())
    db.close()


# ---- networks ---------------------------------------------------------------------------------------------------------

def test_predefined_networks_exist_once(store):
    names = [n.name for n in store.list()]
    assert sorted(names) == ["bridge", "host", "none"]
    bridge = store.get("bridge")
    assert bridge.bridge == "barque0" and str(bridge.subnet) == "172.17.0.0/16" and str(bridge.gateway) == "172.17.0.1"
    assert bridge.view()["Options"]["com.docker.network.bridge.default_bridge"] == "true"
    store.ensure_defaults()
    assert len(store.list()) == 3
    with pytest.raises(Conflict, match="pre-defined"):
        store.remove(store.get("host"))


def test_user_networks_get_the_next_free_pool_and_refuse_overlaps(store):
    a = store.create("a")
    b = store.create("b")
    assert (str(a.subnet), str(b.subnet)) == ("172.18.0.0/16", "172.19.0.0/16")
    assert a.bridge == "br-" + a.id[:12] and str(a.gateway) == "172.18.0.1"
    c = store.create("c", subnet="10.5.0.0/24", gateway="10.5.0.254", ip_range="10.5.0.128/25")
    assert c.user_subnet and str(c.ip_range) == "10.5.0.128/25" and str(c.gateway) == "10.5.0.254"
    with pytest.raises(Conflict, match="Pool overlaps"):
        store.create("d", subnet="10.5.0.0/16")
    with pytest.raises(Conflict, match="already exists"):
        store.create("a")
    spaced = store.create("test 01")  # Docker takes any name: the bridge is named after the ID
    assert spaced.bridge == "br-" + spaced.id[:12] and store.get("test 01").id == spaced.id
    with pytest.raises(InvalidArgument, match="name is empty"):
        store.create("  ")
    with pytest.raises(InvalidArgument, match="no matching subnet for gateway"):
        store.create("e", subnet="10.6.0.0/24", gateway="10.7.0.1")
    with pytest.raises(NotFound, match='plugin "overlay" not found'):
        store.create("f", driver="overlay")
    assert store.get(a.id[:6]).name == "a"
    with pytest.raises(NotFound, match="network nope not found"):
        store.get("nope")


def test_a_network_with_endpoints_cannot_be_removed(store):
    net = store.create("busy")
    with store.db.transaction() as conn:
        ipam.attach(conn, net, "c" * 64)
    with pytest.raises(Conflict, match="active endpoints"):
        store.remove(net)
    with store.db.transaction() as conn:
        ipam.detach(conn, net.id, "c" * 64)
    store.remove(net)
    with pytest.raises(NotFound):
        store.get("busy")


# ---- IPAM -------------------------------------------------------------------------------------------------------------

def test_addresses_lowest_first_skipping_gateway_and_released(store):
    net = store.create("n", subnet="10.9.0.0/29")   # .1 gateway, .2-.6 for containers
    with store.db.transaction() as conn:
        got = [ipam.attach(conn, net, f"{i:064x}")["ip"] for i in range(5)]
    assert got == [f"10.9.0.{i}" for i in range(2, 7)]
    with store.db.transaction() as conn, pytest.raises(Conflict, match="no available IPv4 addresses"):
        ipam.attach(conn, net, "f" * 64)
    with store.db.transaction() as conn:
        ipam.detach(conn, net.id, f"{1:064x}")
        assert ipam.attach(conn, net, "e" * 64)["ip"] == "10.9.0.3"
    assert ipam.mac_for(ipaddress.IPv4Address("172.17.0.2")) == "02:42:ac:11:00:02"


def test_static_addresses(store):
    auto = store.create("auto")
    fixed = store.create("fixed", subnet="10.8.0.0/24")
    with store.db.transaction() as conn:
        with pytest.raises(InvalidArgument, match="user configured subnets"):
            ipam.attach(conn, auto, "a" * 64, ip="172.18.0.9")
        assert ipam.attach(conn, fixed, "a" * 64, ip="10.8.0.50")["ip"] == "10.8.0.50"
        with pytest.raises(Conflict, match="Address already in use"):
            ipam.attach(conn, fixed, "b" * 64, ip="10.8.0.50")
        with pytest.raises(Conflict, match="Address already in use"):
            ipam.attach(conn, fixed, "b" * 64, ip="10.8.0.1")   # the gateway
        with pytest.raises(InvalidArgument, match="does not belong"):
            ipam.attach(conn, fixed, "b" * 64, ip="10.9.0.5")
        with pytest.raises(InvalidArgument, match="invalid IPv4 address"):
            ipam.attach(conn, fixed, "b" * 64, ip="10.8.0.500")


def test_concurrent_allocations_never_share_an_address(tmp_path):
    path = tmp_path / "barque.db"
    first = NetworkStore(Database(path), netconfig.NetworkConfig())
    net = first.create("race", subnet="10.10.0.0/24")
    got: list[str] = []
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        db = Database(path)   # each thread its own connection, as separate barque processes would have
        try:
            for i in range(10):
                with db.transaction() as conn:
                    got.append(ipam.attach(conn, net, f"{n:032x}{i:032x}")["ip"])
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        finally:
            db.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(got) == 40 and len(set(got)) == 40


# ---- the ruleset ------------------------------------------------------------------------------------------------------

def _rules(rs: dict, family: str, chain: str) -> list[list]:
    return [c["add"]["rule"]["expr"] for c in rs["nftables"]
            if "rule" in c.get("add", {}) and c["add"]["rule"]["family"] == family
            and c["add"]["rule"]["chain"] == chain]


def test_ruleset_replaces_barques_tables_atomically_and_publishes_ports(store):
    bridge = store.get("bridge")
    rs = ruleset([bridge], [Mapping("tcp", "0.0.0.0", 8080, "172.17.0.2", 80),
                            Mapping("udp", "127.0.0.1", 5353, "172.17.0.3", 53)], [])
    head = rs["nftables"][:3]
    assert [list(c)[0] for c in head] == ["add", "delete", "add"]  # create-if-missing, then flush by delete
    ports = _rules(rs, "ip", "ports")
    assert ports[0][-1] == {"dnat": {"addr": "172.17.0.2", "port": 80}}
    assert not any("daddr" in json.dumps(e) for e in ports[0][:-1])    # every address of the host
    assert {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "127.0.0.1"}} \
        in ports[1]
    masq = [json.dumps(r) for r in _rules(rs, "ip", "postrouting")]
    assert any('"172.17.0.0"' in r and '"!="' in r and "barque0" in r for r in masq)
    assert not _rules(rs, "bridge", "forward")   # icc on: nothing filtered between containers


def test_ruleset_internal_isolated_and_icc_off(store):
    inner = store.create("inner", internal=True)
    quiet = store.create("quiet", options={"com.docker.network.bridge.enable_icc": "false"})
    rs = ruleset([store.get("bridge"), inner, quiet], [],
                 [LinkRule(quiet.bridge, "172.19.0.2", "172.19.0.3", "tcp", 80)])
    masq = json.dumps(_rules(rs, "ip", "postrouting"))
    assert str(inner.subnet.network_address) + '", "len": 16}}}, {"match": {"op": "!="' not in masq
    forward = [json.dumps(r) for r in _rules(rs, "ip", "forward")]
    assert any(inner.bridge in r and '"!="' in r and "drop" in r for r in forward)
    assert any("barque0" in r and quiet.bridge in r for r in forward)   # no traffic between networks
    icc = _rules(rs, "bridge", "forward")
    assert any("accept" in json.dumps(r) and '"dport"' in json.dumps(r) for r in icc)
    assert any("accept" in json.dumps(r) and '"sport"' in json.dumps(r) for r in icc)
    assert "drop" in json.dumps(icc[-1])


# ---- the config file --------------------------------------------------------------------------------------------------

def test_config_file(tmp_path):
    path = tmp_path / "daemon.json"
    assert netconfig.load(str(path)) == netconfig.NetworkConfig()
    path.write_text(json.dumps({"bip": "10.200.0.1/24", "fixed-cidr": "10.200.0.128/25", "icc": False, "mtu": 1400}))
    cfg = netconfig.load(str(path))
    assert str(cfg.bip) == "10.200.0.1/24" and str(cfg.fixed_cidr) == "10.200.0.128/25" and not cfg.icc
    for bad in ({"bip": "10.0.0.0/24"}, {"bip": "10.0.0.1/24", "fixed-cidr": "10.1.0.0/24"}, {"icc": "no"},
                {"mtu": 10}, {"default-address-pools": [{"base": "10.0.0.0/16", "size": 8}]}):
        path.write_text(json.dumps(bad))
        with pytest.raises(InvalidArgument, match=str(path)):
            netconfig.load(str(path))
    path.write_text("{not json")
    with pytest.raises(InvalidArgument):
        netconfig.load(str(path))


def test_default_bridge_from_config(tmp_path):
    db = Database(tmp_path / "barque.db")
    try:
        cfg = netconfig.NetworkConfig(bip=ipaddress.IPv4Interface("10.201.0.1/24"),
                                      fixed_cidr=ipaddress.IPv4Network("10.201.0.64/26"), icc=False)
        s = NetworkStore(db, cfg)
        b = s.get("bridge")
        assert str(b.subnet) == "10.201.0.0/24" and str(b.ip_range) == "10.201.0.64/26" and not b.icc
        with db.transaction() as conn:
            assert ipam.attach(conn, b, "a" * 64)["ip"] == "10.201.0.65"
    finally:
        db.close()


# ---- rtnetlink encoding (a fake socket) -------------------------------------------------------------------------------

def test_attr_encoding_and_parsing():
    raw = rt.attr(rt.IFLA_IFNAME, "eth0")
    assert raw == struct.pack("=HH", 9, rt.IFLA_IFNAME) + b"eth0\0" + b"\0\0\0"
    nested = rt.attr(rt.IFLA_LINKINFO, [rt.attr(rt.IFLA_INFO_KIND, "veth")])
    length, kind = struct.unpack_from("=HH", nested)
    assert kind == rt.IFLA_LINKINFO | rt.NLA_F_NESTED and length == 4 + 12
    parsed = rt.parse_attrs(nested)
    assert rt.parse_attrs(parsed[rt.IFLA_LINKINFO])[rt.IFLA_INFO_KIND] == b"veth\0"
    assert rt.attr(rt.IFLA_BRPORT_MODE, 1, u8=True)[4:5] == b"\x01"


class FakeSocket:
    """Answers each request with what `reply(type, flags, seq, body)` returns (a list of raw messages)."""

    def __init__(self, reply):
        self.reply = reply
        self.sent: list[bytes] = []
        self.pending: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.sent.append(data)
        length, kind, flags, seq, _pid = struct.unpack_from("=IHHII", data)
        self.pending.append(b"".join(self.reply(kind, flags, seq, data[16:length])))

    def recv(self, _n: int) -> bytes:
        return self.pending.pop(0)

    def close(self) -> None:
        pass


def _msg(kind: int, seq: int, body: bytes) -> bytes:
    raw = struct.pack("=IHHII", 16 + len(body), kind, 0, seq, 0) + body
    return raw + b"\0" * (-len(raw) % 4)


def _nl(reply) -> rt.Netlink:
    nl = rt.Netlink.__new__(rt.Netlink)
    nl.sock = FakeSocket(reply)
    nl.seq = 0
    return nl


def test_requests_ack_errors_and_dumps():
    def reply(kind, flags, seq, body):
        if kind == rt.RTM_GETLINK and flags & rt.NLM_F_DUMP == rt.NLM_F_DUMP:
            links = [rt._IFINFO.pack(0, 0, i, 1, 0) + rt.attr(rt.IFLA_IFNAME, name) for i, name in
                     ((1, "lo"), (7, "barque0"))]
            return [_msg(rt.RTM_NEWLINK, seq, b) for b in links] + [_msg(rt.NLMSG_DONE, seq, b"\0" * 4)]
        if kind == rt.RTM_GETLINK:
            return [_msg(rt.NLMSG_ERROR, seq, struct.pack("=i", -errno.ENODEV) + b"\0" * 16)]
        return [_msg(rt.NLMSG_ERROR, seq, struct.pack("=i", 0) + b"\0" * 16)]

    nl = _nl(reply)
    assert [(link.index, link.name) for link in nl.links()] == [(1, "lo"), (7, "barque0")]
    assert nl.link("nosuch") is None
    nl.add_bridge("br-x", 1500)
    sent = nl.sock.sent[-1]
    assert struct.unpack_from("=IHHII", sent)[1] == rt.RTM_NEWLINK
    assert b"bridge\0" in sent and b"br-x\0" in sent
    nl.add_address(7, "172.17.0.1", 16)
    assert socket.inet_aton("172.17.0.1") in nl.sock.sent[-1]


def test_an_error_reply_raises_with_its_errno():
    nl = _nl(lambda kind, flags, seq, body: [_msg(rt.NLMSG_ERROR, seq, struct.pack("=i", -errno.EEXIST) +
                                                  b"\0" * 16)])
    with pytest.raises(OSError) as e:
        nl.add_bridge("barque0", 1500)
    assert e.value.errno == errno.EEXIST


def test_auxiliary_addresses_are_checked_and_never_handed_out(store):
    net = store.create("aux", subnet="10.9.0.0/29", aux_addresses={"r": "10.9.0.2", "s": "10.9.0.4"})
    assert net.record["IPAM"]["Config"][0]["AuxiliaryAddresses"] == {"r": "10.9.0.2", "s": "10.9.0.4"}
    with store.db.transaction() as conn:
        got = [ipam.attach(conn, net, c * 64)["ip"] for c in "abc"]
        assert got == ["10.9.0.3", "10.9.0.5", "10.9.0.6"]
        with pytest.raises(Conflict, match="Address already in use"):
            ipam.attach(conn, net, "d" * 64, ip="10.9.0.4")
    for aux, why in (({"a": "10.10.1.1"}, "does not belong to the subnet"), ({"a": "x"}, "invalid address"),
                     ({"a": "10.10.0.1"}, "the gateway has it"),
                     ({"a": "10.10.0.7", "b": "10.10.0.7"}, r"\(b:10.10.0.7\): Address already in use")):
        with pytest.raises(InvalidArgument, match=why):
            store.create("bad", subnet="10.10.0.0/24", aux_addresses=aux)
    with pytest.raises(InvalidArgument, match="need a subnet"):
        store.create("bad", aux_addresses={"a": "172.30.0.5"})


def test_an_endpoint_keeps_its_mac_link_local_ips_and_driver_opts(store):
    net = store.create("ep", subnet="10.11.0.0/24")
    with store.db.transaction() as conn:
        ep = ipam.attach(conn, net, "a" * 64, mac="02-42-0A-0B-00-09", link_local=["169.254.1.2"],
                         driver_opts={"k": "v"})
        plain = ipam.attach(conn, net, "b" * 64)
        # dockerd never checks that a "link-local" address is one: any address but the unspecified one is taken
        anywhere = ipam.attach(conn, net, "d" * 64, link_local=["10.0.0.1"])
        for kw, why in (({"mac": "02:42:0a"}, "invalid MAC address"), ({"mac": "01:00:5e:00:00:01"}, "multicast"),
                        ({"link_local": ["0.0.0.0"]}, "invalid link-local IP address: 0.0.0.0"),
                        ({"link_local": ["nope"]}, "invalid link-local IP address: nope"),
                        ({"link_local": ["fe80::1"]}, "IPv6")):
            with pytest.raises(InvalidArgument, match=why):
                ipam.attach(conn, net, "c" * 64, **kw)
    assert ep["mac"] == "02:42:0a:0b:00:09"
    assert ep["record"]["MacAddress"] == "02:42:0a:0b:00:09" and ep["record"]["DriverOpts"] == {"k": "v"}
    assert ep["record"]["IPAMConfig"] == {"LinkLocalIPs": ["169.254.1.2"]}
    assert anywhere["record"]["IPAMConfig"] == {"LinkLocalIPs": ["10.0.0.1"]}
    assert plain["mac"] == ipam.mac_for(ipaddress.IPv4Address(plain["ip"])) and plain["record"]["IPAMConfig"] is None
    assert "MacAddress" not in plain["record"] and "DriverOpts" not in plain["record"]
