"""What `info` and `system df` report (the CLI prints it, the API returns it as Docker's JSON)."""

from __future__ import annotations

import json
import os
import platform

from barque import __version__
from barque.container.create import DEFAULT_RUNTIME, RUNTIMES

__all__ = ["system_info", "disk_usage"]


def system_info(engine) -> dict:
    from barque.linux.mountinfo import fs_type

    images = engine.images.list()
    statuses = [c.status for c in engine.containers.list()]
    running = sum(s in ("running", "restarting") for s in statuses)
    paused = statuses.count("paused")
    return {
        "ID": "",
        "Containers": len(statuses),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": len(statuses) - running - paused,
        "Images": len(images),
        "Driver": engine.driver_name,
        "DriverStatus": [["Backing Filesystem", fs_type(engine.root)]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "none"], "Log": ["json-file", "local"]},
        "MemoryLimit": True,
        "SwapLimit": True,
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1",
        "KernelVersion": platform.release(),
        "OperatingSystem": _os_release("PRETTY_NAME", "Linux"),
        "OSType": "linux",
        "Architecture": platform.machine(),
        "NCPU": os.cpu_count(),
        "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "DockerRootDir": str(engine.root),
        "Name": platform.node(),
        "ServerVersion": __version__,
        "DefaultRuntime": DEFAULT_RUNTIME,
        "SecurityOptions": ["name=seccomp,profile=builtin"],
    }


def _os_release(key: str, default: str = "") -> str:
    """A value of /etc/os-release (PRETTY_NAME, VERSION_ID…)."""
    try:
        for line in open("/etc/os-release"):
            if line.startswith(key + "="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return default


def disk_usage(engine) -> dict:
    from barque.images.gc import used_chains

    images = engine.images.list()
    in_use = {r["image_id"] for r in engine.db.query("SELECT image_id FROM containers")}
    layers = {r["chain_id"]: r["size"] for r in engine.db.query("SELECT chain_id, size FROM layers")}
    used = used_chains(engine)
    total = sum(layers.get(c, 0) for c in used)
    active_images = [i for i in images if str(i.id) in in_use]
    active_chains: set[str] = set()
    if active_images:
        from barque.images.unpack import chain_ids
        from barque.oci.digest import Digest

        for img in active_images:
            config = json.loads(engine.content.read(img.id))
            active_chains.update(str(c) for c in chain_ids([Digest.parse(d) for d in config["rootfs"]["diff_ids"]]))
    reclaimable = total - sum(layers.get(c, 0) for c in active_chains)
    return {
        "Images": {"TotalCount": len(images), "Active": len(active_images), "Size": total,
                   "Reclaimable": reclaimable},
        "Containers": _df_containers(engine),
        "Volumes": _df_volumes(engine),
        "BuildCache": cache_usage(engine),
    }


def cache_usage(engine) -> dict:
    from barque.build.prune import cache_usage as usage

    return usage(engine)


def _usage(items) -> dict:
    """`system df`'s row from (bytes, in use) pairs: what is not in use is reclaimable."""
    total = active = size = reclaimable = 0
    for used_bytes, in_use in items:
        total += 1
        size += used_bytes
        active += bool(in_use)
        reclaimable += 0 if in_use else used_bytes
    return {"TotalCount": total, "Active": active, "Size": size, "Reclaimable": reclaimable}


def _report_size(measure) -> int:
    try:
        return measure()
    except Exception:  # noqa: BLE001 - a report only
        return 0


def _df_containers(engine) -> dict:
    return _usage((_report_size(lambda: engine.snapshotter.usage(c.private["snapshot"]).size), c.running)
                  for c in engine.containers.list())


def _df_volumes(engine) -> dict:
    used = engine.volumes.used()
    return _usage((_report_size(lambda: engine.volumes.usage(v["Name"])), used.get(v["Name"]))
                  for v in engine.volumes.list())


# ---- the Engine API's shapes ----------------------------------------------------------------------------------

def engine_id(engine) -> str:
    """A stable ID for this engine (Docker's is a UUID kept in the data root): derived from the machine's ID and
    the root, so it is the same on every call and differs between roots."""
    import uuid

    try:
        machine = open("/etc/machine-id").read().strip()
    except OSError:
        machine = platform.node()
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"barque://{machine}{os.path.abspath(str(engine.root))}")).upper()


