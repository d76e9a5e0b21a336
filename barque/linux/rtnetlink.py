"""A small rtnetlink client: just the link, address and route requests barque's networking makes.

Why not pyroute2 (the library this field uses): importing it costs ~125 ms — its package `__init__` pulls in
asyncio, multiprocessing, unittest.mock, and runs `file` and `uname -p` through `platform` — and every `run` and
every container exit would pay that twice. These few requests are a page of `struct` packing (rtnetlink(7),
<linux/if_link.h>, <linux/veth.h>, <linux/if_bridge.h>).

Errors come back as OSError with the kernel's errno, like any system call.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from dataclasses import dataclass, field

__all__ = ["Netlink", "Link", "NetlinkError"]

NETLINK_ROUTE = 0
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE, NLM_F_DUMP = 0x1, 0x4, 0x200, 0x400, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_GETADDR, RTM_NEWROUTE = 20, 22, 24
AF_UNSPEC, AF_INET, AF_BRIDGE = 0, 2, 7
IFF_UP = 0x1
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_PROTINFO = 1, 3, 4, 10, 12
IFLA_LINKINFO, IFLA_IFALIAS, IFLA_NET_NS_FD = 18, 20, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFLA_BRPORT_MODE = 4   # hairpin
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_GATEWAY = 5
RT_TABLE_MAIN, RTPROT_BOOT, RTN_UNICAST = 254, 3, 1
NLA_F_NESTED = 0x8000

_HDR = struct.Struct("=IHHII")        # nlmsghdr: len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")    # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")     # ifaddrmsg: family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg
_ATTR = struct.Struct("=HH")


class NetlinkError(OSError):
    pass


def _align(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, value: bytes | str | int | list, *, u8: bool = False) -> bytes:
    """One rtattr: bytes as they are, str NUL-terminated, int as u32 (u8 with `u8`), a list of attrs nested."""
    if isinstance(value, str):
        payload = value.encode() + b"\0"
    elif isinstance(value, int):
        payload = struct.pack("=B", value) if u8 else struct.pack("=I", value)
    elif isinstance(value, list):
        payload = b"".join(value)
        kind |= NLA_F_NESTED
    else:
        payload = value
    raw = _ATTR.pack(_ATTR.size + len(payload), kind) + payload
    return raw + b"\0" * (_align(len(raw)) - len(raw))


def parse_attrs(data: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    i = 0
    while i + _ATTR.size <= len(data):
        length, kind = _ATTR.unpack_from(data, i)
        if length < _ATTR.size:
            break
        out[kind & ~NLA_F_NESTED] = data[i + _ATTR.size:i + length]
        i += _align(length)
    return out


def _mac(text: str) -> bytes:
    return bytes(int(x, 16) for x in text.split(":"))


@dataclass
class Link:
    index: int
    name: str
    kind: str = ""
    master: int | None = None
    alias: str = ""
    flags: int = 0
    attrs: dict = field(default_factory=dict, repr=False)


class Netlink:
    """An rtnetlink socket of the calling thread's network namespace (a socket stays in the namespace it was
    made in, whichever namespace the thread moves to afterwards)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Netlink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- the exchange -------------------------------------------------------------------------------------------

    def request(self, kind: int, flags: int, body: bytes) -> list[tuple[int, bytes]]:
        """Send one message; the replies (type, payload) up to the ACK or the end of a dump."""
        self.seq += 1
        seq = self.seq
        self.sock.sendall(_HDR.pack(_HDR.size + len(body), kind, flags | NLM_F_REQUEST, seq, 0) + body)
        out: list[tuple[int, bytes]] = []
        while True:
            data = self.sock.recv(1 << 20)
            i = 0
            while i + _HDR.size <= len(data):
                length, mtype, _flags, mseq, _pid = _HDR.unpack_from(data, i)
                payload = data[i + _HDR.size:i + length]
                i += _align(length)
                if mseq != seq:
                    continue
                if mtype == NLMSG_DONE:
                    return out
                if mtype == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise NetlinkError(code, os.strerror(code))
                    return out
                out.append((mtype, payload))
                if not flags & NLM_F_DUMP and not flags & NLM_F_ACK:
                    return out

    def _link_request(self, kind: int, flags: int, index: int = 0, attrs: list[bytes] = (), *, up: bool | None = None,
                      family: int = AF_UNSPEC) -> list:
        ifflags = IFF_UP if up else 0
        change = IFF_UP if up is not None else 0
        return self.request(kind, flags, _IFINFO.pack(family, 0, index, ifflags, change) + b"".join(attrs))

    # ---- links --------------------------------------------------------------------------------------------------

    @staticmethod
    def _parse_link(payload: bytes) -> Link:
        _family, _type, index, flags, _change = _IFINFO.unpack_from(payload)
        attrs = parse_attrs(payload[_IFINFO.size:])
        kind = ""
        if IFLA_LINKINFO in attrs:
            info = parse_attrs(attrs[IFLA_LINKINFO])
            kind = info.get(IFLA_INFO_KIND, b"").rstrip(b"\0").decode()
        master = struct.unpack("=I", attrs[IFLA_MASTER])[0] if IFLA_MASTER in attrs else None
        return Link(index, attrs.get(IFLA_IFNAME, b"").rstrip(b"\0").decode(), kind, master,
                    attrs.get(IFLA_IFALIAS, b"").rstrip(b"\0").decode(), flags, attrs)

    def links(self) -> list[Link]:
        return [self._parse_link(p) for t, p in self._link_request(RTM_GETLINK, NLM_F_DUMP) if t == RTM_NEWLINK]

    def link(self, name: str) -> Link | None:
        try:
            replies = self._link_request(RTM_GETLINK, 0, 0, [attr(IFLA_IFNAME, name)])
        except NetlinkError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        return self._parse_link(replies[0][1]) if replies else None

    def index(self, name: str) -> int:
        link = self.link(name)
        if link is None:
            raise NetlinkError(errno.ENODEV, f"no link named {name}")
        return link.index

    def add_bridge(self, name: str, mtu: int) -> None:
        info = attr(IFLA_LINKINFO, [attr(IFLA_INFO_KIND, "bridge")])
        self._link_request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, 0,
                           [attr(IFLA_IFNAME, name), attr(IFLA_MTU, mtu), info])

    def add_veth(self, name: str, peer: str, mtu: int, peer_netns_fd: int | None = None,
                 peer_mac: str | None = None) -> None:
        peer_attrs = [attr(IFLA_IFNAME, peer), attr(IFLA_MTU, mtu)]
        if peer_netns_fd is not None:
            peer_attrs.append(attr(IFLA_NET_NS_FD, peer_netns_fd))
        if peer_mac:
            peer_attrs.append(attr(IFLA_ADDRESS, _mac(peer_mac)))
        peer_msg = _IFINFO.pack(AF_UNSPEC, 0, 0, 0, 0) + b"".join(peer_attrs)
        info = attr(IFLA_LINKINFO, [attr(IFLA_INFO_KIND, "veth"),
                                    attr(IFLA_INFO_DATA, [attr(VETH_INFO_PEER, peer_msg)])])
        self._link_request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, 0,
                           [attr(IFLA_IFNAME, name), attr(IFLA_MTU, mtu), info])

    def set_link(self, index: int, *, up: bool | None = None, master: int | None = None, alias: str | None = None,
                 name: str | None = None) -> None:
        attrs = []
        if master is not None:
            attrs.append(attr(IFLA_MASTER, master))
        if alias is not None:
            attrs.append(attr(IFLA_IFALIAS, alias.encode()))
        if name is not None:
            attrs.append(attr(IFLA_IFNAME, name))
        self._link_request(RTM_NEWLINK, NLM_F_ACK, index, attrs, up=up)

    def set_hairpin(self, index: int, on: bool = True) -> None:
        """The bridge port's hairpin mode (`bridge link set dev X hairpin on`)."""
        self._link_request(RTM_SETLINK, NLM_F_ACK, index,
                           [attr(IFLA_PROTINFO, [attr(IFLA_BRPORT_MODE, int(on), u8=True)])], family=AF_BRIDGE)

    def delete_link(self, index: int) -> None:
        self._link_request(RTM_DELLINK, NLM_F_ACK, index)

    # ---- addresses and routes -----------------------------------------------------------------------------------

    def addresses(self, index: int) -> list[tuple[str, int]]:
        out = []
        for t, p in self.request(RTM_GETADDR, NLM_F_DUMP, _IFADDR.pack(AF_INET, 0, 0, 0, 0)):
            family, prefixlen, _f, _s, idx = _IFADDR.unpack_from(p)
            if t != RTM_NEWADDR or family != AF_INET or idx != index:
                continue
            attrs = parse_attrs(p[_IFADDR.size:])
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if raw:
                out.append((socket.inet_ntoa(raw), prefixlen))
        return out

    def add_address(self, index: int, address: str, prefixlen: int) -> None:
        raw = socket.inet_aton(address)
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK,
                     _IFADDR.pack(AF_INET, prefixlen, 0, 0, index) + attr(IFA_LOCAL, raw) + attr(IFA_ADDRESS, raw))

    def add_default_route(self, gateway: str) -> None:
        body = _RTMSG.pack(AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, 0, RTN_UNICAST, 0)
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK,
                     body + attr(RTA_GATEWAY, socket.inet_aton(gateway)))
