"""`create`: a container record from Docker's create body (the JSON of `POST /containers/create`, which the CLI's
flags are turned into), with its writable snapshot and its own /etc files — nothing runs yet.

The image's config is merged as dockerd merges it: the image's Cmd is used only when neither Cmd nor Entrypoint is
given, Env merges by name, labels merge, the healthcheck merges field by field, WorkingDir/User/StopSignal fill in
when not given, volumes and exposed ports add up. Everything is checked before anything is made; what is made is
undone if a later step fails.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from pathlib import Path

from barque.container.events import container_event
from barque.errors import Conflict, InvalidArgument, NotFound

__all__ = ["create", "merge_config", "SNAPSHOT_PREFIX"]

log = logging.getLogger(__name__)
SNAPSHOT_PREFIX = "container-"
#: how many generated names a create tries when concurrent creates keep taking them first
NAME_ATTEMPTS = 5
#: HostConfig.Runtime: barque has one runtime, under the name Docker gives its default (which clients expect) and
#: under its own; a create without one gets the default, any other name is refused, as by dockerd
DEFAULT_RUNTIME = "runc"
RUNTIMES = (DEFAULT_RUNTIME, "barque-runtime")

BASE_HOSTS = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
          "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")


def _resolve_image(engine, ref: str):
    # Docker's create does not pull either: the CLI (`run`/`create --pull`) pulls before it comes here
    return engine.images.lookup(ref)


def merge_config(body: dict, image_cfg: dict) -> dict:
    """Docker's Config for the container: the create body's, completed from the image's."""
    from barque.container.options import effective_healthcheck, merge_env

    img = image_cfg.get("config") or {}
    cfg = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
    entry = cfg.get("Entrypoint")
    cmd = cfg.get("Cmd")
    if isinstance(entry, str):
        entry = [entry]
    if isinstance(cmd, str):
        cmd = [cmd]
    if entry is None:
        entry = img.get("Entrypoint")
        if not cmd:
            cmd = img.get("Cmd")
    elif entry == [""] or entry == []:
        entry = None  # --entrypoint "": reset the image's; the image's Cmd is not used either
    cfg["Entrypoint"] = entry or None
    cfg["Cmd"] = cmd or None
    cfg["Env"] = merge_env(list(img.get("Env") or []), list(cfg.get("Env") or []))
    cfg["Labels"] = {**(img.get("Labels") or {}), **(cfg.get("Labels") or {})}
    for key in ("User", "WorkingDir", "StopSignal"):
        if not cfg.get(key) and img.get(key):
            cfg[key] = img[key]
    cfg["Volumes"] = {**(img.get("Volumes") or {}), **(cfg.get("Volumes") or {})} or None
    cfg["ExposedPorts"] = {**(img.get("ExposedPorts") or {}), **(cfg.get("ExposedPorts") or {})} or None
    hc = effective_healthcheck(img.get("Healthcheck"), cfg.get("Healthcheck"))
    if hc:
        cfg["Healthcheck"] = hc
    else:
        cfg.pop("Healthcheck", None)
    if cfg.get("OnBuild") is None:
        cfg["OnBuild"] = None
    defaults = {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
                "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "WorkingDir": ""}
    for k, v in defaults.items():
        cfg.setdefault(k, v)
    return cfg


def _requested_mounts(host: dict) -> list[dict]:
    from barque.container.mounts import parse_tmpfs_flag, parse_volume_flag

    out = [parse_volume_flag(b) for b in host.get("Binds") or []]
    out += [copy.deepcopy(m) for m in host.get("Mounts") or []]
    for path, opts in (host.get("Tmpfs") or {}).items():
        out.append(parse_tmpfs_flag(f"{path}:{opts}" if opts else path))
    return out


def _inherited_mounts(engine, host: dict) -> list[dict]:
    from barque.container.mounts import inherit, parse_volumes_from

    out: list[dict] = []
    for spec in host.get("VolumesFrom") or []:
        ref, mode = parse_volumes_from(spec)
        out += inherit(engine.containers.get(ref).record.get("Mounts") or [], mode)
    return out


def _check_host_config(host: dict) -> None:
    from barque.container.options import parse_restart

    policy = host.get("RestartPolicy") or {}
    if policy.get("Name") and policy["Name"] != "no" and host.get("AutoRemove"):
        raise InvalidArgument("Conflicting options: --restart and --rm")
    if policy.get("Name"):
        parse_restart(policy["Name"] + (f":{policy['MaximumRetryCount']}" if policy.get("MaximumRetryCount") else ""))
    if host.get("Memory") and host["Memory"] < 6 * 1024 * 1024:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    swap = host.get("MemorySwap") or 0
    if swap > 0 and host.get("Memory") and swap < host["Memory"]:
        raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
    if swap > 0 and not host.get("Memory"):
        raise InvalidArgument("You should always set the Memory limit when using Memoryswap limit, see usage")
    if host.get("NanoCpus"):
        ncpu = os.cpu_count() or 1
        if host["NanoCpus"] > ncpu * 1_000_000_000:
            raise InvalidArgument(f"range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs "
                                  "available")
    userns = host.get("UsernsMode") or ""
    if userns not in ("", "host", "remap"):
        raise InvalidArgument(f"invalid USER mode: {userns}")
    runtime = host.get("Runtime") or DEFAULT_RUNTIME
    if runtime not in RUNTIMES:
        raise InvalidArgument(f"unknown or invalid runtime name: {runtime}")  # dockerd 23+'s words
    host["Runtime"] = runtime


def create(engine, body: dict, name: str | None = None) -> "Container":  # noqa: F821
    # under the store's shared lock, as an image load is: garbage collection (exclusive) can then neither remove
    # the image's layers between their lookup and the new snapshot on top of them, nor take that snapshot for an
    # orphan before its record exists
    with engine.lock.shared():
        return _create(engine, body, name)


def _create(engine, body: dict, name: str | None) -> "Container":  # noqa: F821
    from barque.container.logs import parse_log_config
    from barque.container.names import generate_name, validate_name
    from barque.images.unpack import chain_ids
    from barque.oci.digest import Digest

    image_ref = body.get("Image") or ""
    if not image_ref:
        raise InvalidArgument("No image specified: give an image name")
    image, _ = _resolve_image(engine, image_ref)
    image_cfg = json.loads(engine.content.read(image.id))
    host = copy.deepcopy(body.get("HostConfig") or {})
    _check_host_config(host)
    config = merge_config(body, image_cfg)
    config["Image"] = image_ref
    argv = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
    if not argv:
        raise InvalidArgument("No command specified")
    log_cfg = host.get("LogConfig") or {}
    host["LogConfig"] = parse_log_config(log_cfg.get("Type") or "json-file", dict(log_cfg.get("Config") or {}))
    host.setdefault("NetworkMode", "default")
    host.setdefault("RestartPolicy", {"Name": "no", "MaximumRetryCount": 0})
    if name:
        name = validate_name(name)
    cid = os.urandom(32).hex()  # not `secrets`: its import (hmac, random) costs every run
    while cid[:12].isdigit():  # Docker avoids all-digit short IDs: they read as numbers
        cid = os.urandom(32).hex()
    generated = not name
    if generated:
        name = generate_name(engine.containers.name_taken)
    if host["NetworkMode"] == "host" and not config.get("Hostname"):
        config["Hostname"] = os.uname().nodename
    diff_ids = [Digest.parse(d) for d in (image_cfg.get("rootfs") or {}).get("diff_ids") or []]
    top = str(chain_ids(diff_ids)[-1]) if diff_ids else None
    snap = engine.snapshotter
    if top is not None and not snap.exists(top):
        raise NotFound(f"image {image_ref} is not unpacked for storage driver {engine.driver_name}: load it again "
                       "with this driver")
    inherited = _inherited_mounts(engine, host)
    from barque.network.sandbox import extra_hosts_lines, join_at_create, uses_bridge

    extra = extra_hosts_lines(engine, host) if host.get("ExtraHosts") else []
    if uses_bridge(host):
        engine.networks.ensure_defaults()  # outside the transaction below: it may write
    networking = _with_mac_address(engine, host, body.get("NetworkingConfig"), config.get("MacAddress"))
    cdir = engine.containers.dir(cid)
    record = {
        "Id": cid, "Created": _now(), "Path": argv[0], "Args": argv[1:],
        "Image": str(image.id), "Name": "/" + name, "RestartCount": 0, "Driver": engine.driver_name,
        "Platform": "linux", "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "", "ExecIDs": None,
        "ResolvConfPath": str(cdir / "resolv.conf"), "HostnamePath": str(cdir / "hostname"),
        "HostsPath": str(cdir / "hosts"), "LogPath": str(cdir / f"{cid}-json.log")
        if host["LogConfig"]["Type"] != "none" else "",
        "Config": config, "HostConfig": host, "Mounts": [],
        "_barque": {"snapshot": SNAPSHOT_PREFIX + cid, "parent": top},
    }
    key = SNAPSHOT_PREFIX + cid
    snap.prepare(key, top)
    try:
        from barque.container.mounts import resolve

        for attempt in range(NAME_ATTEMPTS):
            try:
                # one transaction: a `volume prune` can never slip between making the volumes and recording their
                # user
                with engine.db.transaction() as conn:
                    record["Mounts"] = resolve(engine.volumes, _requested_mounts(host),
                                               list((config.get("Volumes") or {}).keys()), inherited, conn=conn)
                    join_at_create(engine, conn, record, networking)
                    c = engine.containers.add(record, conn=conn,
                                              populate=lambda d: write_etc_files(d, config, host, extra))
                break
            except Conflict:
                # a generated name another `run` took between our check and our insert: draw another
                if not generated or attempt == NAME_ATTEMPTS - 1 or not engine.containers.name_taken(name):
                    raise
                name = generate_name(engine.containers.name_taken)
                record["Name"] = "/" + name
    except BaseException:
        snap.remove(key)
        raise
    container_event(engine.settings.root, c.record, "create")
    return c


def _with_mac_address(engine, host: dict, networking: dict | None, mac: str | None) -> dict | None:
    """Config.MacAddress (API < 1.44) is the MAC of the container's endpoint on its own network (the NetworkMode's),
    as dockerd applies it — unless that endpoint's settings name one. The create body itself is left as it is."""
    from barque.network.sandbox import uses_bridge

    if not mac:
        return networking
    mode = host.get("NetworkMode") or "default"
    if mode == "host" or mode.startswith("container:"):
        raise InvalidArgument("conflicting options: mac-address and the network mode")  # dockerd's runconfig
    if not uses_bridge(host):
        return networking
    from barque.network.ipam import check_mac

    check_mac(mac)
    mode = "bridge" if mode == "default" else mode
    try:
        net = engine.networks.get(mode)
    except NotFound:
        return networking  # the join says so
    out = copy.deepcopy(networking or {})
    eps = out["EndpointsConfig"] = dict(out.get("EndpointsConfig") or {})
    key = next((k for k in (mode, net.name, net.id, "default") if k in eps), mode)
    ep = dict(eps.get(key) or {})
    if not ep.get("MacAddress"):
        ep["MacAddress"] = mac
    eps[key] = ep
    return out


def _now() -> str:
    from barque.container.store import now_rfc3339

    return now_rfc3339()


def write_etc_files(cdir: Path, config: dict, host: dict, extra_hosts: list[str] = ()) -> None:
    hostname = config.get("Hostname") or ""
    mode = host.get("NetworkMode")
    if mode == "host":
        hosts = _read("/etc/hosts") or BASE_HOSTS
    else:
        hosts = BASE_HOSTS
    (cdir / "hostname").write_text((hostname or cdir.name[:12]) + "\n")
    (cdir / "hosts").write_text(hosts + "".join(line + "\n" for line in extra_hosts))
    (cdir / "resolv.conf").write_text(resolv_conf(host))


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _daemon_dns() -> tuple[str, ...]:
    """The `dns` of barque's config file (Docker's daemon.json key), for containers without --dns."""
    from barque.network.config import load

    try:
        return load().dns
    except Exception:  # noqa: BLE001 - a broken config file is reported by the network commands, not here
        return ()


def resolv_conf(host: dict) -> str:
    """The host's resolvers, as Docker copies them; a loopback stub resolver (systemd-resolved's 127.0.0.53) cannot be
    reached from a container's network namespace, so it is replaced by the upstream servers it uses."""
    text = _read("/etc/resolv.conf") or ""
    lines = text.splitlines()
    if any(line.split()[1:2] and line.split()[1].startswith("127.") for line in lines if line.startswith("nameserver")):
        upstream = _read("/run/systemd/resolve/resolv.conf")
        if upstream:
            lines = upstream.splitlines()
        else:
            lines = [line for line in lines if not (line.startswith("nameserver") and line.split()[1:2]
                                                    and line.split()[1].startswith("127."))]
    dns = host.get("Dns") or list(_daemon_dns())
    if dns:
        lines = [line for line in lines if not line.startswith("nameserver")] + [f"nameserver {d}" for d in dns]
    if host.get("DnsSearch"):
        lines = [line for line in lines if not line.startswith("search")] + ["search " + " ".join(host["DnsSearch"])]
    if host.get("DnsOptions"):
        lines = [line for line in lines if not line.startswith("options")] + ["options " + " ".join(host["DnsOptions"])]
    return "\n".join(lines) + "\n"
