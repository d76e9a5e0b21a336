"""The kernel seam of networking (barque/network/links.py over barque's rtnetlink client) against the real kernel,
in the suite's own network namespace: bridges, veth pairs into another namespace, addresses, routes, hairpin,
aliases, deletion."""

from __future__ import annotations

import ipaddress
import subprocess
import uuid

import pytest

from barque.network import links, netns

pytestmark = pytest.mark.root


def _ip(*args: str, ns: str | None = None) -> str:
    cmd = (["nsenter", f"--net={ns}", "--"] if ns else []) + ["ip", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def names():
    tag = uuid.uuid4().hex[:6]
    made = {"bridge": f"bqt{tag}", "veth": f"vqt{tag}"}
    yield made
    for name in made.values():
        links.delete_link(name)


def test_bridge_is_made_once_with_its_address_and_alias(names):
    br = names["bridge"]
    addr = ipaddress.IPv4Interface("10.250.0.1/24")
    assert links.ensure_bridge(br, addr, 1400, alias=f"barque test network {br}") is True
    assert links.ensure_bridge(br, addr, 1400, alias="ignored the second time") is False
    out = _ip("-d", "addr", "show", "dev", br)
    assert "10.250.0.1/24" in out and out.count("10.250.0.1/24") == 1 and "mtu 1400" in out and "UP" in out
    assert "bridge" in out
    assert links.aliased("barque test network ") == {br: f"barque test network {br}"}
    assert br in links.link_names("bridge")
    assert links.delete_link(br) is True and links.delete_link(br) is False


def test_plug_a_container_namespace(names, tmp_path):
    br, veth = names["bridge"], names["veth"]
    links.ensure_bridge(br, ipaddress.IPv4Interface("10.251.0.1/24"))
    path = tmp_path / "ns"
    netns.create(path)
    try:
        links.plug(path, veth, br, "eth0", ipaddress.IPv4Interface("10.251.0.2/24"), "02:42:0a:fb:00:02",
                   ipaddress.IPv4Address("10.251.0.1"), 1500, alias="barque test endpoint x")
        inside = _ip("addr", ns=str(path))
        assert "10.251.0.2/24" in inside and "02:42:0a:fb:00:02" in inside
        assert "lo" in inside and "LOOPBACK,UP" in inside
        assert "default via 10.251.0.1 dev eth0" in _ip("route", ns=str(path))
        host_side = _ip("-d", "link", "show", "dev", veth)
        assert f"master {br}" in host_side and "hairpin on" in host_side and "alias barque test endpoint x" in host_side
        ping = subprocess.run(["nsenter", f"--net={path}", "--", "busybox", "ping", "-c", "1", "-W", "2", "10.251.0.1"],
                              capture_output=True)
        assert ping.returncode == 0, ping.stderr
        # a second plug with a taken name fails and leaves the first alone
        with pytest.raises(OSError):
            links.plug(path, veth, br, "eth1", ipaddress.IPv4Interface("10.251.0.3/24"), "02:42:0a:fb:00:03", None)
        assert f"master {br}" in _ip("-d", "link", "show", "dev", veth)
        assert links.delete_link(veth) is True   # the container's end goes with it
        assert veth not in links.link_names() and "eth0" not in _ip("link", ns=str(path))
    finally:
        netns.remove(path)
    assert not path.exists()


def test_plug_into_a_missing_bridge_is_refused(names, tmp_path):
    from barque.errors import FailedPrecondition

    path = tmp_path / "ns"
    netns.create(path)
    try:
        with pytest.raises(FailedPrecondition, match="does not exist"):
            links.plug(path, names["veth"], names["bridge"], "eth0", ipaddress.IPv4Interface("10.252.0.2/24"),
                       "02:42:0a:fc:00:02", None)
        assert names["veth"] not in links.link_names()
    finally:
        netns.remove(path)
