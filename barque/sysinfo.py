"""What `info` and `system df` report (the CLI prints it, the API returns it as Docker's JSON)."""

from __future__ import annotations

import json
import os
import platform

from barque import __version__

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
        "OperatingSystem": _os_name(),
        "OSType": "linux",
        "Architecture": platform.machine(),
        "NCPU": os.cpu_count(),
        "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "DockerRootDir": str(engine.root),
        "Name": platform.node(),
        "ServerVersion": __version__,
        "DefaultRuntime": "barque-runtime",
        "SecurityOptions": ["name=seccomp,profile=builtin"],
    }


def _os_name() -> str:
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


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
