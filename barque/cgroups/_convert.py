"""The OCI spec's `linux.resources` → the cgroup files to write, for v1 and v2. Pure: no file is touched here.

v2 values follow runc's conversions (libcontainer/cgroups/utils.go and fs2/): `cpu.weight` from shares,
`cpu.max` "quota period", `memory.swap.max` = swap − limit, `io.weight` from the blkio weight, "max" for unlimited.
In hybrid mode each controller is set through whichever hierarchy holds it (see `plan`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Callable

from barque.errors import InvalidArgument

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Write:
    """One value for one file of one controller.

    `group`: consecutive writes the kernel may refuse in one order but accept in the other (memory limit vs
    memory+swap, CFS period vs quota) — a refused one is retried once after the rest of its group.
    `fallback`: another file to try when this one does not exist (blkio.weight vs blkio.bfq.weight).
    `best_effort`: a failure is logged, not raised (block I/O, network classes).
    `optional`: a missing file is silently skipped (setting "unlimited" where that accounting is compiled out).
    """

    version: int
    controller: str
    file: str
    value: str
    group: str | None = None
    fallback: "Write | None" = None
    best_effort: bool = False
    optional: bool = False


# ---- value helpers --------------------------------------------------------------------------------------------------

def _int(d: dict, key: str, where: str) -> int | None:
    v = d.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise InvalidArgument(f"linux.resources.{where}.{key}: expected an integer, got {v!r}")
    return v


def _str(d: dict, key: str, where: str) -> str | None:
    v = d.get(key)
    if v is None or v == "":
        return None
    if not isinstance(v, str):
        raise InvalidArgument(f"linux.resources.{where}.{key}: expected a string, got {v!r}")
    return v


def _section(resources: dict, key: str, kind: type = dict) -> Any:
    v = resources.get(key)
    if v is None:
        return kind()
    if not isinstance(v, kind):
        raise InvalidArgument(f"linux.resources.{key}: expected {'an object' if kind is dict else 'a list'}, "
                              f"got {type(v).__name__}")
    return v


def _max(v: int) -> str:
    return "max" if v == -1 else str(v)


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares (2…262144) → v2 cpu.weight (1…10000), as runc converts it."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """v1 blkio.weight (10…1000) → v2 io.weight (1…10000), as runc converts it."""
    if weight == 0:
        return 0
    return 1 + ((weight - 10) * 9999) // 990


def swap_to_v2(swap: int, limit: int | None) -> int | None:
    """OCI memory.swap is memory+swap (v1 memsw); v2's memory.swap.max is swap alone. -1 = unlimited, None = unset."""
    if swap == -1:
        return -1
    if swap == 0:
        # runc: 0 is "unset" — except that an unlimited memory with unset swap means unlimited swap too
        return -1 if limit == -1 else None
    if limit is None or limit in (0, -1):
        raise InvalidArgument("linux.resources.memory.swap: a swap limit needs a memory limit")
    if swap < limit:
        raise InvalidArgument(f"linux.resources.memory.swap ({swap}) must be >= memory.limit ({limit}): "
                              "it is the memory+swap total")
    return swap - limit


_PAGE_SIZE = re.compile(r"^[0-9]+[KMGT]B$")


def _page_size(entry: dict) -> str:
    size = entry.get("pageSize")
    if not isinstance(size, str) or not _PAGE_SIZE.match(size):
        raise InvalidArgument(f"linux.resources.hugepageLimits: invalid pageSize {size!r} (expected e.g. '2MB')")
    return size


def _device_num(d: dict, key: str, where: str) -> int:
    v = _int(d, key, where)
    if v is None or v < 0:
        raise InvalidArgument(f"linux.resources.{where}: {key} is required and must be >= 0, got {v!r}")
    return v


# ---- memory ---------------------------------------------------------------------------------------------------------

