"""Networks: Docker-shaped records in the metadata database, and the subnets they are given.

Three networks always exist, as under Docker: `bridge` (the default bridge, interface `barque0`, configured from
barque's config file), `host` and `none`. They are made on first use. A user-defined bridge network's interface is
`br-` and the first 12 digits of its ID, as Docker names them.

A network without `--subnet` gets the first subnet of the address pools (Docker's defaults: 172.17-31.0.0/16, then
192.168.x.0/20) that overlaps no other network's. A requested subnet that overlaps another is refused with Docker's
message. Every change runs in one `BEGIN IMMEDIATE` transaction, so two concurrent creates never take one subnet.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import sqlite3
from dataclasses import dataclass

from barque.errors import Conflict, InvalidArgument, NotFound

__all__ = ["Network", "NetworkStore", "PREDEFINED", "BRIDGE_NAME_OPTION", "ICC_OPTION", "MASQ_OPTION", "MTU_OPTION"]

PREDEFINED = ("bridge", "host", "none")
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
ICC_OPTION = "com.docker.network.bridge.enable_icc"
MASQ_OPTION = "com.docker.network.bridge.enable_ip_masquerade"
MTU_OPTION = "com.docker.network.driver.mtu"
HOST_BINDING_OPTION = "com.docker.network.bridge.host_binding_ipv4"
DEFAULT_BRIDGE_OPTION = "com.docker.network.bridge.default_bridge"
IFNAMSIZ = 15


def _truthy(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return str(value).lower() in ("1", "t", "true", "yes", "on")


@dataclass(frozen=True)
class Network:
    id: str
    name: str
    driver: str
    created: str
    record: dict

    @property
    def options(self) -> dict:
        return self.record.get("Options") or {}

    @property
    def is_bridge(self) -> bool:
        return self.driver == "bridge"

    @property
    def is_default(self) -> bool:
        return self.name == "bridge"

    @property
    def bridge(self) -> str:
        return self.options.get(BRIDGE_NAME_OPTION) or f"br-{self.id[:12]}"

    @property
    def _ipam(self) -> dict:
        cfg = (self.record.get("IPAM") or {}).get("Config") or []
        return cfg[0] if cfg else {}

    @functools.cached_property  # parsed once per record: listings ask for them once per container
    def subnet(self) -> ipaddress.IPv4Network | None:
        s = self._ipam.get("Subnet")
        return ipaddress.IPv4Network(s) if s else None

    @functools.cached_property  # parsed once per record: listings ask for them once per container
    def gateway(self) -> ipaddress.IPv4Address | None:
        g = self._ipam.get("Gateway")
        return ipaddress.IPv4Address(g) if g else None

    @functools.cached_property
    def gateway_text(self) -> str:
        return str(self.gateway) if self.gateway is not None else ""

    @functools.cached_property  # parsed once per record: listings ask for them once per container
    def ip_range(self) -> ipaddress.IPv4Network | None:
        r = self._ipam.get("IPRange")
        return ipaddress.IPv4Network(r) if r else None

    @functools.cached_property
    def aux_addresses(self) -> frozenset[ipaddress.IPv4Address]:
        """IPAM's AuxiliaryAddresses: addresses of the subnet that are never handed out."""
        return frozenset(ipaddress.IPv4Address(a) for a in (self._ipam.get("AuxiliaryAddresses") or {}).values())

    @property
    def user_subnet(self) -> bool:
        """Whether the user chose the subnet (a static `--ip` needs that, as in Docker)."""
        return bool(self.record.get("_UserSubnet"))

    @property
    def internal(self) -> bool:
        return bool(self.record.get("Internal"))

    @property
    def icc(self) -> bool:
        return _truthy(self.options.get(ICC_OPTION), True)

    @property
    def masquerade(self) -> bool:
        return _truthy(self.options.get(MASQ_OPTION), True) and not self.internal

    @property
    def mtu(self) -> int:
        try:
            return int(self.options.get(MTU_OPTION) or 1500)
        except ValueError:
            return 1500

    @property
    def host_binding(self) -> str:
        return self.options.get(HOST_BINDING_OPTION) or "0.0.0.0"

    @property
    def dns(self) -> bool:
        """User-defined bridge networks have the embedded DNS server; the default bridge does not (as in Docker)."""
        return self.is_bridge and not self.is_default

    def view(self) -> dict:
        """Docker's network JSON, without Containers (the caller adds them)."""
        r = {k: v for k, v in self.record.items() if not k.startswith("_")}
        return {"Name": self.name, "Id": self.id, "Created": self.created, "Scope": "local", "Driver": self.driver,
                "EnableIPv6": False, "IPAM": r.get("IPAM") or {"Driver": "default", "Options": None, "Config": []},
                "Internal": bool(r.get("Internal")), "Attachable": bool(r.get("Attachable")), "Ingress": False,
                "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": {},
                "Options": r.get("Options") or {}, "Labels": r.get("Labels") or {}}


