"""A container's place on its networks, in three moments — Docker's sandbox and endpoints:

- `join_at_create`: inside create's transaction, an endpoint (address and MAC) on each network the create body
  names (`NetworkMode`, plus any other `NetworkingConfig.EndpointsConfig` entry), with its aliases and static
  address; links are checked and remembered by ID.
- `enter` at start: a network namespace held at `<run root>/netns/<id>`, a veth pair per endpoint (eth0 on the
  first network carries the default route, unless that network is internal), the published ports recorded, the
  rules applied, the embedded DNS server told (user-defined networks), /etc/hosts and resolv.conf written.
  Anything failing undoes what was made.
- `leave` when it stops (the monitor's finisher, `rm`, a failed start): its DNS sockets, veths, published ports and
  namespace go, the rules are applied again. Safe to call twice and after a crash.
- `release` at `rm`: its endpoints (addresses) are freed.
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

from barque.errors import Conflict, InvalidArgument, NotFound

__all__ = ["join_at_create", "enter", "leave", "release", "uses_bridge", "veth_name", "DNS_ADDRESS"]

log = logging.getLogger(__name__)
DNS_ADDRESS = "127.0.0.11"


def _mode(host: dict) -> str:
    mode = host.get("NetworkMode") or "default"
    return "bridge" if mode == "default" else mode


def uses_bridge(host: dict) -> bool:
    mode = _mode(host)
    return mode not in ("host", "none") and not mode.startswith("container:")


def veth_name(endpoint_id: str) -> str:
    return "veth" + endpoint_id[:7]


# ---- create ---------------------------------------------------------------------------------------------------------

def join_at_create(engine, conn, record: dict, networking: dict | None) -> None:
    host = record["HostConfig"]
    cid = record["Id"]
    mode = _mode(host)
    endpoints = dict((networking or {}).get("EndpointsConfig") or {})
    if not uses_bridge(host):
        if mode in ("host", "none") and any(k not in (mode, "default") for k in endpoints):
            raise InvalidArgument("container cannot be disconnected from host network or connected to host "
                                  "network" if mode == "host" else "container sharing network namespace with "
                                  "another container or host cannot be connected to any other network")
        if mode.startswith("container:"):  # Docker's checks; with host or none, published ports are discarded
            if host.get("PortBindings") or host.get("PublishAllPorts"):
                raise InvalidArgument("conflicting options: port publishing and the container type network mode")
            if host.get("Links"):
                raise InvalidArgument("conflicting options: container type network can't be used with links. "
                                      "This would result in undefined behavior")
        return
    store = engine.networks
    first = store.get(mode, conn)
    if first.driver == "host" or first.driver == "null":
        return
    # docker 25+'s CLI names the default network "default" in EndpointsConfig when no --network is given
    order = [(first, endpoints.get(mode) or endpoints.get(first.name) or endpoints.get(first.id)
              or endpoints.get("default") or {})]
    for key, cfg in endpoints.items():
        if key == "default":
            continue
        net = store.get(key, conn)
        if net.id != first.id:
            if not net.is_bridge:
                raise InvalidArgument(f"container cannot be connected to network {net.name} and {first.name}")
            order.append((net, cfg or {}))
    links = {}
    for spec in host.get("Links") or []:
        name, _, alias = spec.partition(":")
        name = name.lstrip("/")
        row = conn.execute("SELECT id FROM containers WHERE name = ? OR id = ?", (name, name)).fetchone()
        if row is None:
            raise NotFound(f"could not get container for {name}")
        links[spec] = row[0]
    record.setdefault("_barque", {})["links"] = links
    from barque.network.ipam import attach

    for net, cfg in order:
        ipam_cfg = cfg.get("IPAMConfig") or {}
        aliases = list(cfg.get("Aliases") or [])
        if net.is_default:
            if aliases:
                raise InvalidArgument("network-scoped alias is supported only for containers in user defined "
                                      "networks")
            if ipam_cfg.get("IPv4Address"):
                raise InvalidArgument("user specified IP address is supported on user defined networks only")
        attach(conn, net, cid, ip=ipam_cfg.get("IPv4Address") or None, aliases=aliases,
               links=cfg.get("Links") or None, mac=cfg.get("MacAddress") or None,
               link_local=ipam_cfg.get("LinkLocalIPs") or None, driver_opts=cfg.get("DriverOpts") or None)


def release(engine, cid: str) -> None:
    from barque.network.ipam import detach

    with engine.db.transaction() as conn:
        detach(conn, None, cid)
        conn.execute("DELETE FROM port_mappings WHERE container_id = ?", (cid,))


# ---- start ----------------------------------------------------------------------------------------------------------

def start_guard(run_root, cid: str) -> int:
    """Held (an flock) by a `start` from before its namespace is made until the container runs or the start failed:
    a sweep for stale namespaces, in another process, must not take a namespace whose container is still being
    started ("created" all that time). Close the returned descriptor to release it."""
    import fcntl
    import os

    d = Path(run_root) / "starting"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(d / cid, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def end_guard(run_root, cid: str, fd: int) -> None:
    import os

    try:
        os.unlink(Path(run_root) / "starting" / cid)
    except FileNotFoundError:
        pass
    os.close(fd)


def start_in_progress(run_root, cid: str) -> bool:
    import fcntl
    import os

    try:
        fd = os.open(Path(run_root) / "starting" / cid, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def enter(engine, c) -> Path | None:
    """Make the container's network namespace and plug it into its networks: the path for its OCI config
    (None: the runtime makes a namespace, or the container shares the host's or another's)."""
    from barque.network import netns
    from barque.network.ipam import endpoints_of_container
    from barque.network.rules import affects_rules, apply_rules, netns_path, network_lock

    host = c.record["HostConfig"]
    mode = _mode(host)
    if mode.startswith("container:"):
        return _other_namespace(engine, mode.split(":", 1)[1])
    if not uses_bridge(host):
        return None
    eps = endpoints_of_container(engine.db, c.id)
    if not eps:
        return None  # created before barque had networking: a namespace of its own with loopback only
    _check_links(engine, c)
    run_root = Path(engine.settings.run_root)
    path = netns_path(run_root, c.id)
    with network_lock(run_root):
        from barque.network.reconcile import sweep_stale_namespaces

        sweep_stale_namespaces(engine)  # containers that died without their monitor's clean-up (a crash)
        if path.exists():
            _leave_locked(engine.settings.root, run_root, c.id, engine=engine)
        nets = [engine.networks.by_id(ep["network_id"]) for ep in eps]
        netns.create(path)
        try:
            bridge_made = _plug_all(engine, path, eps, nets)
            published = _publish(engine, c, eps[0], nets[0])
            if bridge_made or affects_rules(engine, c.id):
                apply_rules(engine)
        except BaseException:
            _leave_locked(engine.settings.root, run_root, c.id, engine=engine)
            raise
    try:
        if any(n.dns for n in nets):
            from barque.network import dns

            dns.attach(Path(engine.settings.root), run_root, c.id, path, dns.upstreams_for(c.record["HostConfig"]))
        write_hosts(engine, c, eps, nets)
        write_resolv_conf(c, any(n.dns for n in nets))
        c.private["link_env"] = _link_env(engine, c, eps[0]["network_id"])  # for the OCI config; not recorded
    except BaseException:
        leave(engine.settings.root, run_root, c.id, engine=engine)
        raise
    log.debug("container %s on %s, published %s", c.id[:12], [n.name for n in nets], published)
    return path


def _check_links(engine, c) -> None:
    """Docker refuses to start a container whose link target is gone or not running."""
    for spec, target_id in ((c.record.get("_barque") or {}).get("links") or {}).items():
        name, _, alias = spec.partition(":")
        name = name.lstrip("/")
        try:
            target = engine.containers.get(target_id)
        except NotFound:
            raise NotFound(f"could not get container for {name}") from None
        if target.refresh().get("Status") not in ("running", "paused", "restarting"):
            raise Conflict(f"Cannot link to a non running container: /{target.name} AS /{c.name}/{alias or name}")


def _link_env(engine, c, network_id: str) -> list[str]:
    """Docker's link variables for each `--link` whose target is on the container's first network."""
    import json

    from barque.network.linkenv import link_env

    out: list[str] = []
    for spec, target_id in ((c.record.get("_barque") or {}).get("links") or {}).items():
        name, _, alias = spec.partition(":")
        rows = engine.db.query("SELECT e.ip, c.record FROM endpoints e JOIN containers c ON c.id = e.container_id "
                               "WHERE e.container_id = ? AND e.network_id = ?", (target_id, network_id))
        if not rows:
            continue
        cfg = json.loads(rows[0]["record"]).get("Config") or {}
        out += link_env(alias or name, c.name, rows[0]["ip"], list((cfg.get("ExposedPorts") or {}).keys()),
                        cfg.get("Env") or [])
    return out


def _plug_all(engine, path: Path, eps: list[dict], nets: list) -> bool:
    """Veths from the container's namespace to its networks' bridges; whether a bridge had to be made (a namespace
    that had none of them has none of their rules either: they must be applied)."""
    from barque.network.links import enable_forwarding, ensure_bridge, plug
    from barque.network.rules import bridge_alias, veth_alias

    enable_forwarding()
    made = False
    for i, (ep, net) in enumerate(zip(eps, nets)):
        made |= ensure_bridge(net.bridge, ipaddress.IPv4Interface(f"{net.gateway}/{net.subnet.prefixlen}"), net.mtu,
                              alias=bridge_alias(engine, net))
        gateway = net.gateway if i == 0 and not net.internal else None
        plug(path, veth_name(ep["id"]), net.bridge, f"eth{i}",
             ipaddress.IPv4Interface(f"{ep['ip']}/{net.subnet.prefixlen}"), ep["mac"], gateway, net.mtu,
             alias=veth_alias(engine.settings.root, ep["id"]), link_local=link_local_of(ep))
    return made


def link_local_of(ep: dict) -> list[str]:
    """The endpoint's IPAMConfig.LinkLocalIPs: more addresses its interface has."""
    return list((ep["record"].get("IPAMConfig") or {}).get("LinkLocalIPs") or [])


