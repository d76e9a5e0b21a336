"""The `network` verbs on an engine: create, inspect, list, remove, prune, connect, disconnect — what the CLI and
the Engine API call. Interfaces and rules change under the network lock; records in their own transactions.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path

from barque.errors import Conflict, InvalidArgument, NotFound

__all__ = ["create_network", "remove_network", "inspect_network", "prune_networks", "connect", "disconnect",
           "network_settings"]

log = logging.getLogger(__name__)


def create_network(engine, name: str, *, driver: str = "bridge", subnet: str | None = None,
                   gateway: str | None = None, ip_range: str | None = None, internal: bool = False,
                   attachable: bool = False, labels: dict | None = None, options: dict | None = None,
                   check_duplicate: bool = True, aux_addresses: dict | None = None,
                   ipam_options: dict | None = {}):  # noqa: B006 - never changed
    """A new bridge network: its record, its bridge interface (up, holding the gateway address) and its rules.
    Returns the store.Network. (`aux_addresses`, `ipam_options`: IPAM's, as NetworkStore.create takes them.)"""
    from barque.network.links import delete_link, ensure_bridge
    from barque.network.rules import apply_rules, bridge_alias, network_lock

    net = engine.networks.create(name, driver=driver or "bridge", subnet=subnet, gateway=gateway,
                                 ip_range=ip_range, internal=internal, attachable=attachable, labels=labels,
                                 options=options, check_duplicate=check_duplicate, aux_addresses=aux_addresses,
                                 ipam_options=ipam_options)
    try:
        with network_lock(Path(engine.settings.run_root)):
            ensure_bridge(net.bridge, ipaddress.IPv4Interface(f"{net.gateway}/{net.subnet.prefixlen}"), net.mtu,
                          alias=bridge_alias(engine, net))
            apply_rules(engine)
    except BaseException:
        try:
            delete_link(net.bridge)
        finally:
            with engine.db.transaction() as conn:
                conn.execute("DELETE FROM networks WHERE id = ?", (net.id,))
        raise
    _event(engine, net, "create")
    return net


def remove_network(engine, ref: str) -> None:
    from barque.network.links import delete_link
    from barque.network.rules import apply_rules, network_lock

    net = engine.networks.get(ref)
    engine.networks.remove(net)  # refuses predefined networks and networks with endpoints
    if net.is_bridge:
        with network_lock(Path(engine.settings.run_root)):
            delete_link(net.bridge)
            apply_rules(engine)
    _event(engine, net, "destroy")


def inspect_network(engine, ref: str) -> dict:
    """Docker's network JSON, with the containers that are running on it (as Docker lists only those)."""
    from barque.network.rules import running_ids

    net = engine.networks.get(ref)
    view = net.view()
    running = running_ids(engine.settings.run_root)
    for ep in engine.networks.endpoints_of(net):
        if ep["container_id"] not in running:
            continue
        rows = engine.db.query("SELECT name FROM containers WHERE id = ?", (ep["container_id"],))
        view["Containers"][ep["container_id"]] = {
            "Name": rows[0]["name"] if rows else "", "EndpointID": ep["id"], "MacAddress": ep["mac"],
            "IPv4Address": f"{ep['ip']}/{net.subnet.prefixlen}", "IPv6Address": ""}
    return view


def prune_networks(engine, keep=None) -> list[str]:
    """Remove user-defined networks no container is on; `keep(net)`: a filter's veto. Returns removed names."""
    removed = []
    for net in engine.networks.list():
        if net.name in ("bridge", "host", "none") or (keep is not None and keep(net)):
            continue
        if engine.networks.endpoints_of(net):
            continue
        try:
            remove_network(engine, net.id)
        except (Conflict, NotFound):
            continue  # a container joined it meanwhile, or another prune took it
        removed.append(net.name)
    return removed


def connect(engine, net_ref: str, container_ref: str, *, aliases: list[str] | None = None,
            ip: str | None = None, links: list[str] | None = None, mac: str | None = None,
            link_local: list[str] | None = None, driver_opts: dict | None = None) -> None:
    """Put a container on one more network: its endpoint now, its interface too if it runs. `mac`, `link_local`
    and `driver_opts` are the EndpointConfig's MacAddress, IPAMConfig.LinkLocalIPs and DriverOpts."""
    from barque.network.ipam import attach, detach, endpoints_of_container
    from barque.network.rules import netns_path, network_lock
    from barque.network.sandbox import uses_bridge

    net = engine.networks.get(net_ref)
    c = engine.containers.get(container_ref)
    host = c.record["HostConfig"]
    if not uses_bridge(host) or not net.is_bridge:
        mode = host.get("NetworkMode") or "default"
        if mode == "host" or net.driver == "host":
            raise InvalidArgument("container cannot be disconnected from host network or connected to host "
                                  "network")
        raise InvalidArgument("container sharing network namespace with another container or host cannot be "
                              "connected to any other network")
    if net.is_default and (aliases or ip):
        raise InvalidArgument("network-scoped alias is supported only for containers in user defined networks"
                              if aliases else "user specified IP address is supported on user defined networks "
                              "only")
    with engine.db.transaction() as conn:
        ep = attach(conn, net, c.id, ip=ip, aliases=aliases, links=links, name=c.name, mac=mac,
                    link_local=link_local, driver_opts=driver_opts, connected=True)
    path = netns_path(engine.settings.run_root, c.id)
    if not path.exists():
        _event(engine, net, "connect", c.id)
        return
    try:
        from barque.network.links import ensure_bridge, plug
        from barque.network.rules import apply_rules, bridge_alias, veth_alias
        from barque.network.sandbox import link_local_of

        index = len(endpoints_of_container(engine.db, c.id)) - 1
        with network_lock(Path(engine.settings.run_root)):
            ensure_bridge(net.bridge, ipaddress.IPv4Interface(f"{net.gateway}/{net.subnet.prefixlen}"), net.mtu,
                          alias=bridge_alias(engine, net))
            plug(path, _veth(ep["id"]), net.bridge, _free_ifname(path, index),
                 ipaddress.IPv4Interface(f"{ep['ip']}/{net.subnet.prefixlen}"), ep["mac"], None, net.mtu,
                 alias=veth_alias(engine.settings.root, ep["id"]), link_local=link_local_of(ep))
            apply_rules(engine)
        if net.dns:
            from barque.network import dns

            dns.attach(Path(engine.settings.root), Path(engine.settings.run_root), c.id, path)
        _refresh_etc(engine, c)
    except BaseException:
        with engine.db.transaction() as conn:
            detach(conn, net.id, c.id)
        raise
    _event(engine, net, "connect", c.id)


def disconnect(engine, net_ref: str, container_ref: str, *, force: bool = False) -> None:
    from barque.network.ipam import detach
    from barque.network.links import delete_link
    from barque.network.rules import apply_rules, network_lock

    net = engine.networks.get(net_ref)
    try:
        c = engine.containers.get(container_ref)
        cid = c.id
    except NotFound:
        if not force:
            raise
        c, cid = None, None
        rows = engine.db.query("SELECT e.container_id FROM endpoints e WHERE e.network_id = ? AND "
                               "e.container_id LIKE ?", (net.id, container_ref + "%"))
        if rows:
            cid = rows[0]["container_id"]
    if cid is None:
        raise NotFound(f"No such container: {container_ref}")
    rows = engine.db.query("SELECT id FROM endpoints WHERE network_id = ? AND container_id = ?", (net.id, cid))
    if not rows:
        name = c.name if c else container_ref
        raise InvalidArgument(f"container {name} is not connected to network {net.name}")
    if c is not None and net.name in ("host", "none"):
        raise InvalidArgument(f"container cannot be disconnected from {net.name} network")
    with network_lock(Path(engine.settings.run_root)):
        delete_link(_veth(rows[0]["id"]))
        with engine.db.transaction() as conn:
            detach(conn, net.id, cid)
            if not conn.execute("SELECT 1 FROM endpoints WHERE container_id = ?", (cid,)).fetchone():
                conn.execute("DELETE FROM port_mappings WHERE container_id = ?", (cid,))
        apply_rules(engine)
    if c is not None:
        _refresh_etc(engine, c)
    _event(engine, net, "disconnect", cid)


def _veth(endpoint_id: str) -> str:
    from barque.network.sandbox import veth_name

    return veth_name(endpoint_id)


def _free_ifname(path: Path, index: int) -> str:
    """The next ethN the container does not have yet (after a disconnect, eth1 may be free while eth2 is not)."""
    from barque.network import netns
    from barque.network.links import link_names

    have = set(netns.run_in(path, link_names))
    n = index
    while f"eth{n}" in have:
        n += 1
    return f"eth{n}"


def _refresh_etc(engine, c) -> None:
    from barque.network.ipam import endpoints_of_container
    from barque.network.sandbox import write_hosts, write_resolv_conf

    eps = endpoints_of_container(engine.db, c.id)
    if not eps:
        return
    nets = [engine.networks.by_id(ep["network_id"]) for ep in eps]
    write_hosts(engine, c, eps, nets)
    write_resolv_conf(c, any(n.dns for n in nets))


class Prefetched:
    """What a listing of many containers reads once for all of their NetworkSettings: every endpoint, every
    published port, each network."""

    def __init__(self, engine) -> None:
        from barque.network.ipam import endpoints_by_container

        self.endpoints = endpoints_by_container(engine.db)
        self.mappings: dict[str, list] = {}
        for r in engine.db.query("SELECT * FROM port_mappings ORDER BY rowid"):
            self.mappings.setdefault(r["container_id"], []).append(r)
        self.networks: dict = {}


def network_settings(engine, c, running: bool, prefetched: Prefetched | None = None) -> dict:
    """Docker's NetworkSettings of a container's inspect: addresses and ports while it runs (Docker clears them
    when it stops; the endpoint's NetworkID stays). A listing passes what it `prefetched` for all its rows."""
    from barque.network.ipam import endpoints_of_container
    from barque.network.rules import netns_path

    host = c.record["HostConfig"]
    mode = host.get("NetworkMode") or "default"
    path = netns_path(engine.settings.run_root, c.id)
    active = running and os.path.exists(path)
    ports: dict = {}  # Docker clears them when the container stops (and has none before it first starts)
    if running:
        for port in (c.record["Config"].get("ExposedPorts") or {}):
            ports[port if "/" in port else f"{port}/tcp"] = None
        for key in host.get("PortBindings") or {}:
            ports.setdefault(key, None)
    if active:
        rows = prefetched.mappings.get(c.id, []) if prefetched is not None else engine.db.query(
            "SELECT * FROM port_mappings WHERE container_id = ? ORDER BY rowid", (c.id,))
        for r in rows:
            key = f"{r['container_port']}/{r['proto']}"
            ports[key] = (ports.get(key) or []) + [{"HostIp": r["host_ip"], "HostPort": str(r["host_port"])}]
    # dockerd before 25 adds the short ID to a user-defined network's Aliases when it connects the container (at its
    # first start, or a `network connect`, even of a container not started): a created container shows only the
    # aliases asked for, as `docker run -d` returns
    started = active or not (c.state.get("StartedAt") or "0001").startswith("0001")
    networks = {}
    top = {"EndpointID": "", "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": "",
           "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": ""}
    eps = prefetched.endpoints.get(c.id, []) if prefetched is not None else endpoints_of_container(engine.db, c.id)
    seen = prefetched.networks if prefetched is not None else {}
    for i, ep in enumerate(eps):
        net = seen.get(ep["network_id"])
        if net is None:
            net = seen[ep["network_id"]] = engine.networks.by_id(ep["network_id"])
        rec = ep["record"]
        aliases = list(rec.get("Aliases") or [])  # the short ID once, even when it was asked for too (as dockerd)
        if not net.is_default and (started or rec.get("_ShortIDAlias")) and c.id[:12] not in aliases:
            aliases.append(c.id[:12])
        entry = {"IPAMConfig": rec.get("IPAMConfig"), "Links": rec.get("Links"), "Aliases": aliases or None,
                 "NetworkID": net.id, "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
                 "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": "",
                 "DriverOpts": rec.get("DriverOpts") or None}
        if active:
            entry.update({"EndpointID": ep["id"], "Gateway": net.gateway_text, "IPAddress": ep["ip"],
                          "IPPrefixLen": net.subnet.prefixlen, "MacAddress": ep["mac"]})
        elif rec.get("MacAddress"):  # one asked for is shown before the start and after the stop (Docker 25)
            entry["MacAddress"] = rec["MacAddress"]
        networks[net.name] = entry
        if net.is_default or (i == 0 and mode == "bridge"):
            top.update({k: entry[k] for k in top if k in entry})
    if not eps and mode in ("host", "none"):
        networks[mode] = {"IPAMConfig": None, "Links": None, "Aliases": None,
                          "NetworkID": engine.networks.get(mode).id, "EndpointID": "", "Gateway": "",
                          "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
                          "GlobalIPv6PrefixLen": 0, "MacAddress": "", "DriverOpts": None}
    # Docker keeps a stopped container's sandbox ID and key (they are made again at the next start)
    sandboxed = started and bool(eps)
    return {"Bridge": "", "SandboxID": c.id if sandboxed else "", "HairpinMode": False, "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0, "Ports": ports, "SandboxKey": str(path) if sandboxed else "",
            "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None, **top, "Networks": networks}


def _event(engine, net, action: str, container_id: str | None = None) -> None:
    try:
        from barque.container.events import record

        attrs = {"name": net.name, "type": net.driver}
        if container_id:
            attrs["container"] = container_id
        record(engine.settings.root, "network", action, net.id, attrs)
    except Exception as e:  # noqa: BLE001 - an event is a report
        log.debug("network event: %s", e)
