"""Docker-stats-like numbers from cgroup files of either version.

The shape is the same whatever the version: memory in bytes, CPU times in nanoseconds, unlimited as None,
block I/O as Docker's `{major, minor, op, value}` entries with lower-case ops ("read", "write", "total"…).
A section is left out when its controller is not available.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._fs import read_int, read_keyed

# v1 writes "unlimited" as the largest page-aligned counter (9223372036854771712 on 4 KiB pages)
_V1_UNLIMITED = 1 << 62


def _v1_limit(v: int | None) -> int | None:
    return None if v is None or v >= _V1_UNLIMITED else v


def memory_v1(d: Path) -> dict:
    oom = read_keyed(d / "memory.oom_control")
    return {
        "usage": read_int(d / "memory.usage_in_bytes"),
        "max_usage": read_int(d / "memory.max_usage_in_bytes"),
        "limit": _v1_limit(read_int(d / "memory.limit_in_bytes")),
        "failcnt": read_int(d / "memory.failcnt"),
        "oom_kills": oom.get("oom_kill", 0),
        "stats": read_keyed(d / "memory.stat"),
    }


def memory_v2(d: Path) -> dict:
    events = read_keyed(d / "memory.events")
    return {
        "usage": read_int(d / "memory.current"),
        "max_usage": read_int(d / "memory.peak"),
        "limit": read_int(d / "memory.max"),
        "failcnt": events.get("max", 0),
        "oom_kills": events.get("oom_kill", 0),
        "stats": read_keyed(d / "memory.stat"),
    }


def _throttling(stat: dict[str, int], scale: int, time_key: str) -> dict:
    return {
        "periods": stat.get("nr_periods", 0),
        "throttled_periods": stat.get("nr_throttled", 0),
        "throttled_time": stat.get(time_key, 0) * scale,
    }


def cpu_v1(cpuacct: Path | None, cpu: Path | None) -> dict:
    out: dict = {}
    if cpuacct is not None:
        out["usage_total"] = read_int(cpuacct / "cpuacct.usage") or 0
        user, system = read_int(cpuacct / "cpuacct.usage_user"), read_int(cpuacct / "cpuacct.usage_sys")
        if user is None or system is None:  # older kernels: only cpuacct.stat, in clock ticks
            ticks = read_keyed(cpuacct / "cpuacct.stat")
            ns_per_tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
            user, system = ticks.get("user", 0) * ns_per_tick, ticks.get("system", 0) * ns_per_tick
        out["usage_user"], out["usage_system"] = user, system
        try:
            out["percpu"] = [int(x) for x in (cpuacct / "cpuacct.usage_percpu").read_text().split()]
        except (OSError, ValueError):
            pass
    if cpu is not None:
        out["throttling"] = _throttling(read_keyed(cpu / "cpu.stat"), 1, "throttled_time")
    return out


def cpu_v2(d: Path) -> dict:
    stat = read_keyed(d / "cpu.stat")
    return {
        "usage_total": stat.get("usage_usec", 0) * 1000,
        "usage_user": stat.get("user_usec", 0) * 1000,
        "usage_system": stat.get("system_usec", 0) * 1000,
        "throttling": _throttling(stat, 1000, "throttled_usec"),
    }


def pids(d: Path) -> dict:
    return {"current": read_int(d / "pids.current") or 0, "limit": read_int(d / "pids.max")}


def _v1_blkio_entries(path: Path) -> list[dict]:
    out = []
    try:
        text = path.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or ":" not in parts[0]:
            continue  # the trailing "Total N" line sums all devices
        major, _, minor = parts[0].partition(":")
        out.append({"major": int(major), "minor": int(minor), "op": parts[1].lower(), "value": int(parts[2])})
    return out


def blkio_v1(d: Path) -> dict:
    def first(*names: str) -> list[dict]:
        for name in names:
            entries = _v1_blkio_entries(d / name)
            if entries:
                return entries
        return []

    return {
        "io_service_bytes_recursive": first("blkio.io_service_bytes_recursive",
                                            "blkio.throttle.io_service_bytes_recursive"),
        "io_serviced_recursive": first("blkio.io_serviced_recursive", "blkio.throttle.io_serviced_recursive"),
    }


def io_v2(d: Path) -> dict:
    service_bytes, serviced = [], []
    try:
        text = (d / "io.stat").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major, _, minor = parts[0].partition(":")
        kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        dev = {"major": int(major), "minor": int(minor)}
        for op, key in (("read", "rbytes"), ("write", "wbytes"), ("discard", "dbytes")):
            if key in kv:
                service_bytes.append({**dev, "op": op, "value": int(kv[key])})
        for op, key in (("read", "rios"), ("write", "wios"), ("discard", "dios")):
            if key in kv:
                serviced.append({**dev, "op": op, "value": int(kv[key])})
    return {"io_service_bytes_recursive": service_bytes, "io_serviced_recursive": serviced}
