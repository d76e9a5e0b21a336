"""A container's usage as the Engine API's stats JSON (Docker's types.StatsJSON): what `docker stats` and SDKs
read and reduce themselves (CPU % from `cpu_stats` against `precpu_stats`, memory without the inactive file cache,
network and block I/O sums).

The numbers are the ones barque.container.stats reads for `barque stats` (the cgroup through CgroupManager.stats,
/proc/stat, the network namespace's /proc/<pid>/net/dev), laid out as dockerd lays them out; a container that
does not run gets dockerd's empty shape (zero times, `read` at Go's zero time).
"""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["docker_stats", "empty_stats", "ZERO_TIME", "interfaces"]

#: Go's zero time.Time in JSON: what dockerd says for a `read` that never happened
ZERO_TIME = "0001-01-01T00:00:00Z"
_BLKIO_KEYS = ("io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive",
               "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive", "io_time_recursive",
               "sectors_recursive")


def _now() -> str:
    from barque.container.archive import go_time

    return go_time(time.time_ns())


def _zero_cpu() -> dict:
    return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def empty_stats(c, prev: dict | None = None) -> dict:
    """dockerd's answer for a container that does not run."""
    return {"read": ZERO_TIME, "preread": (prev or {}).get("read", ZERO_TIME), "pids_stats": {},
            "blkio_stats": {k: None for k in _BLKIO_KEYS}, "num_procs": 0, "storage_stats": {},
            "cpu_stats": _zero_cpu(), "precpu_stats": (prev or {}).get("cpu_stats") or _zero_cpu(),
            "memory_stats": {}, "name": "/" + c.name, "id": c.id}


def interfaces(pid: int, proc: Path = Path("/proc")) -> dict:
    """Docker's `networks`: every interface but loopback in `pid`'s network namespace, with its counters."""
    out: dict = {}
    try:
        text = (proc / str(pid) / "net" / "dev").read_text()
    except OSError:
        return out
    for line in text.splitlines()[2:]:
        name, _, counters = line.partition(":")
        name = name.strip()
        fields = counters.split()
        if name == "lo" or len(fields) < 12:
            continue
        n = [int(x) for x in fields]
        out[name] = {"rx_bytes": n[0], "rx_packets": n[1], "rx_errors": n[2], "rx_dropped": n[3],
                     "tx_bytes": n[8], "tx_packets": n[9], "tx_errors": n[10], "tx_dropped": n[11]}
    return out


def docker_stats(c, runtime_root: Path, prev: dict | None = None, *, proc: Path = Path("/proc")) -> dict:
    """One stats reading of `c`, `prev` (the reading before, if any) giving `preread` and `precpu_stats`."""
    from barque.cgroups import CgroupManager
    from barque.container.stats import _cgroup_path, host_cpu, host_memory
    from barque.errors import NotFound

    state = c.refresh()
    if state.get("Status") not in ("running", "paused") or not state.get("Pid"):
        return empty_stats(c, prev)
    try:
        manager = CgroupManager(_cgroup_path(runtime_root, c.id))
        raw = manager.stats()
    except NotFound:
        return empty_stats(c, prev)
    read = _now()
    system, online = host_cpu(proc)
    cpu = raw.get("cpu") or {}
    usage = {"total_usage": cpu.get("usage_total", 0)}
    if cpu.get("percpu"):
        usage["percpu_usage"] = cpu["percpu"]
    usage["usage_in_kernelmode"] = cpu.get("usage_system", 0)
    usage["usage_in_usermode"] = cpu.get("usage_user", 0)
    cpu_stats = {"cpu_usage": usage, "system_cpu_usage": system, "online_cpus": online,
                 "throttling_data": cpu.get("throttling") or {"periods": 0, "throttled_periods": 0,
                                                               "throttled_time": 0}}
    memory = raw.get("memory") or {}
    memory_stats: dict = {}
    if memory:
        limit = memory.get("limit")
        host_mem = host_memory(proc)
        if not limit or (host_mem and limit > host_mem):
            limit = host_mem
        memory_stats = {"usage": memory.get("usage") or 0}
        if memory.get("max_usage") is not None:
            memory_stats["max_usage"] = memory["max_usage"]
        memory_stats["stats"] = memory.get("stats") or {}
        if memory.get("failcnt"):
            memory_stats["failcnt"] = memory["failcnt"]
        memory_stats["limit"] = limit or 0
    pids = raw.get("pids") or {}
    pids_stats = {"current": pids.get("current") if pids.get("current") is not None else len(manager.pids())}
    if pids.get("limit"):
        pids_stats["limit"] = pids["limit"]
    blkio = raw.get("blkio") or {}
    out = {
        "read": read,
        "preread": (prev or {}).get("read") or ZERO_TIME,
        "pids_stats": pids_stats,
        "blkio_stats": {k: list(blkio.get(k) or []) for k in _BLKIO_KEYS},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_stats,
        "precpu_stats": (prev or {}).get("cpu_stats") or _zero_cpu(),
        "memory_stats": memory_stats,
        "name": "/" + c.name,
        "id": c.id,
    }
    if (c.record.get("HostConfig") or {}).get("NetworkMode") != "host":
        out["networks"] = interfaces(state["Pid"], proc)
    return out
