"""The resolvers that answer every name that is not a container's.

By default the host's: the nameservers of the host's resolv.conf (`$BARQUE_DNS_RESOLV_CONF` in its place), read
when the server starts (and again on SIGHUP), asked from the host's network namespace — the server's own — so a
local stub such as systemd-resolved's 127.0.0.53 works; 127.0.0.11, the embedded server's own address, is skipped.

A container started with `--dns` (or, without it, under a config file with `dns`) has its own instead, asked from
inside its network namespace, as Docker asks them (`sockets`: see hop.py).

A query goes to each server in turn over UDP (2 s each) — the next one also after SERVFAIL or REFUSED, as glibc
does — and over TCP when it came over TCP or when the UDP answer is truncated. The answer is relayed unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
from dataclasses import dataclass

from barque.network.dns import wire

__all__ = ["ResolvConf", "read_resolv_conf", "resolv_conf_path", "Forwarder", "RESOLV_CONF_ENV",
           "own_servers"]

RESOLV_CONF_ENV = "BARQUE_DNS_RESOLV_CONF"
OWN_ADDRESS = "127.0.0.11"
MAX_SERVERS = 3  # glibc's MAXNS
log = logging.getLogger(__name__)


def resolv_conf_path() -> str:
    return os.environ.get(RESOLV_CONF_ENV) or "/etc/resolv.conf"


@dataclass(frozen=True)
class ResolvConf:
    nameservers: tuple[str, ...] = ()
    search: tuple[str, ...] = ()


def read_resolv_conf(path: str) -> ResolvConf:
    """Nameservers and search domains of a resolv.conf (a missing or unreadable file has none)."""
    import ipaddress

    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(1 << 20)
    except OSError as e:
        log.warning("cannot read %s: %s", path, e)
        return ResolvConf()
    servers: list[str] = []
    search: tuple[str, ...] = ()
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) < 2:
            continue
        if words[0] == "nameserver":
            try:
                addr = ipaddress.ip_address(words[1])  # a link-local one keeps its %scope
            except ValueError:
                continue
            if str(addr) != OWN_ADDRESS and str(addr) not in servers and len(servers) < MAX_SERVERS:
                servers.append(str(addr))
        elif words[0] in ("search", "domain"):  # the last of them wins, as in glibc
            search = tuple(w.lower().strip(".") for w in words[1:] if w.strip("."))
    return ResolvConf(tuple(servers), search)


def own_servers(value) -> tuple[str, ...]:
    """A container's own resolvers as `attach` sends them: addresses (anything else skipped, with a warning — the
    command line should have refused it), never 127.0.0.11 itself (its queries would come back to us), three at
    most. ValueError when `value` is not a list of strings."""
    import ipaddress

    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"invalid upstream servers {value!r}")
    servers: list[str] = []
    for v in value:
        try:
            addr = str(ipaddress.ip_address(v))
        except ValueError:
            log.warning("%r is not an IP address: not used as a DNS server", v)
            continue
        if addr != OWN_ADDRESS and addr not in servers and len(servers) < MAX_SERVERS:
            servers.append(addr)
    return tuple(servers)


class BadAnswer(Exception):
    pass


class Forwarder:
    def __init__(self, servers: tuple[str, ...], *, timeout: float = 2.0, port: int = 53, sockets=None) -> None:
        self.servers = servers
        self.timeout = timeout
        self.port = port
        self.sockets = sockets  # async (family, kind) -> socket made elsewhere (a container's namespace); None: here

    async def _socket(self, family: int, kind: int) -> socket.socket:
        if self.sockets is not None:
            return await self.sockets(family, kind)
        return socket.socket(family, kind | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)

    async def forward(self, q: wire.Query, *, tcp: bool) -> bytes | None:
        """The first useful upstream answer to `q` (or the last SERVFAIL/REFUSED one); None when no server
        answered at all."""
        last = None
        for server in self.servers:
            try:
                answer = await (self._tcp(server, q) if tcp else self._udp_then_tcp(server, q))
            except (OSError, asyncio.TimeoutError, BadAnswer, asyncio.IncompleteReadError) as e:
                log.debug("upstream %s: %s", server, e or type(e).__name__)
                continue
            if wire.rcode_of(answer) in (wire.SERVFAIL, wire.REFUSED):
                last = answer
                continue
            return answer
        return last

    async def _udp_then_tcp(self, server: str, q: wire.Query) -> bytes:
        answer = await self._udp(server, q)
        if not wire.truncated(answer):
            return answer
        try:
            full = await self._tcp(server, q)
        except (OSError, asyncio.TimeoutError, BadAnswer, asyncio.IncompleteReadError):
            return answer
        return full if len(full) <= q.udp_limit else answer  # too big still: the client retries over TCP

    async def _udp(self, server: str, q: wire.Query) -> bytes:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in server else socket.AF_INET
        with await self._socket(family, socket.SOCK_DGRAM) as s:
            s.connect((server, self.port))  # a connected socket takes only the server's datagrams
            await loop.sock_sendall(s, q.raw)
            deadline = loop.time() + self.timeout
            for _ in range(64):  # a few stray datagrams (late answers to the same port) are skipped
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                data = await asyncio.wait_for(loop.sock_recv(s, 65535), remaining)
                if wire.is_answer_to(data, q):
                    return data
            raise asyncio.TimeoutError()

    async def _tcp(self, server: str, q: wire.Query) -> bytes:
        async def ask() -> bytes:
            loop = asyncio.get_running_loop()
            s = await self._socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_STREAM)
            try:
                await loop.sock_connect(s, (server, self.port))
                reader, writer = await asyncio.open_connection(sock=s)
            except BaseException:
                s.close()
                raise
            try:
                writer.write(struct.pack("!H", len(q.raw)) + q.raw)
                await writer.drain()
                (n,) = struct.unpack("!H", await reader.readexactly(2))
                data = await reader.readexactly(n)
            finally:
                writer.close()
            if not wire.is_answer_to(data, q):
                raise BadAnswer(f"{server} answered another question")
            return data

        return await asyncio.wait_for(ask(), self.timeout * 2)