def _memory_common(resources: dict) -> tuple[dict, int | None, int | None, int | None, int | None]:
    m = _section(resources, "memory")
    limit = _int(m, "limit", "memory")
    swap = _int(m, "swap", "memory")
    reservation = _int(m, "reservation", "memory")
    swappiness = _int(m, "swappiness", "memory")
    for name, v in (("limit", limit), ("swap", swap), ("reservation", reservation)):
        if v is not None and v < -1:
            raise InvalidArgument(f"linux.resources.memory.{name}: {v} is negative (only -1, unlimited, is)")
    if swappiness is not None and swappiness != -1 and not 0 <= swappiness <= 100:
        raise InvalidArgument(f"linux.resources.memory.swappiness: {swappiness} is outside 0…100")
    if m.get("kernel") is not None or m.get("kernelTCP") is not None:
        log.debug("memory.kernel and memory.kernelTCP are deprecated by the kernel and ignored")
    return m, limit, swap, reservation, swappiness


def memory_v1(resources: dict) -> list[Write]:
    m, limit, swap, reservation, swappiness = _memory_common(resources)
    out = []
    if limit is not None:
        out.append(Write(1, "memory", "memory.limit_in_bytes", str(limit), group="memory"))
    if swap is not None or limit == -1:
        memsw = swap if swap not in (None, 0) else (-1 if limit == -1 else None)
        if memsw is not None:
            if memsw != -1 and limit not in (None, -1) and memsw < limit:
                raise InvalidArgument(f"linux.resources.memory.swap ({memsw}) must be >= memory.limit ({limit}): "
                                      "it is the memory+swap total")
            # without swap accounting (no memory.memsw.*) "unlimited" is already the case
            out.append(Write(1, "memory", "memory.memsw.limit_in_bytes", str(memsw), group="memory",
                             optional=memsw == -1))
    if reservation is not None:
        out.append(Write(1, "memory", "memory.soft_limit_in_bytes", str(reservation)))
    if swappiness is not None and swappiness != -1:
        out.append(Write(1, "memory", "memory.swappiness", str(swappiness)))
    if m.get("disableOOMKiller") is True:
        out.append(Write(1, "memory", "memory.oom_control", "1"))
    return out


def memory_v2(resources: dict) -> list[Write]:
    m, limit, swap, reservation, swappiness = _memory_common(resources)
    out = []
    if swap is not None or limit == -1:
        v2swap = swap_to_v2(swap or 0, limit)
        if v2swap is not None:
            out.append(Write(2, "memory", "memory.swap.max", _max(v2swap), optional=v2swap == -1))
    if limit is not None:
        out.append(Write(2, "memory", "memory.max", _max(limit)))
    if reservation is not None:
        out.append(Write(2, "memory", "memory.low", _max(reservation)))
    if swappiness is not None and swappiness != -1:
        log.warning("memory.swappiness %d ignored: cgroup v2 has no per-cgroup swappiness", swappiness)
    if m.get("disableOOMKiller") is True:
        log.warning("memory.disableOOMKiller ignored: cgroup v2 cannot disable the OOM killer for a cgroup")
    return out


# ---- cpu and cpuset -------------------------------------------------------------------------------------------------

def _cpu(resources: dict) -> dict:
    c = _section(resources, "cpu")
    for key in ("shares", "quota", "period", "realtimeRuntime", "realtimePeriod", "idle", "burst"):
        _int(c, key, "cpu")
    shares = c.get("shares")
    if shares is not None and shares != 0 and not 2 <= shares <= 262144:
        raise InvalidArgument(f"linux.resources.cpu.shares: {shares} is outside 2…262144")
    quota = c.get("quota")
    if quota is not None and quota < -1:
        raise InvalidArgument(f"linux.resources.cpu.quota: {quota} is negative (only -1, unlimited, is)")
    period = c.get("period")
    if period is not None and period < 0:
        raise InvalidArgument(f"linux.resources.cpu.period: {period} is negative")
    return c