def cgroup_features() -> dict:
    """What the host's cgroups can limit, as Docker's SystemInfo reports it (from the mounted hierarchies)."""
    from barque.cgroups._detect import discover, mode_of

    try:
        hierarchies = discover()
    except Exception:  # noqa: BLE001 - a report only
        hierarchies = []
    v2 = next((h for h in hierarchies if h.version == 2 and h.controllers), None)
    mode = mode_of(hierarchies) if hierarchies else "v1"
    if mode == "v2" and v2 is not None:
        ctl = v2.controllers
        return {"CgroupVersion": "2", "MemoryLimit": "memory" in ctl, "SwapLimit": "memory" in ctl,
                "KernelMemoryTCP": False, "CpuCfsPeriod": "cpu" in ctl, "CpuCfsQuota": "cpu" in ctl,
                "CPUShares": "cpu" in ctl, "CPUSet": "cpuset" in ctl, "PidsLimit": "pids" in ctl,
                "OomKillDisable": False}

    def v1(controller: str, name: str) -> bool:
        for h in hierarchies:
            if h.version == 1 and controller in h.controllers:
                return (h.mount_point / name).exists()
        return False

    return {"CgroupVersion": "1", "MemoryLimit": v1("memory", "memory.limit_in_bytes"),
            "SwapLimit": v1("memory", "memory.memsw.limit_in_bytes"),
            "KernelMemoryTCP": v1("memory", "memory.kmem.tcp.limit_in_bytes"),
            "CpuCfsPeriod": v1("cpu", "cpu.cfs_period_us"), "CpuCfsQuota": v1("cpu", "cpu.cfs_quota_us"),
            "CPUShares": v1("cpu", "cpu.shares"), "CPUSet": v1("cpuset", "cpuset.cpus"),
            "PidsLimit": v1("pids", "pids.max") or any(h.version == 1 and "pids" in h.controllers
                                                       for h in hierarchies),
            "OomKillDisable": v1("memory", "memory.oom_control")}


def _sysctl(name: str) -> bool:
    try:
        return open(f"/proc/sys/{name.replace('.', '/')}").read().strip() == "1"
    except OSError:
        return False


def _registry_config() -> dict:
    """Docker's RegistryConfig from barque's registries file (insecure registries, mirrors)."""
    import ipaddress

    try:
        from barque.registry.client.hosts import load_hosts_config

        hosts = load_hosts_config()
        insecure, mirrors = list(hosts.insecure), list(hosts.hub_mirrors)
    except Exception:  # noqa: BLE001 - a broken file is reported where it is used
        insecure, mirrors = [], []
    cidrs, names = ["127.0.0.0/8", "::1/128"], []
    for entry in insecure:
        try:
            net = str(ipaddress.ip_network(entry, strict=False))
            if net not in cidrs:
                cidrs.append(net)
        except ValueError:
            names.append(entry)
    configs = {"docker.io": {"Name": "docker.io", "Mirrors": mirrors, "Secure": True, "Official": True}}
    for name in names:
        configs[name] = {"Name": name, "Mirrors": [], "Secure": False, "Official": False}
    return {"AllowNondistributableArtifactsCIDRs": None, "AllowNondistributableArtifactsHostnames": None,
            "InsecureRegistryCIDRs": cidrs, "IndexConfigs": configs, "Mirrors": mirrors}