def _publish(engine, c, ep: dict, net) -> list:
    from barque.network.ports import allocate

    bindings = dict(c.record["HostConfig"].get("PortBindings") or {})
    if c.record["HostConfig"].get("PublishAllPorts"):
        for port in (c.record["Config"].get("ExposedPorts") or {}):
            bindings.setdefault(port if "/" in port else f"{port}/tcp", [{"HostIp": "", "HostPort": ""}])
    if not bindings:
        return []
    with engine.db.transaction() as conn:
        conn.execute("DELETE FROM port_mappings WHERE container_id = ?", (c.id,))
        return allocate(conn, c.id, c.name, ep["ip"], bindings, net.host_binding)


def _other_namespace(engine, ref: str) -> Path:
    from barque.network.rules import netns_path

    other = engine.containers.get(ref)
    state = other.refresh()
    if state.get("Status") not in ("running", "paused"):
        raise Conflict(f"cannot join network of a non running container: {other.id}")
    path = netns_path(engine.settings.run_root, other.id)
    if path.exists():
        return path
    return Path(f"/proc/{state['Pid']}/ns/net")


# ---- stop -----------------------------------------------------------------------------------------------------------

def leave(root, run_root, cid: str, engine=None) -> None:
    """Undo `enter` (idempotent; a no-op for a container that never had a namespace of barque's)."""
    from barque.network.rules import netns_path, network_lock

    run_root = Path(run_root)
    if not netns_path(run_root, cid).exists():
        return  # published ports exist only while the namespace does (made after it, removed before it)
    with network_lock(run_root):
        _leave_locked(root, run_root, cid, engine=engine)