def cpu_v1(resources: dict) -> list[Write]:
    c = _cpu(resources)
    out = []
    if c.get("shares"):
        out.append(Write(1, "cpu", "cpu.shares", str(c["shares"])))
    if c.get("period"):
        out.append(Write(1, "cpu", "cpu.cfs_period_us", str(c["period"]), group="cfs"))
    if c.get("quota"):
        out.append(Write(1, "cpu", "cpu.cfs_quota_us", str(c["quota"]), group="cfs"))
    if c.get("burst") is not None:
        out.append(Write(1, "cpu", "cpu.cfs_burst_us", str(c["burst"])))
    if c.get("realtimePeriod"):
        out.append(Write(1, "cpu", "cpu.rt_period_us", str(c["realtimePeriod"]), group="rt"))
    if c.get("realtimeRuntime") is not None and c.get("realtimeRuntime") != 0:
        out.append(Write(1, "cpu", "cpu.rt_runtime_us", str(c["realtimeRuntime"]), group="rt"))
    if c.get("idle") is not None:
        out.append(Write(1, "cpu", "cpu.idle", str(c["idle"])))
    return out


def cpu_v2(resources: dict) -> list[Write]:
    c = _cpu(resources)
    out = []
    if c.get("shares"):
        out.append(Write(2, "cpu", "cpu.weight", str(shares_to_weight(c["shares"]))))
    quota, period = c.get("quota") or 0, c.get("period") or 0
    if quota or period:
        value = str(quota) if quota > 0 else "max"
        if period:
            value += f" {period}"
        out.append(Write(2, "cpu", "cpu.max", value))
    if c.get("burst") is not None:
        out.append(Write(2, "cpu", "cpu.max.burst", str(c["burst"])))
    if c.get("realtimeRuntime") or c.get("realtimePeriod"):
        raise InvalidArgument("linux.resources.cpu.realtimeRuntime/realtimePeriod: realtime CPU limits exist only "
                              "in cgroup v1")
    if c.get("idle") is not None:
        out.append(Write(2, "cpu", "cpu.idle", str(c["idle"])))
    return out


def _cpuset(resources: dict, version: int) -> list[Write]:
    c = _section(resources, "cpu")
    out = []
    cpus, mems = _str(c, "cpus", "cpu"), _str(c, "mems", "cpu")
    if cpus is not None:
        out.append(Write(version, "cpuset", "cpuset.cpus", cpus))
    if mems is not None:
        out.append(Write(version, "cpuset", "cpuset.mems", mems))
    return out


def cpuset_v1(resources: dict) -> list[Write]:
    return _cpuset(resources, 1)


def cpuset_v2(resources: dict) -> list[Write]:
    return _cpuset(resources, 2)


# ---- pids -----------------------------------------------------------------------------------------------------------

def _pids(resources: dict, version: int) -> list[Write]:
    p = _section(resources, "pids")
    limit = _int(p, "limit", "pids")
    if limit is None:
        return []
    if limit < -1:
        raise InvalidArgument(f"linux.resources.pids.limit: {limit} is negative (only -1, unlimited, is)")
    return [Write(version, "pids", "pids.max", str(limit) if limit > 0 else "max")]


def pids_v1(resources: dict) -> list[Write]:
    return _pids(resources, 1)


def pids_v2(resources: dict) -> list[Write]:
    return _pids(resources, 2)


# ---- block I/O (best effort) ----------------------------------------------------------------------------------------

_THROTTLES = (
    ("throttleReadBpsDevice", "blkio.throttle.read_bps_device", "rbps"),
    ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device", "wbps"),
    ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device", "riops"),
    ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device", "wiops"),
)


def blkio_v1(resources: dict) -> list[Write]:
    b = _section(resources, "blockIO")
    out = []
    weight = _int(b, "weight", "blockIO")
    if weight:
        out.append(Write(1, "blkio", "blkio.weight", str(weight), best_effort=True,
                         fallback=Write(1, "blkio", "blkio.bfq.weight", str(weight), best_effort=True)))
    for i, wd in enumerate(b.get("weightDevice") or []):
        where = f"blockIO.weightDevice[{i}]"
        dev = f"{_device_num(wd, 'major', where)}:{_device_num(wd, 'minor', where)}"
        w = _int(wd, "weight", where)
        if w:
            out.append(Write(1, "blkio", "blkio.weight_device", f"{dev} {w}", best_effort=True,
                             fallback=Write(1, "blkio", "blkio.bfq.weight_device", f"{dev} {w}", best_effort=True)))
    for key, file, _ in _THROTTLES:
        for i, t in enumerate(b.get(key) or []):
            where = f"blockIO.{key}[{i}]"
            rate = _int(t, "rate", where) or 0
            out.append(Write(1, "blkio", file, f"{_device_num(t, 'major', where)}:{_device_num(t, 'minor', where)} "
                             f"{rate}", best_effort=True))
    return out