def docker_info(engine, server_version: str) -> dict:
    """Docker's SystemInfo (API 1.43): barque's own facts where it has them, the host's where Docker reports the
    host's, and the empty value where barque has no such thing (no swarm, no authorization plugins, no proxy)."""
    import threading
    import time

    from barque.container.store import now_rfc3339
    from barque.network.config import load as network_config

    base = system_info(engine)
    features = cgroup_features()
    from barque.network.config import DEFAULT_POOLS

    try:  # as dockerd: the pools the configuration file sets, none when it keeps the defaults
        configured = network_config().pools
        pools = [] if tuple(configured) == tuple(DEFAULT_POOLS) else [{"Base": p["base"], "Size": p["size"]}
                                                                      for p in configured]
    except Exception:  # noqa: BLE001 - a report only
        pools = []
    try:
        nfd = len(os.listdir("/proc/self/fd"))
    except OSError:
        nfd = 0
    warnings = []
    if not features["SwapLimit"]:
        warnings.append("WARNING: No swap limit support")
    if not _sysctl("net.ipv4.ip_forward"):
        warnings.append("WARNING: IPv4 forwarding is disabled")
    info = {
        "ID": engine_id(engine),
        "Containers": base["Containers"], "ContainersRunning": base["ContainersRunning"],
        "ContainersPaused": base["ContainersPaused"], "ContainersStopped": base["ContainersStopped"],
        "Images": base["Images"],
        "Driver": base["Driver"], "DriverStatus": base["DriverStatus"],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Authorization": None,
                    "Log": ["json-file", "local", "none"]},
        "MemoryLimit": features["MemoryLimit"], "SwapLimit": features["SwapLimit"],
        "KernelMemoryTCP": features["KernelMemoryTCP"], "CpuCfsPeriod": features["CpuCfsPeriod"],
        "CpuCfsQuota": features["CpuCfsQuota"], "CPUShares": features["CPUShares"], "CPUSet": features["CPUSet"],
        "PidsLimit": features["PidsLimit"], "OomKillDisable": features["OomKillDisable"],
        "IPv4Forwarding": _sysctl("net.ipv4.ip_forward"),
        "BridgeNfIptables": _sysctl("net.bridge.bridge-nf-call-iptables"),
        "BridgeNfIp6tables": _sysctl("net.bridge.bridge-nf-call-ip6tables"),
        "Debug": False,
        "NFd": nfd,
        "NGoroutines": threading.active_count(),
        "SystemTime": now_rfc3339(time.time()),
        "LoggingDriver": "json-file",
        "CgroupDriver": base["CgroupDriver"],
        "CgroupVersion": features["CgroupVersion"],
        "NEventsListener": 0,
        "KernelVersion": base["KernelVersion"],
        "OperatingSystem": base["OperatingSystem"],
        "OSVersion": _os_release("VERSION_ID"),
        "OSType": "linux",
        "Architecture": base["Architecture"],
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": _registry_config(),
        "NCPU": base["NCPU"],
        "MemTotal": base["MemTotal"],
        "GenericResources": None,
        "DockerRootDir": base["DockerRootDir"],
        "HttpProxy": os.environ.get("HTTP_PROXY") or os.environ.get("http_proxy") or "",
        "HttpsProxy": os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy") or "",
        "NoProxy": os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or "",
        "Name": base["Name"],
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": server_version,
        # barque's one runtime, under Docker's default name (what containers' HostConfig.Runtime says) and its own
        "Runtimes": {name: {"path": "barque-runtime"} for name in RUNTIMES},
        "DefaultRuntime": base["DefaultRuntime"],
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                  "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": False,
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": base["SecurityOptions"],
        "DefaultAddressPools": pools,
        "Warnings": warnings or None,
    }
    return info


def _familiar(names) -> list[str]:
    from barque.oci.reference import parse_reference

    out = []
    for n in names:
        try:
            out.append(parse_reference(n).familiar())
        except Exception:  # noqa: BLE001 - shown as stored
            out.append(n)
    return out


