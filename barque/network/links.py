"""The kernel seam of networking: links, addresses, routes and sysctls, through netlink (pyroute2).

pyroute2's package `__init__` imports every part of it (NDB, conntrack, the CLI: ~190 ms); barque needs only the
rtnetlink socket, which costs a fraction of that when the package is set up without running its `__init__`
(`_iproute`). The CLI's start-up is on the path of every `run`, so this matters.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import sys
from pathlib import Path

__all__ = ["aliased", "ports_of", "ensure_bridge", "delete_link", "link_names", "plug", "unplug_inside", "set_sysctl", "enable_forwarding"]

_IPROUTE = None


def _iproute_class():
    global _IPROUTE
    if _IPROUTE is None:
        if "pyroute2" not in sys.modules:
            import importlib.util
            import types

            spec = importlib.util.find_spec("pyroute2")
            if spec is None:
                from barque.errors import FailedPrecondition

                raise FailedPrecondition("pyroute2 is not installed: barque's networking needs it")
            pkg = types.ModuleType("pyroute2")
            pkg.__path__ = list(spec.submodule_search_locations or [])
            pkg.__spec__ = spec
            pkg.__file__ = spec.origin
            sys.modules["pyroute2"] = pkg
        from pyroute2.iproute.linux import IPRoute

        _IPROUTE = IPRoute
    return _IPROUTE


def iproute():
    return _iproute_class()()


def _netlink_error():
    from pyroute2.netlink.exceptions import NetlinkError

    return NetlinkError


def set_sysctl(path: str, value: str) -> None:
    """A sysctl of this process's network namespace (/proc/sys/net is per namespace)."""
    with open(f"/proc/sys/{path}", "w") as f:
        f.write(value)


def enable_forwarding() -> None:
    try:
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            if f.read().strip() == "1":
                return
        set_sysctl("net/ipv4/ip_forward", "1")
    except OSError:
        pass


def ensure_bridge(name: str, address: ipaddress.IPv4Interface | None, mtu: int = 1500, alias: str = "") -> bool:
    """The bridge `name` exists, is up and holds `address`: whether it was made now. `alias` (the link's ifalias)
    lets a repair tell barque's links from others' (Docker's bridges are br-… too)."""
    NetlinkError = _netlink_error()
    with iproute() as ipr:
        made = False
        found = ipr.link_lookup(ifname=name)
        if not found:
            try:
                ipr.link("add", ifname=name, kind="bridge", mtu=mtu)
                made = True
                if alias:
                    ipr.link("set", index=ipr.link_lookup(ifname=name)[0], ifalias=alias)
            except NetlinkError as e:
                if e.code != errno.EEXIST:
                    raise
            found = ipr.link_lookup(ifname=name)
        index = found[0]
        if address is not None:
            have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=index, family=2)}
            if (str(address.ip), address.network.prefixlen) not in have:
                try:
                    ipr.addr("add", index=index, address=str(address.ip), prefixlen=address.network.prefixlen)
                except NetlinkError as e:
                    if e.code != errno.EEXIST:
                        raise
        ipr.link("set", index=index, state="up")
    try:
        set_sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")  # 127.0.0.1:PORT DNAT'd to a container
    except OSError:
        pass
    return made


def delete_link(name: str) -> bool:
    """Delete a link (a veth takes its peer with it): whether it existed."""
    NetlinkError = _netlink_error()
    with iproute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            return False
        try:
            ipr.link("del", index=found[0])
        except NetlinkError as e:
            if e.code == errno.ENODEV:
                return False
            raise
    return True


def aliased(prefix: str) -> dict[str, str]:
    """Links whose alias starts with `prefix`: name -> alias."""
    out = {}
    with iproute() as ipr:
        for link in ipr.get_links():
            alias = link.get_attr("IFLA_IFALIAS") or ""
            if alias.startswith(prefix):
                out[link.get_attr("IFLA_IFNAME")] = alias
    return out


def ports_of(bridges: set[str]) -> list[str]:
    """The names of the links enslaved to any of `bridges`."""
    out = []
    with iproute() as ipr:
        index = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        for link in ipr.get_links():
            master = link.get_attr("IFLA_MASTER")
            if master is not None and index.get(master) in bridges:
                out.append(link.get_attr("IFLA_IFNAME"))
    return out


def link_names(kind: str | None = None) -> list[str]:
    """The names of this namespace's links (of one kind: bridge, veth)."""
    out = []
    with iproute() as ipr:
        for link in ipr.get_links():
            if kind is not None:
                info = link.get_attr("IFLA_LINKINFO")
                if info is None or info.get_attr("IFLA_INFO_KIND") != kind:
                    continue
            out.append(link.get_attr("IFLA_IFNAME"))
    return out


def plug(netns_path: Path, host_name: str, bridge: str, ifname: str, address: ipaddress.IPv4Interface, mac: str,
         gateway: ipaddress.IPv4Address | None, mtu: int = 1500, alias: str = "") -> None:
    """A veth pair: `host_name` on `bridge` here, `ifname` in the namespace at `netns_path` with `address`, `mac`,
    and (when `gateway` is given) the default route through it. Undone when anything fails."""
    from barque.network import netns

    NetlinkError = _netlink_error()
    IPRoute = _iproute_class()
    with iproute() as ipr:
        bridges = ipr.link_lookup(ifname=bridge)
        if not bridges:
            from barque.errors import FailedPrecondition

            raise FailedPrecondition(f"bridge {bridge} does not exist")
        fd = os.open(str(netns_path), os.O_RDONLY | os.O_CLOEXEC)
        try:
            ipr.link("add", ifname=host_name, kind="veth", mtu=mtu,
                     peer={"ifname": ifname, "net_ns_fd": fd, "address": mac, "mtu": mtu})
        finally:
            os.close(fd)
        try:
            index = ipr.link_lookup(ifname=host_name)[0]
            if alias:
                ipr.link("set", index=index, ifalias=alias)
            ipr.link("set", index=index, master=bridges[0], state="up")
            ipr.brport("set", index=index, mode=1)  # hairpin: a container reaches its own published ports

            def inside() -> None:
                with IPRoute() as nipr:
                    lo = nipr.link_lookup(ifname="lo")
                    if lo:
                        nipr.link("set", index=lo[0], state="up")
                    eth = nipr.link_lookup(ifname=ifname)[0]
                    nipr.addr("add", index=eth, address=str(address.ip), prefixlen=address.network.prefixlen)
                    nipr.link("set", index=eth, state="up")
                    if gateway is not None:
                        try:
                            nipr.route("add", gateway=str(gateway))
                        except NetlinkError as e:
                            if e.code != errno.EEXIST:
                                raise

            netns.run_in(netns_path, inside)
        except BaseException:
            try:
                ipr.link("del", ifname=host_name)
            except Exception:  # noqa: BLE001 - the original error matters
                pass
            raise


def unplug_inside(netns_path: Path, ifname: str) -> None:
    """Delete `ifname` in the namespace at `netns_path` (its host end goes with it)."""
    from barque.network import netns

    NetlinkError = _netlink_error()
    IPRoute = _iproute_class()

    def inside() -> None:
        with IPRoute() as nipr:
            found = nipr.link_lookup(ifname=ifname)
            if found:
                try:
                    nipr.link("del", index=found[0])
                except NetlinkError as e:
                    if e.code != errno.ENODEV:
                        raise

    netns.run_in(netns_path, inside)