def io_v2(resources: dict) -> list[Write]:
    b = _section(resources, "blockIO")
    out = []
    weight = _int(b, "weight", "blockIO")
    if weight:
        out.append(Write(2, "io", "io.bfq.weight", str(weight), best_effort=True,
                         fallback=Write(2, "io", "io.weight", str(blkio_weight_to_io_weight(weight)),
                                        best_effort=True)))
    for i, wd in enumerate(b.get("weightDevice") or []):
        where = f"blockIO.weightDevice[{i}]"
        dev = f"{_device_num(wd, 'major', where)}:{_device_num(wd, 'minor', where)}"
        w = _int(wd, "weight", where)
        if w:
            out.append(Write(2, "io", "io.bfq.weight", f"{dev} {w}", best_effort=True,
                             fallback=Write(2, "io", "io.weight", f"{dev} {blkio_weight_to_io_weight(w)}",
                                            best_effort=True)))
    for key, _, v2key in _THROTTLES:
        for i, t in enumerate(b.get(key) or []):
            where = f"blockIO.{key}[{i}]"
            rate = _int(t, "rate", where) or 0
            out.append(Write(2, "io", "io.max", f"{_device_num(t, 'major', where)}:{_device_num(t, 'minor', where)} "
                             f"{v2key}={rate if rate > 0 else 'max'}", best_effort=True))
    return out


# ---- devices --------------------------------------------------------------------------------------------------------

def device_rule(rule: dict, i: int) -> tuple[bool, str]:
    """One OCI device rule → (allow, "type major:minor access") as devices.allow/deny take it."""
    where = f"devices[{i}]"
    allow = rule.get("allow")
    if not isinstance(allow, bool):
        raise InvalidArgument(f"linux.resources.{where}.allow: expected true or false, got {allow!r}")
    kind = rule.get("type") or "a"
    if kind not in ("a", "b", "c"):
        raise InvalidArgument(f"linux.resources.{where}.type: {kind!r} is not one of a, b, c")
    major, minor = _int(rule, "major", where), _int(rule, "minor", where)
    access = rule.get("access") or "rwm"
    if not isinstance(access, str) or not access or set(access) - set("rwm"):
        raise InvalidArgument(f"linux.resources.{where}.access: {access!r} is not a combination of r, w, m")
    if kind == "a":
        return allow, f"a *:* {access}"
    num = lambda v: "*" if v is None or v == -1 else str(v)  # noqa: E731
    return allow, f"{kind} {num(major)}:{num(minor)} {access}"


def devices_v1(resources: dict) -> list[Write]:
    return [Write(1, "devices", "devices.allow" if allow else "devices.deny", value)
            for allow, value in (device_rule(r, i) for i, r in enumerate(_section(resources, "devices", list)))]


def devices_v2(resources: dict) -> list[Write]:
    rules = _section(resources, "devices", list)
    for i, r in enumerate(rules):
        device_rule(r, i)  # still refuse malformed rules
    if rules:
        log.warning("linux.resources.devices not enforced: cgroup v2 needs an eBPF device program, which barque "
                    "does not load yet (the mount namespace's /dev still limits what the container sees)")
    return []


# ---- hugetlb --------------------------------------------------------------------------------------------------------

def _hugetlb(resources: dict, version: int) -> list[Write]:
    out = []
    for i, h in enumerate(_section(resources, "hugepageLimits", list)):
        size = _page_size(h)
        limit = _int(h, "limit", f"hugepageLimits[{i}]")
        if limit is None:
            raise InvalidArgument(f"linux.resources.hugepageLimits[{i}].limit is required")
        if version == 1:
            out.append(Write(1, "hugetlb", f"hugetlb.{size}.limit_in_bytes", str(limit)))
        else:
            out.append(Write(2, "hugetlb", f"hugetlb.{size}.max", _max(limit)))
    return out


def hugetlb_v1(resources: dict) -> list[Write]:
    return _hugetlb(resources, 1)