def _image_chains(engine, image) -> list[str]:
    from barque.images.unpack import chain_ids
    from barque.oci.digest import Digest

    try:
        config = json.loads(engine.content.read(image.id))
    except Exception:  # noqa: BLE001 - an image whose config is gone has no layers to count
        return []
    return [str(c) for c in chain_ids([Digest.parse(d) for d in (config.get("rootfs") or {}).get("diff_ids") or []])]


def df_images(engine) -> tuple[int, list[dict]]:
    """(LayersSize, Docker's ImageSummary of every image with Size, SharedSize — bytes of layers another image also
    has — and Containers, the number of containers made from it)."""
    from barque.images.gc import used_chains
    from barque.oci.times import parse_time

    layers = {r["chain_id"]: r["size"] for r in engine.db.query("SELECT chain_id, size FROM layers")}
    images = engine.images.list()
    chains = {str(i.id): _image_chains(engine, i) for i in images}
    holders: dict[str, int] = {}
    for cs in chains.values():
        for c in set(cs):
            holders[c] = holders.get(c, 0) + 1
    users: dict[str, int] = {}
    for r in engine.db.query("SELECT image_id FROM containers"):
        users[r["image_id"]] = users.get(r["image_id"], 0) + 1
    out = []
    for i in images:
        cs = chains[str(i.id)]
        size = sum(layers.get(c, 0) for c in cs) if cs and all(c in layers for c in cs) else i.size
        shared = sum(layers.get(c, 0) for c in set(cs) if holders.get(c, 0) > 1)
        try:
            labels = (json.loads(engine.content.read(i.id)).get("config") or {}).get("Labels")
        except Exception:  # noqa: BLE001
            labels = None
        out.append({"Containers": users.get(str(i.id), 0), "Created": int(parse_time(i.created) or 0),
                    "Id": str(i.id), "Labels": labels or None, "ParentId": i.parent or "",
                    "RepoDigests": _familiar(i.digests) or None, "RepoTags": _familiar(i.tags) or None,
                    "SharedSize": shared, "Size": size, "VirtualSize": size})
    layers_size = sum(layers.get(c, 0) for c in used_chains(engine))
    return layers_size, out


def df_volumes(engine) -> list[dict]:
    """Every volume's inspect with Docker's UsageData: bytes, and how many containers use it."""
    used = engine.volumes.used()
    out = []
    for v in engine.volumes.list():
        size = _report_size(lambda: engine.volumes.usage(v["Name"]))
        out.append({**v, "UsageData": {"RefCount": len(used.get(v["Name"]) or []), "Size": size}})
    return out


def df_build_cache(engine) -> list[dict]:
    """Docker's BuildCache records, one per cache entry: the bytes of the layers only the cache keeps, each layer
    counted once (with the oldest entry that has it), so the sizes add up to `system df`'s Build Cache row."""
    from barque.build.cache import BuildCache
    from barque.container.store import now_rfc3339

    entries = BuildCache(engine).entries()
    if not entries:
        return []
    from barque.build.prune import _chains, _image_chains as image_layers

    images = image_layers(engine)
    layers = {r["chain_id"]: r["size"] for r in engine.db.query("SELECT chain_id, size FROM layers")}
    by_config = {str(e.config): e.key for e in entries}  # a step's parent is the state (config) it started from
    counted: set[str] = set()
    out = []
    for e in entries:
        mine = [c for c in _chains(engine, e.config) if c not in images and c not in counted]
        counted.update(mine)
        parent = by_config.get(e.parent, "")
        out.append({"ID": e.key[:25], "Parent": parent[:25], "Parents": [parent[:25]] if parent else None,
                    "Type": "regular", "Description": e.description, "InUse": False, "Shared": False,
                    "Size": sum(layers.get(c, 0) for c in mine), "CreatedAt": now_rfc3339(e.created),
                    "LastUsedAt": now_rfc3339(e.last_used), "UsageCount": 0})
    return out
