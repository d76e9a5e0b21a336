"""IPAM: a container's address on a network, held from the moment it joins (create or `network connect`) until it
leaves (`rm` or `network disconnect`), recorded in the endpoints table whose UNIQUE (network, ip) constraint makes
two concurrent `run`s unable to share one address: both choose inside their own `BEGIN IMMEDIATE` transaction.

Addresses are handed out lowest first from the network's range (its `--ip-range`, `fixed-cidr`, else its
subnet), skipping the network and broadcast addresses, the gateway and the auxiliary addresses (IPAM's
AuxiliaryAddresses, which a static address cannot take either).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import sqlite3

from barque.errors import Conflict, InvalidArgument

__all__ = ["attach", "detach", "endpoints_of_container", "mac_for", "check_mac", "check_link_local"]


def mac_for(ip: ipaddress.IPv4Address) -> str:
    """Docker's (before 25.0) MAC for an address: 02:42 and the address's four bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ip.packed)


def _choose(net, taken: set[ipaddress.IPv4Address], requested: str | None) -> ipaddress.IPv4Address:
    subnet = net.subnet
    if subnet is None:
        raise InvalidArgument(f"network {net.name} has no IPv4 subnet")
    reserved = {subnet.network_address, subnet.broadcast_address, net.gateway, *net.aux_addresses}
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


def check_mac(mac: str) -> str:
    """A MAC address an endpoint may be given (Docker parses it with Go's net.ParseMAC), in its usual form: six
    bytes (colons, hyphens or Cisco's dots) — and unicast, as a kernel interface's must be."""
    if not isinstance(mac, str):
        raise InvalidArgument(f"invalid MAC address: {mac!r}")
    text = mac.strip()
    if re.fullmatch(r"[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}", text):
        raw = bytes(int(x, 16) for x in re.split(r"[:-]", text))
    elif re.fullmatch(r"[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}", text):
        raw = bytes.fromhex(text.replace(".", ""))
    else:
        raise InvalidArgument(f"invalid MAC address: {mac}")
    if raw[0] & 1:
        raise InvalidArgument(f"invalid MAC address: {mac}: a multicast address cannot be an interface's")
    return ":".join(f"{b:02x}" for b in raw)


def check_link_local(ips) -> list[str]:
    """IPAMConfig.LinkLocalIPs: addresses the endpoint has besides its own (Docker adds them to the interface,
    IPv4 ones as /16). As dockerd checks them: each an address, not the unspecified one — whatever its range (the
    name is what they are meant for, dockerd never checks it); IPv6 ones are not barque's."""
    out = []
    if ips is not None and (not isinstance(ips, list) or not all(isinstance(x, str) for x in ips)):
        raise InvalidArgument("IPAMConfig.LinkLocalIPs must be a list of addresses")
    for text in ips or []:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            raise InvalidArgument(f"invalid link-local IP address: {text}") from None
        if ip.is_unspecified:
            raise InvalidArgument(f"invalid link-local IP address: {text}")
        if ip.version == 6:
            raise InvalidArgument("IPv6 addresses are not supported by barque's networks")
        out.append(str(ip))
    return out


def attach(conn: sqlite3.Connection, net, container_id: str, *, ip: str | None = None,
           aliases: list[str] | None = None, links: list[str] | None = None, name: str | None = None,
           mac: str | None = None, link_local: list[str] | None = None, driver_opts: dict | None = None,
           connected: bool = False) -> dict:
    """A new endpoint of `container_id` (called `name` in messages) on `net`, inside the caller's write
    transaction. `mac`: the address its interface gets (else one made from its IP); `link_local`: more addresses
    its interface has (IPAMConfig.LinkLocalIPs); `driver_opts`: the endpoint's DriverOpts, kept to be shown. What
    was asked for is recorded as Docker shows it (IPAMConfig, MacAddress, DriverOpts). `connected`: made by
    `network connect` (Docker shows the container's short ID among its aliases from then on, not only once it has
    started)."""
    if conn.execute("SELECT 1 FROM endpoints WHERE network_id = ? AND container_id = ?",
                    (net.id, container_id)).fetchone():
        raise Conflict(f"endpoint with name {name or container_id[:12]} already exists in network {net.name}")
    taken = {ipaddress.IPv4Address(r[0]) for r in conn.execute("SELECT ip FROM endpoints WHERE network_id = ?",
                                                               (net.id,))}
    address = _choose(net, taken, ip)
    link_local = check_link_local(link_local)
    ipam_config = {}
    if ip:
        ipam_config["IPv4Address"] = ip
    if link_local:
        ipam_config["LinkLocalIPs"] = link_local
    record = {"Aliases": list(aliases or []), "Links": list(links or []) or None,
              "IPAMConfig": ipam_config or None}
    if mac:
        record["MacAddress"] = mac = check_mac(mac)
    if connected:
        record["_ShortIDAlias"] = True
    if driver_opts:
        if not isinstance(driver_opts, dict) or not all(isinstance(v, str) for v in driver_opts.values()):
            raise InvalidArgument("DriverOpts must map names to strings")
        record["DriverOpts"] = dict(driver_opts)
    mac = mac or mac_for(address)
    eid = os.urandom(32).hex()
    conn.execute("INSERT INTO endpoints (id, network_id, container_id, ip, mac, record) VALUES (?, ?, ?, ?, ?, ?)",
                 (eid, net.id, container_id, str(address), mac, json.dumps(record)))
    return {"id": eid, "network_id": net.id, "container_id": container_id, "ip": str(address),
            "mac": mac, "record": record}


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