def hugetlb_v2(resources: dict) -> list[Write]:
    return _hugetlb(resources, 2)


# ---- network classes (v1 only, best effort) -------------------------------------------------------------------------

def net_cls_v1(resources: dict) -> list[Write]:
    n = _section(resources, "network")
    class_id = _int(n, "classID", "network")
    return [] if class_id is None else [Write(1, "net_cls", "net_cls.classid", str(class_id), best_effort=True)]


def net_prio_v1(resources: dict) -> list[Write]:
    n = _section(resources, "network")
    out = []
    for i, p in enumerate(n.get("priorities") or []):
        name, prio = p.get("name"), _int(p, "priority", f"network.priorities[{i}]")
        if not isinstance(name, str) or not name or prio is None:
            raise InvalidArgument(f"linux.resources.network.priorities[{i}]: needs a name and a priority")
        out.append(Write(1, "net_prio", "net_prio.ifpriomap", f"{name} {prio}", best_effort=True))
    return out


def network_v2(resources: dict) -> list[Write]:
    if _section(resources, "network"):
        log.warning("linux.resources.network ignored: cgroup v2 has no net_cls/net_prio controllers")
    return []


# ---- unified (v2 key/values verbatim) -------------------------------------------------------------------------------

def unified_v2(resources: dict) -> list[Write]:
    out = []
    for key, value in _section(resources, "unified").items():
        if not isinstance(key, str) or not key or "/" in key or key in (".", "..") or "." not in key:
            raise InvalidArgument(f"linux.resources.unified: {key!r} is not a cgroup v2 file name")
        if not isinstance(value, str):
            raise InvalidArgument(f"linux.resources.unified[{key!r}]: expected a string value, got {value!r}")
        out.append(Write(2, key.split(".", 1)[0], key, value))
    return out


# ---- the plan -------------------------------------------------------------------------------------------------------

Converter = Callable[[dict], list[Write]]

# In the order they are applied: cpuset before anything that could move tasks; memory before cpu (runc's order).
# (v1 controller, v1 converter, v2 controller, v2 converter)
CONTROLLERS: tuple[tuple[str, Converter, str | None, Converter], ...] = (
    ("cpuset", cpuset_v1, "cpuset", cpuset_v2),
    ("memory", memory_v1, "memory", memory_v2),
    ("cpu", cpu_v1, "cpu", cpu_v2),
    ("pids", pids_v1, "pids", pids_v2),
    ("blkio", blkio_v1, "io", io_v2),
    ("devices", devices_v1, None, devices_v2),
    ("hugetlb", hugetlb_v1, "hugetlb", hugetlb_v2),
    ("net_cls", net_cls_v1, None, network_v2),
    ("net_prio", net_prio_v1, None, lambda r: []),
)


def plan(resources: dict, v1_controllers: frozenset[str] | set[str] | None,
         v2_controllers: frozenset[str] | set[str] | None) -> list[Write]:
    """The writes for `resources`, each controller through the hierarchy that holds it.

    `v1_controllers` are the controllers mounted as v1 hierarchies (None: no v1 at all), `v2_controllers` those the
    cgroup2 root offers (None: no cgroup2 mount is used). In hybrid mode a controller present in v1 is set there,
    otherwise through cgroup2 if offered; one in neither is planned in the host's primary version so that writing it
    fails with a message naming the missing controller.
    """
    if resources is None:
        return []
    if not isinstance(resources, dict):
        raise InvalidArgument(f"linux.resources: expected an object, got {type(resources).__name__}")
    out: list[Write] = []
    for v1name, v1conv, v2name, v2conv in CONTROLLERS:
        if v1_controllers is not None and v1name in v1_controllers:
            out += v1conv(resources)
        elif v2_controllers is not None and (v2name in v2_controllers or v1_controllers is None):
            out += v2conv(resources)
        else:
            out += v1conv(resources)
    unified = _section(resources, "unified")
    if unified:
        if v2_controllers is None:
            raise InvalidArgument("linux.resources.unified needs cgroup v2 (this host's hierarchies are v1)")
        out += unified_v2(resources)
    return out
