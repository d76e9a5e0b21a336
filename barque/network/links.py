"""The kernel seam of networking: links, addresses, routes and sysctls — through barque.linux.rtnetlink (see there
for why not pyroute2) and /proc/sys/net, which is per network namespace like netlink sockets are.

Unit tests replace `Netlink` here with a fake; integration tests run these against the kernel in throwaway
namespaces.
"""

from __future__ import annotations

import errno
import ipaddress
import os
from pathlib import Path

from barque.linux.rtnetlink import Netlink, NetlinkError

__all__ = ["aliased", "ensure_bridge", "delete_link", "link_names", "plug", "set_sysctl", "enable_forwarding"]


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
    made = False
    with Netlink() as nl:
        link = nl.link(name)
        if link is None:
            try:
                nl.add_bridge(name, mtu)
                made = True
            except NetlinkError as e:
                if e.errno != errno.EEXIST:
                    raise
            link = nl.link(name)
            if made and alias:
                nl.set_link(link.index, alias=alias)
        if address is not None and (str(address.ip), address.network.prefixlen) not in nl.addresses(link.index):
            try:
                nl.add_address(link.index, str(address.ip), address.network.prefixlen)
            except NetlinkError as e:
                if e.errno != errno.EEXIST:
                    raise
        if not link.flags & 1:
            nl.set_link(link.index, up=True)
    if made:
        try:
            set_sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")  # 127.0.0.1:PORT DNAT'd to a container
        except OSError:
            pass
    return made


def delete_link(name: str) -> bool:
    """Delete a link (a veth takes its peer with it): whether it existed."""
    with Netlink() as nl:
        link = nl.link(name)
        if link is None:
            return False
        try:
            nl.delete_link(link.index)
        except NetlinkError as e:
            if e.errno == errno.ENODEV:
                return False
            raise
    return True


def aliased(prefix: str) -> dict[str, str]:
    """Links whose alias starts with `prefix`: name -> alias."""
    with Netlink() as nl:
        return {link.name: link.alias for link in nl.links() if link.alias.startswith(prefix)}


def link_names(kind: str | None = None) -> list[str]:
    """The names of this namespace's links (of one kind: bridge, veth)."""
    with Netlink() as nl:
        return [link.name for link in nl.links() if kind is None or link.kind == kind]


def plug(netns_path: Path, host_name: str, bridge: str, ifname: str, address: ipaddress.IPv4Interface, mac: str,
         gateway: ipaddress.IPv4Address | None, mtu: int = 1500, alias: str = "", link_local=()) -> None:
    """A veth pair: `host_name` on `bridge` here, `ifname` in the namespace at `netns_path` with `address`, `mac`,
    the `link_local` addresses (each a /16 of 169.254.0.0/16, as Docker adds them) and (when `gateway` is given) the
    default route through it. Undone when anything fails."""
    from barque.errors import FailedPrecondition
    from barque.network import netns

    with Netlink() as nl:
        br = nl.link(bridge)
        if br is None:
            raise FailedPrecondition(f"bridge {bridge} does not exist")
        fd = os.open(str(netns_path), os.O_RDONLY | os.O_CLOEXEC)
        try:
            nl.add_veth(host_name, ifname, mtu, peer_netns_fd=fd, peer_mac=mac)
        finally:
            os.close(fd)
        try:
            index = nl.index(host_name)
            if alias:
                nl.set_link(index, alias=alias)
            nl.set_link(index, master=br.index, up=True)
            nl.set_hairpin(index)  # a container reaches its own published ports through the host's address

            def inside() -> None:
                with Netlink() as inner:
                    lo = inner.link("lo")
                    if lo is not None and not lo.flags & 1:
                        inner.set_link(lo.index, up=True)
                    eth = inner.index(ifname)
                    inner.add_address(eth, str(address.ip), address.network.prefixlen)
                    for extra in link_local or ():
                        inner.add_address(eth, str(extra), 16)
                    inner.set_link(eth, up=True)
                    if gateway is not None:
                        try:
                            inner.add_default_route(str(gateway))
                        except NetlinkError as e:
                            if e.errno != errno.EEXIST:
                                raise

            netns.run_in(netns_path, inside)
        except BaseException:
            try:
                nl.delete_link(nl.index(host_name))
            except OSError:
                pass
            raise