def _now() -> str:
    from barque.container.store import now_rfc3339

    return now_rfc3339()


def _new_id() -> str:
    nid = os.urandom(32).hex()
    while nid[:12].isdigit():
        nid = os.urandom(32).hex()
    return nid


def _row(row: sqlite3.Row) -> Network:
    return Network(row["id"], row["name"], row["driver"], row["created"], json.loads(row["record"]))


class NetworkStore:
    def __init__(self, db, config=None) -> None:
        self.db = db
        self._config = config
        self._ensured = False

    @property
    def config(self):
        if self._config is None:
            from barque.network.config import load

            self._config = load()
        return self._config

    # ---- reading ------------------------------------------------------------------------------------------------

    def ensure_defaults(self) -> None:
        if self._ensured:
            return
        have = {r["name"] for r in self.db.query("SELECT name FROM networks WHERE name IN ('bridge','host','none')")}
        if len(have) < 3:
            with self.db.transaction() as conn:
                have = {r["name"] for r in conn.execute(
                    "SELECT name FROM networks WHERE name IN ('bridge','host','none')")}
                for name in PREDEFINED:
                    if name not in have:
                        self._insert(conn, Network(_new_id(), name, {"bridge": "bridge", "host": "host",
                                                                     "none": "null"}[name],
                                                   _now(), self._predefined_record(name)))
        self._ensured = True

    def _predefined_record(self, name: str) -> dict:
        if name != "bridge":
            return {"IPAM": {"Driver": "default", "Options": None, "Config": []}, "Options": {}, "Labels": {}}
        from barque.network.config import DEFAULT_BRIDGE

        cfg = self.config
        ipam = {"Subnet": str(cfg.bip.network), "Gateway": str(cfg.bip.ip)}
        if cfg.fixed_cidr is not None:
            ipam["IPRange"] = str(cfg.fixed_cidr)
        return {"IPAM": {"Driver": "default", "Options": None, "Config": [ipam]},
                "Options": {DEFAULT_BRIDGE_OPTION: "true", ICC_OPTION: str(cfg.icc).lower(),
                            MASQ_OPTION: str(cfg.ip_masq).lower(), HOST_BINDING_OPTION: "0.0.0.0",
                            BRIDGE_NAME_OPTION: DEFAULT_BRIDGE, MTU_OPTION: str(cfg.mtu)},
                "Labels": {}, "_UserSubnet": cfg.fixed_cidr is not None}

    def list(self) -> list[Network]:
        self.ensure_defaults()
        return [_row(r) for r in self.db.query("SELECT * FROM networks ORDER BY created, name")]

    def get(self, ref: str, conn: sqlite3.Connection | None = None) -> Network:
        """By name, full ID, or a unique ID prefix — Docker's order."""
        self.ensure_defaults()
        q = conn.execute if conn is not None else (lambda sql, p: self.db.query(sql, p))
        rows = list(q("SELECT * FROM networks WHERE name = ?", (ref,)))
        if not rows:
            rows = list(q("SELECT * FROM networks WHERE id = ?", (ref,)))
        if not rows and ref and all(c in "0123456789abcdef" for c in ref):
            rows = list(q("SELECT * FROM networks WHERE id LIKE ?", (ref + "%",)))
            if len(rows) > 1:
                raise NotFound(f"network {ref} is ambiguous ({len(rows)} matches found based on ID prefix)")
        if not rows:
            raise NotFound(f"network {ref} not found")
        return _row(rows[0])

    def by_id(self, nid: str, conn: sqlite3.Connection | None = None) -> Network:
        q = conn.execute if conn is not None else (lambda sql, p: self.db.query(sql, p))
        rows = list(q("SELECT * FROM networks WHERE id = ?", (nid,)))
        if not rows:
            raise NotFound(f"network {nid} not found")
        return _row(rows[0])

    def default_bridge(self) -> Network:
        return self.get("bridge")

    # ---- changing -----------------------------------------------------------------------------------------------

    @staticmethod
    def _insert(conn: sqlite3.Connection, net: Network) -> None:
        conn.execute("INSERT INTO networks (id, name, driver, created, record) VALUES (?, ?, ?, ?, ?)",
                     (net.id, net.name, net.driver, net.created, json.dumps(net.record)))

    def create(self, name: str, *, driver: str = "bridge", subnet: str | None = None, gateway: str | None = None,
               ip_range: str | None = None, internal: bool = False, attachable: bool = False,
               labels: dict | None = None, options: dict | None = None, check_duplicate: bool = True,
               aux_addresses: dict | None = None, ipam_options: dict | None = {}) -> Network:  # noqa: B006
        """A network's record. Its name is any text (Docker's are: "test 01" is one) — nothing is named after it:
        the bridge is named from the ID. `aux_addresses`: IPAM's AuxiliaryAddresses (name → address of the
        subnet, never handed out); `ipam_options`: IPAM's Options as given (Docker's CLI sends {}; the API may send
        none: inspect shows null)."""
        self.ensure_defaults()
        if not name or not name.strip():
            raise InvalidArgument("network name is required" if not name else "invalid name: name is empty")
        if name in PREDEFINED:
            raise Conflict(f"operation is not permitted on predefined {name} network ")
        if driver != "bridge":
            if driver in ("host", "null"):
                raise Conflict(f"only one instance of \"{driver}\" network is allowed")
            raise NotFound(f"plugin \"{driver}\" not found")
        options = dict(options or {})
        for key in (ICC_OPTION, MASQ_OPTION):
            if key in options and str(options[key]).lower() not in ("true", "false", "1", "0"):
                raise InvalidArgument(f"invalid value for {key}: {options[key]!r} (want true or false)")
        if MTU_OPTION in options:
            try:
                if not 68 <= int(options[MTU_OPTION]) <= 65535:
                    raise ValueError
            except ValueError:
                raise InvalidArgument(f"invalid value for {MTU_OPTION}: {options[MTU_OPTION]!r}") from None
        bridge_name = options.get(BRIDGE_NAME_OPTION)
        if bridge_name is not None and (not bridge_name or len(bridge_name) > IFNAMSIZ or "/" in bridge_name
                                        or any(c.isspace() for c in bridge_name)):
            raise InvalidArgument(f"invalid bridge name {bridge_name!r}: at most {IFNAMSIZ} characters, no spaces")
        want = _parse_ipam(subnet, gateway, ip_range)
        aux = _parse_aux(aux_addresses, want)
        nid = _new_id()
        with self.db.transaction() as conn:
            if check_duplicate and conn.execute("SELECT 1 FROM networks WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"network with name {name} already exists")
            others = [_row(r) for r in conn.execute("SELECT * FROM networks")]
            if bridge_name and any(o.is_bridge and o.bridge == bridge_name for o in others):
                raise Conflict(f"bridge name {bridge_name} is used by another network")
            taken = [o.subnet for o in others if o.subnet is not None]
            if want["subnet"] is None:
                want["subnet"] = self._free_subnet(taken)
                want["gateway"] = want["gateway"] or next(want["subnet"].hosts())
                user = False
            else:
                for t in taken:
                    if want["subnet"].overlaps(t):
                        raise Conflict("Pool overlaps with other one on this address space")
                user = True
            ipam = {"Subnet": str(want["subnet"]), "Gateway": str(want["gateway"] or next(want["subnet"].hosts()))}
            if want["ip_range"] is not None:
                ipam["IPRange"] = str(want["ip_range"])
            if aux:
                ipam["AuxiliaryAddresses"] = aux
            if ipam_options is not None:
                ipam_options = dict(ipam_options)
            record = {"IPAM": {"Driver": "default", "Options": ipam_options, "Config": [ipam]}, "Internal": internal,
                      "Attachable": attachable, "Options": options, "Labels": dict(labels or {}),
                      "_UserSubnet": user}
            net = Network(nid, name, driver, _now(), record)
            self._insert(conn, net)
        return net

    def _free_subnet(self, taken: list) -> ipaddress.IPv4Network:
        for pool in self.config.pools:
            base = ipaddress.IPv4Network(pool["base"])
            for candidate in base.subnets(new_prefix=pool["size"]):
                if not any(candidate.overlaps(t) for t in taken) and not _on_host(candidate):
                    return candidate
        raise Conflict("could not find an available, non-overlapping IPv4 address pool among the defaults to "
                       "assign to the network")

    def remove(self, net: Network) -> None:
        """The record only (the caller tears the bridge down first); refused while endpoints exist."""
        if net.name in PREDEFINED:
            raise Conflict(f"{net.name} is a pre-defined network and cannot be removed")
        with self.db.transaction() as conn:
            users = conn.execute("SELECT container_id FROM endpoints WHERE network_id = ?", (net.id,)).fetchall()
            if users:
                raise Conflict(f"error while removing network: network {net.name} id {net.id} has active endpoints")
            conn.execute("DELETE FROM networks WHERE id = ?", (net.id,))

    def endpoints_of(self, net: Network) -> list[sqlite3.Row]:
        return self.db.query("SELECT * FROM endpoints WHERE network_id = ? ORDER BY ip", (net.id,))


def _parse_ipam(subnet, gateway, ip_range) -> dict:
    out = {"subnet": None, "gateway": None, "ip_range": None}
    try:
        if subnet:
            out["subnet"] = ipaddress.IPv4Network(subnet, strict=False)
            if out["subnet"].prefixlen > 30:
                raise InvalidArgument(f"invalid subnet {subnet}: too small for a gateway and a container")
        elif gateway or ip_range:
            raise InvalidArgument("--gateway and --ip-range need --subnet")
        if gateway:
            out["gateway"] = ipaddress.IPv4Address(gateway)
            if out["gateway"] not in out["subnet"]:
                raise InvalidArgument(f"no matching subnet for gateway {gateway}")
        if ip_range:
            out["ip_range"] = ipaddress.IPv4Network(ip_range, strict=False)
            if not out["ip_range"].subnet_of(out["subnet"]):
                raise InvalidArgument(f"no matching subnet for range {ip_range}")
    except ValueError as e:
        raise InvalidArgument(f"invalid IPAM configuration: {e}") from e
    if subnet and ":" in subnet:
        raise InvalidArgument("IPv6 networks are not supported by barque")
    return out


def _parse_aux(aux: dict | None, want: dict) -> dict[str, str]:
    """IPAM's AuxiliaryAddresses checked as Docker checks them: each an address of the subnet, none the gateway's
    or another's (libnetwork reserves each: a second reservation of one address fails)."""
    out: dict[str, str] = {}
    if not aux:
        return out
    if want["subnet"] is None:
        raise InvalidArgument("auxiliary addresses need a subnet")
    gateway = want["gateway"] or next(want["subnet"].hosts())
    seen = {gateway: "the gateway"}
    for key, value in aux.items():
        try:
            ip = ipaddress.ip_address(value)
        except (TypeError, ValueError):
            raise InvalidArgument(f"invalid auxiliary address {key}: invalid address") from None
        if ip.version != 4:
            raise InvalidArgument(f"invalid auxiliary address {key}: parent subnet is an IPv4 block")
        if ip not in want["subnet"]:
            raise InvalidArgument(f"invalid auxiliary address {key}: it does not belong to the subnet")
        if ip in seen:
            raise InvalidArgument(f"failed to allocate secondary ip address ({key}:{value}): Address already in "
                                  f"use ({seen[ip]} has it)")
        seen[ip] = key
        out[key] = str(ip)
    return out


def _on_host(candidate: ipaddress.IPv4Network) -> bool:
    """Whether an address of this network namespace is inside `candidate` (Docker skips pools the host uses)."""
    try:
        with open("/proc/net/fib_trie") as f:
            text = f.read()
    except OSError:
        return False
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "/32 host LOCAL" in line and i > 0:
            try:
                addr = ipaddress.IPv4Address(lines[i - 1].split()[-1])
            except ValueError:
                continue
            if addr in candidate and not addr.is_loopback:
                return True
    return False
