"""Port 53 left to the container: the server listens on 127.0.0.11 at two random ports, and a table of barque's own
in the container's network namespace sends 127.0.0.11:53 there, as Docker's DOCKER_OUTPUT/DOCKER_POSTROUTING chains
do. A container may then run its own DNS server on 0.0.0.0:53 (dnsmasq, coredns) and still resolve through
127.0.0.11.

    table ip barque_dns {
        chain output      { type nat hook output priority -100;
                            ip daddr 127.0.0.11 udp dport 53 dnat to 127.0.0.11:UDP_PORT
                            ip daddr 127.0.0.11 tcp dport 53 dnat to 127.0.0.11:TCP_PORT }
        chain postrouting { type nat hook postrouting priority 100;
                            ip saddr 127.0.0.11 udp sport UDP_PORT snat to :53
                            ip saddr 127.0.0.11 tcp sport TCP_PORT snat to :53 }
    }

Replies normally need no rule: they belong to the query's conntrack entry and leave with 127.0.0.11:53 as their
source. The `postrouting` rules are for a reply that outlives its entry (an unanswered UDP entry lives 30 s; a
flushed or evicted table) — without them such a reply comes from the random port and a resolver's connected
socket drops it. Both cases are tested (tests/integration/test_network_dns.py).

The table lives only in the container's namespace and goes with it; it is applied in one `nft -j -f -`
transaction from a thread inside that namespace (the nft process inherits the thread's namespace).
"""

from __future__ import annotations

import json

__all__ = ["TABLE", "NatError", "ruleset", "apply_here"]

TABLE = "barque_dns"
ADDRESS = "127.0.0.11"
PORT = 53


class NatError(Exception):
    """The redirection of 127.0.0.11:53 could not be put in place."""


def _match(protocol: str, field: str, value) -> dict:
    return {"match": {"op": "==", "left": {"payload": {"protocol": protocol, "field": field}}, "right": value}}


def _chain(name: str, hook: str, prio: int) -> dict:
    return {"add": {"chain": {"family": "ip", "table": TABLE, "name": name, "type": "nat", "hook": hook,
                              "prio": prio, "policy": "accept"}}}


def _rule(chain: str, *expr: dict) -> dict:
    return {"add": {"rule": {"family": "ip", "table": TABLE, "chain": chain, "expr": list(expr)}}}


def ruleset(udp_port: int, tcp_port: int) -> dict:
    """The whole table for a server listening at `udp_port` and `tcp_port`; replaces any earlier one (a restarted
    server's) in the same transaction."""
    table = {"family": "ip", "name": TABLE}
    cmds: list[dict] = [{"add": {"table": table}}, {"delete": {"table": table}}, {"add": {"table": table}},
                        _chain("output", "output", -100), _chain("postrouting", "postrouting", 100)]
    for proto, port in (("udp", udp_port), ("tcp", tcp_port)):
        cmds.append(_rule("output", _match("ip", "daddr", ADDRESS), _match(proto, "dport", PORT),
                          {"dnat": {"addr": ADDRESS, "port": port}}))
        cmds.append(_rule("postrouting", _match("ip", "saddr", ADDRESS), _match(proto, "sport", port),
                          {"snat": {"port": PORT}}))
    return {"nftables": cmds}


def apply_here(udp_port: int, tcp_port: int) -> None:
    """Put the table in the calling thread's network namespace (call it from a thread that entered the
    container's); NatError says why not."""
    import subprocess

    try:
        proc = subprocess.run(["nft", "-j", "-f", "-"], input=json.dumps(ruleset(udp_port, tcp_port)).encode(),
                              capture_output=True, timeout=30)
    except FileNotFoundError as e:
        raise NatError("nft (nftables) is not installed") from e
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NatError(f"nft: {e}") from e
    if proc.returncode != 0:
        raise NatError(f"nftables refused the rules: {proc.stderr.decode(errors='replace').strip()}")
