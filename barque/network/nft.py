"""barque's firewall rules: two nftables tables of its own, `ip barque` (NAT, port publishing, isolation) and
`bridge barque` (inter-container traffic on networks with icc off), rebuilt whole from the metadata and applied
in one atomic `nft -j -f -` transaction. Nothing else (Docker's tables, the host's own) is ever touched.

Rebuilding from the database on every change, rather than adding and deleting single rules, makes the rules a
function of the recorded state: a crash between steps leaves at worst stale rules that the next change (or
`system check --repair`) replaces, never rules nobody knows about.

`ip barque`:
- nat `prerouting` and `output` send traffic for the host's own addresses to `ports`, which DNATs each published
  port to its container (so a port is reachable from outside, from the host on 127.0.0.1 — `route_localnet` is on
  for barque's bridges — and from other containers through the host's address: hairpin);
- nat `postrouting` masquerades each network's traffic leaving through another interface (not for `--internal`
  networks or `enable_ip_masquerade=false`), DNAT'd traffic that goes back out its own bridge (hairpin: the reply
  must come back through the host), and loopback-sourced traffic DNAT'd onto a bridge;
- filter `forward` drops traffic between different barque networks and anything entering or leaving an internal
  network's bridge through another interface.

`bridge barque`: on a network with icc off, IPv4 between two of its containers is dropped, except the ports links
opened (both directions: the linked container's exposed port, and replies from it).
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import dataclass

from barque.errors import FailedPrecondition

__all__ = ["Mapping", "LinkRule", "ruleset", "apply", "TABLE"]

TABLE = "barque"


@dataclass(frozen=True)
class Mapping:
    proto: str
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int


@dataclass(frozen=True)
class LinkRule:
    bridge: str
    src_ip: str
    dst_ip: str
    proto: str
    port: int


def _match(left: dict, right, op: str = "==") -> dict:
    return {"match": {"op": op, "left": left, "right": right}}


def _payload(protocol: str, field: str) -> dict:
    return {"payload": {"protocol": protocol, "field": field}}


def _meta(key: str) -> dict:
    return {"meta": {"key": key}}


def _prefix(net: ipaddress.IPv4Network) -> dict:
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}


def _rule(family: str, chain: str, *expr: dict, comment: str | None = None) -> dict:
    rule = {"family": family, "table": TABLE, "chain": chain, "expr": list(expr)}
    if comment:
        rule["comment"] = comment
    return {"add": {"rule": rule}}


def _chain(family: str, name: str, kind: str | None = None, hook: str | None = None, prio: int = 0) -> dict:
    chain = {"family": family, "table": TABLE, "name": name}
    if kind:
        chain.update({"type": kind, "hook": hook, "prio": prio, "policy": "accept"})
    return {"add": {"chain": chain}}


def ruleset(networks: list, mappings: list[Mapping], links: list[LinkRule]) -> dict:
    """The whole of barque's rules for `networks` (bridge networks: store.Network), the published ports of
    running containers, and the link exceptions of icc-off networks. Replaces whatever barque had before."""
    bridges = [n for n in networks if n.is_bridge and n.subnet is not None]
    cmds: list[dict] = []
    for family in ("ip", "bridge"):  # add-then-delete: deleting a table that may not exist, atomically
        cmds.append({"add": {"table": {"family": family, "name": TABLE}}})
        cmds.append({"delete": {"table": {"family": family, "name": TABLE}}})
        cmds.append({"add": {"table": {"family": family, "name": TABLE}}})
    ip = "ip"
    cmds += [_chain(ip, "prerouting", "nat", "prerouting", -100), _chain(ip, "output", "nat", "output", -100),
             _chain(ip, "ports"), _chain(ip, "postrouting", "nat", "postrouting", 100),
             _chain(ip, "forward", "filter", "forward", 0)]
    local = _match({"fib": {"flags": ["daddr"], "result": "type"}}, "local")
    cmds.append(_rule(ip, "prerouting", local, {"jump": {"target": "ports"}}))
    cmds.append(_rule(ip, "output", local, {"jump": {"target": "ports"}}))
    for m in mappings:
        expr = []
        if m.host_ip not in ("", "0.0.0.0"):
            expr.append(_match(_payload("ip", "daddr"), m.host_ip))
        expr.append(_match(_payload(m.proto, "dport"), m.host_port))
        expr.append({"dnat": {"addr": m.container_ip, "port": m.container_port}})
        cmds.append(_rule(ip, "ports", *expr))
    names = [n.bridge for n in bridges]
    for n in bridges:
        subnet = _prefix(n.subnet)
        if n.masquerade:
            cmds.append(_rule(ip, "postrouting", _match(_payload("ip", "saddr"), subnet),
                              _match(_meta("oifname"), n.bridge, "!="), {"masquerade": None}))
        cmds.append(_rule(ip, "postrouting", _match(_meta("oifname"), n.bridge),
                          _match({"ct": {"key": "status"}}, "dnat", "in"),
                          _match(_payload("ip", "saddr"), subnet), {"masquerade": None}))
        cmds.append(_rule(ip, "postrouting", _match(_meta("oifname"), n.bridge),
                          _match(_payload("ip", "saddr"), {"prefix": {"addr": "127.0.0.0", "len": 8}}),
                          {"masquerade": None}))
        others = [b for b in names if b != n.bridge]
        if others:
            cmds.append(_rule(ip, "forward", _match(_meta("iifname"), n.bridge),
                              _match(_meta("oifname"), {"set": others}), {"drop": None}))
        if n.internal:
            cmds.append(_rule(ip, "forward", _match(_meta("iifname"), n.bridge),
                              _match(_meta("oifname"), n.bridge, "!="), {"drop": None}))
            cmds.append(_rule(ip, "forward", _match(_meta("oifname"), n.bridge),
                              _match(_meta("iifname"), n.bridge, "!="), {"drop": None}))
    isolated = [n for n in bridges if not n.icc]
    if isolated:
        br = "bridge"
        cmds.append(_chain(br, "forward", "filter", "forward", 0))
        for n in isolated:
            # frames forwarded between two ports of a bridge, both ends in the network's subnet (`meta ibrname`
            # would say it more directly, but needs nft_meta_bridge, which not every kernel has)
            on_bridge = (_match(_payload("ether", "type"), "ip"), _match(_payload("ip", "saddr"), _prefix(n.subnet)),
                         _match(_payload("ip", "daddr"), _prefix(n.subnet)))
            for lk in (x for x in links if x.bridge == n.bridge):
                cmds.append(_rule(br, "forward", _match(_payload("ip", "saddr"), lk.src_ip),
                                  _match(_payload("ip", "daddr"), lk.dst_ip),
                                  _match(_payload(lk.proto, "dport"), lk.port), {"accept": None}))
                cmds.append(_rule(br, "forward", _match(_payload("ip", "saddr"), lk.dst_ip),
                                  _match(_payload("ip", "daddr"), lk.src_ip),
                                  _match(_payload(lk.proto, "sport"), lk.port), {"accept": None}))
            cmds.append(_rule(br, "forward", *on_bridge, {"drop": None}))
    return {"nftables": cmds}


def apply(rules: dict) -> None:
    """One atomic transaction: either every rule is in place or nothing changed."""
    try:
        proc = subprocess.run(["nft", "-j", "-f", "-"], input=json.dumps(rules).encode(), capture_output=True,
                              timeout=30)
    except FileNotFoundError as e:
        raise FailedPrecondition("nft (nftables) is not installed: barque's networking needs it") from e
    if proc.returncode != 0:
        raise FailedPrecondition(f"nftables refused barque's rules: {proc.stderr.decode(errors='replace').strip()}")