def _leave_locked(root, run_root: Path, cid: str, engine=None) -> None:
    from barque.network import netns
    from barque.network.links import delete_link
    from barque.network.rules import affects_rules, apply_rules, netns_path

    own = engine is None
    if own:
        from barque.config import Settings
        from barque.engine import Engine

        engine = Engine(Settings(root=Path(root), run_root=run_root))
    try:
        try:
            from barque.network import dns

            dns.detach(run_root, cid)
        except Exception as e:  # noqa: BLE001 - the rest must still be undone
            log.warning("embedded DNS server: %s", e)
        for ep in engine.db.query("SELECT id FROM endpoints WHERE container_id = ?", (cid,)):
            try:
                delete_link(veth_name(ep["id"]))
            except Exception as e:  # noqa: BLE001
                log.warning("could not delete %s: %s", veth_name(ep["id"]), e)
        changes_rules = affects_rules(engine, cid)
        with engine.db.transaction() as conn:  # before the namespace goes: `leave` looks only at the namespace
            conn.execute("DELETE FROM port_mappings WHERE container_id = ?", (cid,))
        netns.remove(netns_path(run_root, cid))
        if changes_rules:
            apply_rules(engine)
    finally:
        if own:
            engine.close()


# ---- /etc files -----------------------------------------------------------------------------------------------------

def write_hosts(engine, c, eps: list[dict], nets: list) -> None:
    """Docker's /etc/hosts: localhost lines, the container's own address and hostname, and its links."""
    from barque.container.create import BASE_HOSTS

    config = c.record["Config"]
    hostname = config.get("Hostname") or c.id[:12]
    if config.get("Domainname"):
        hostname = f"{hostname}.{config['Domainname']} {hostname}"
    lines = [BASE_HOSTS.rstrip("\n")]
    lines += extra_hosts_lines(engine, c.record["HostConfig"])
    for spec, target_id in ((c.record.get("_barque") or {}).get("links") or {}).items():
        name, _, alias = spec.partition(":")
        name = name.lstrip("/")
        rows = engine.db.query("SELECT e.ip, c.name FROM endpoints e JOIN containers c ON c.id = e.container_id "
                               "WHERE e.container_id = ? AND e.network_id = ?", (target_id, eps[0]["network_id"]))
        if rows:
            names = [alias or name, target_id[:12], rows[0]["name"]]
            lines.append(f"{rows[0]['ip']}\t" + " ".join(dict.fromkeys(names)))
    lines.append(f"{eps[0]['ip']}\t{hostname}")
    _write(c.dir / "hosts", "\n".join(lines) + "\n")


