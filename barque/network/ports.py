"""Published ports at start: each of the container's PortBindings turned into a concrete host address and port.

A binding without a host port gets the lowest free port of the kernel's ephemeral range
(`net.ipv4.ip_local_port_range`, as Docker reads it); a host port range takes its first free port. A port is free
when no running container holds it (the port_mappings table: UNIQUE per protocol, address and port — 0.0.0.0
clashes with every address) and this host's own processes do not listen on it (a trial bind). Docker's messages
for both cases.
"""

from __future__ import annotations

import errno
import socket
import sqlite3

from barque.errors import Conflict, InvalidArgument

__all__ = ["allocate", "ephemeral_range"]


def ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def _held(conn: sqlite3.Connection, proto: str, host_ip: str, port: int) -> bool:
    if host_ip == "0.0.0.0":
        q = "SELECT 1 FROM port_mappings WHERE proto = ? AND host_port = ?"
        return bool(conn.execute(q, (proto, port)).fetchone())
    q = "SELECT 1 FROM port_mappings WHERE proto = ? AND host_port = ? AND host_ip IN (?, '0.0.0.0')"
    return bool(conn.execute(q, (proto, port, host_ip)).fetchone())


def _host_free(proto: str, host_ip: str, port: int) -> OSError | None:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.bind((host_ip, port))
        if proto == "tcp":
            s.listen(1)
        return None
    except OSError as e:
        return e
    finally:
        s.close()


def _parse_host_port(text: str) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        if "-" in text:
            a, b = text.split("-", 1)
            lo, hi = int(a), int(b)
        else:
            lo = hi = int(text)
    except ValueError:
        raise InvalidArgument(f"invalid host port: {text!r}") from None
    if not (0 < lo <= hi <= 65535):
        raise InvalidArgument(f"invalid host port range: {text!r}")
    return lo, hi


def allocate(conn: sqlite3.Connection, cid: str, name: str, container_ip: str, bindings: dict,
             default_host_ip: str = "0.0.0.0") -> list[tuple]:
    """Record the container's published ports (inside the caller's write transaction): the rows made, as
    (proto, host_ip, host_port, container_ip, container_port)."""
    made = []
    eph = ephemeral_range()
    for key, binds in sorted((bindings or {}).items()):
        port_text, _, proto = key.partition("/")
        proto = proto or "tcp"
        if proto not in ("tcp", "udp"):
            raise InvalidArgument(f"invalid protocol for port {key}: barque publishes tcp and udp")
        try:
            cport = int(port_text)
        except ValueError:
            raise InvalidArgument(f"invalid container port: {key}") from None
        for b in binds or [{}]:
            host_ip = (b or {}).get("HostIp") or default_host_ip
            if ":" in host_ip:
                continue  # IPv6 host addresses: barque's rules are IPv4 only
            wanted = _parse_host_port((b or {}).get("HostPort") or "")
            candidates = range(wanted[0], wanted[1] + 1) if wanted else range(eph[0], eph[1] + 1)
            chosen = None
            last_error = None
            for port in candidates:
                if _held(conn, proto, host_ip, port):
                    last_error = ("held", port)
                    continue
                err = _host_free(proto, host_ip, port)
                if err is not None:
                    if err.errno == errno.EADDRNOTAVAIL:
                        raise InvalidArgument(f"driver failed programming external connectivity on endpoint "
                                              f"{name}: listen {proto}4 {host_ip}:{port}: bind: cannot assign "
                                              "requested address")
                    last_error = ("busy", port)
                    continue
                chosen = port
                break
            if chosen is None:
                if wanted and wanted[0] == wanted[1] and last_error and last_error[0] == "held":
                    raise Conflict(f"driver failed programming external connectivity on endpoint {name}: Bind "
                                   f"for {host_ip}:{wanted[0]} failed: port is already allocated")
                if wanted and wanted[0] == wanted[1]:
                    raise Conflict(f"driver failed programming external connectivity on endpoint {name}: Error "
                                   f"starting userland proxy: listen {proto}4 {host_ip}:{wanted[0]}: bind: address "
                                   "already in use")
                raise Conflict(f"driver failed programming external connectivity on endpoint {name}: no free "
                               f"host port in {candidates.start}-{candidates.stop - 1} for {key}")
            conn.execute("INSERT INTO port_mappings (container_id, proto, host_ip, host_port, container_ip, "
                         "container_port) VALUES (?, ?, ?, ?, ?, ?)", (cid, proto, host_ip, chosen, container_ip,
                                                                     cport))
            made.append((proto, host_ip, chosen, container_ip, cport))
    return made
