"""IPAM: a container's address on a network, held from the moment it joins (create or `network connect`) until it
leaves (`rm` or `network disconnect`), recorded in the endpoints table whose UNIQUE (network, ip) constraint makes
two concurrent `run`s unable to share one address: both choose inside their own `BEGIN IMMEDIATE` transaction.

Addresses are handed out lowest first from the network's range (its `--ip-range`, `fixed-cidr`, else its
subnet), skipping the network and broadcast addresses and the gateway.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sqlite3

from barque.errors import Conflict, InvalidArgument

__all__ = ["attach", "detach", "endpoints_of_container", "mac_for"]


def mac_for(ip: ipaddress.IPv4Address) -> str:
    """Docker's (before 25.0) MAC for an address: 02:42 and the address's four bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ip.packed)


def _choose(net, taken: set[ipaddress.IPv4Address], requested: str | None) -> ipaddress.IPv4Address:
    subnet = net.subnet
    if subnet is None:
        raise InvalidArgument(f"network {net.name} has no IPv4 subnet")
    reserved = {subnet.network_address, subnet.broadcast_address, net.gateway}
    if requested:
        try:
            ip = ipaddress.IPv4Address(requested)
        except ValueError as e:
            raise InvalidArgument(f"invalid IPv4 address: {requested}") from e
        if not net.user_subnet:
            raise InvalidArgument("user specified IP address is supported only when connecting to networks with "
                                  "user configured subnets")
        if ip not in subnet:
            raise InvalidArgument(f"invalid address {requested}: it does not belong to any of this network's "
                                  "subnets")
        if ip in reserved or ip in taken:
            raise Conflict(f"Address already in use: {requested} on network {net.name}")
        return ip
    pool = net.ip_range or subnet
    for ip in pool.hosts() if pool.prefixlen < 31 else pool:
        if ip not in reserved and ip not in taken:
            return ip
    raise Conflict(f"no available IPv4 addresses on this network's address pools: {net.name} ({pool})")


def attach(conn: sqlite3.Connection, net, container_id: str, *, ip: str | None = None,
           aliases: list[str] | None = None, links: list[str] | None = None, name: str | None = None) -> dict:
    """A new endpoint of `container_id` (called `name` in messages) on `net`, inside the caller's write
    transaction."""
    if conn.execute("SELECT 1 FROM endpoints WHERE network_id = ? AND container_id = ?",
                    (net.id, container_id)).fetchone():
        raise Conflict(f"endpoint with name {name or container_id[:12]} already exists in network {net.name}")
    taken = {ipaddress.IPv4Address(r[0]) for r in conn.execute("SELECT ip FROM endpoints WHERE network_id = ?",
                                                               (net.id,))}
    address = _choose(net, taken, ip)
    record = {"Aliases": list(aliases or []), "Links": list(links or []) or None,
              "IPAMConfig": {"IPv4Address": ip} if ip else None}
    eid = os.urandom(32).hex()
    conn.execute("INSERT INTO endpoints (id, network_id, container_id, ip, mac, record) VALUES (?, ?, ?, ?, ?, ?)",
                 (eid, net.id, container_id, str(address), mac_for(address), json.dumps(record)))
    return {"id": eid, "network_id": net.id, "container_id": container_id, "ip": str(address),
            "mac": mac_for(address), "record": record}


def detach(conn: sqlite3.Connection, network_id: str | None, container_id: str) -> int:
    """Release the container's address on one network (or, with None, on all): how many were released."""
    if network_id is None:
        return conn.execute("DELETE FROM endpoints WHERE container_id = ?", (container_id,)).rowcount
    return conn.execute("DELETE FROM endpoints WHERE network_id = ? AND container_id = ?",
                        (network_id, container_id)).rowcount


_ENDPOINTS = ("SELECT e.*, n.name AS network_name FROM endpoints e JOIN networks n ON n.id = e.network_id "
              "{where} ORDER BY e.rowid")


def _endpoint(r) -> dict:
    return {"id": r["id"], "network_id": r["network_id"], "network_name": r["network_name"],
            "container_id": r["container_id"], "ip": r["ip"], "mac": r["mac"], "record": json.loads(r["record"])}


def endpoints_of_container(db_or_conn, container_id: str) -> list[dict]:
    """The container's endpoints, in the order it joined its networks (the first is its default route's)."""
    sql = _ENDPOINTS.format(where="WHERE e.container_id = ?")
    rows = (db_or_conn.execute(sql, (container_id,)).fetchall() if isinstance(db_or_conn, sqlite3.Connection)
            else db_or_conn.query(sql, (container_id,)))
    return [_endpoint(r) for r in rows]


def endpoints_by_container(db) -> dict[str, list[dict]]:
    """Every container's endpoints (as endpoints_of_container gives them) in one query: for listings."""
    out: dict[str, list[dict]] = {}
    for r in db.query(_ENDPOINTS.format(where="")):
        out.setdefault(r["container_id"], []).append(_endpoint(r))
    return out