def extra_hosts_lines(engine, host: dict) -> list[str]:
    """`--add-host NAME:IP` entries; `host-gateway` stands for the default bridge's gateway, as in Docker."""
    out = []
    for spec in host.get("ExtraHosts") or []:
        name, sep, addr = spec.partition(":")
        if not sep:
            name, _, addr = spec.partition("=")
        if addr == "host-gateway":
            addr = str(engine.networks.default_bridge().gateway)
        out.append(f"{addr}\t{name}")
    return out


def write_resolv_conf(c, embedded_dns: bool) -> None:
    from barque.container.create import resolv_conf

    text = resolv_conf(c.record["HostConfig"])
    if embedded_dns:
        # Docker's: the embedded server answers, and forwards the rest to the resolvers above
        keep = [line for line in text.splitlines() if line.startswith(("search", "domain"))]
        options = [line for line in text.splitlines() if line.startswith("options")]
        opts = " ".join(o.split(None, 1)[1] for o in options if len(o.split()) > 1)
        text = "\n".join([*keep, f"nameserver {DNS_ADDRESS}",
                          "options " + (" ".join(dict.fromkeys(["ndots:0", *opts.split()])))]) + "\n"
    _write(c.dir / "resolv.conf", text)


def _write(path: Path, text: str) -> None:
    """In place: the file is bind-mounted into a container that may already run (a restart), so its inode stays."""
    with open(path, "r+" if path.exists() else "w") as f:
        f.write(text)
        f.truncate()


# ---- a build step's network -----------------------------------------------------------------------------------------

TRANSIENT_PREFIX = "build-"


def transient_key(step_id: str) -> str:
    """The endpoint owner and namespace name of a build step's RUN: it names the building process, so a sweep can
    tell a live build's namespace from a dead one's (no container record exists for it)."""
    import os

    return f"{TRANSIENT_PREFIX}{os.getpid()}-{step_id[:24]}"


def transient_alive(key: str) -> bool:
    import os

    try:
        pid = int(key[len(TRANSIENT_PREFIX):].split("-", 1)[0])
    except ValueError:
        return False
    return os.path.exists(f"/proc/{pid}")


class transient:
    """`with transient(engine, step_id) as path:` a namespace on the default bridge for one RUN of a build (Docker's
    builder gives RUN the default network, or the bridge network `network` the build names — then the embedded DNS
    server answers it, as for a container there): an address, a veth, masquerade; all gone on exit."""

    def __init__(self, engine, step_id: str, hosts_file: Path | None = None, hostname: str = "",
                 network=None) -> None:
        self.engine = engine
        self.hostname = hostname or step_id[:12]
        self.key = transient_key(step_id)
        self.hosts_file = hosts_file
        self.network = network
        self.path: Path | None = None

    def __enter__(self) -> Path:
        from barque.network import netns
        from barque.network.ipam import attach, endpoints_of_container
        from barque.network.rules import apply_rules, netns_path, network_lock

        engine = self.engine
        engine.networks.ensure_defaults()
        net = self.network or engine.networks.default_bridge()
        with engine.db.transaction() as conn:
            attach(conn, net, self.key)
        run_root = Path(engine.settings.run_root)
        path = netns_path(run_root, self.key)
        try:
            with network_lock(run_root):
                netns.create(path)
                self.path = path
                eps = endpoints_of_container(engine.db, self.key)
                _plug_all(engine, path, eps, [net])
                apply_rules(engine)
            if net.dns:
                from barque.network import dns

                dns.attach(Path(engine.settings.root), run_root, self.key, path, dns.upstreams_for({}))
            if self.hosts_file is not None:
                with open(self.hosts_file, "a") as f:
                    f.write(f"{eps[0]['ip']}\t{self.hostname}\n")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return path

    def __exit__(self, *exc) -> None:
        from barque.network.rules import network_lock

        run_root = Path(self.engine.settings.run_root)
        if self.path is not None:
            with network_lock(run_root):
                _leave_locked(self.engine.settings.root, run_root, self.key, engine=self.engine)
        release(self.engine, self.key)
