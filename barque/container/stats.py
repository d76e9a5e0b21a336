"""A container's resources: its processes (`top`), what it uses (`stats`) and what it may use (`update`).

Usage is read from the container's cgroup (v1, v2 or hybrid, through `barque.cgroups.CgroupManager.stats`) and from
its network namespace (`/proc/<pid>/net/dev`), and reduced the way Docker's CLI reduces the daemon's numbers, so the
columns mean what Docker users expect:

* CPU % compares two samples: the container's CPU time delta over the host's (all CPUs, from /proc/stat's first
  seven fields), times the number of online CPUs — a container busy on two CPUs shows 200%.
* Memory usage excludes the inactive file cache (`total_inactive_file` on v1, `inactive_file` on v2), which the
  kernel reclaims first; the limit is the cgroup's, or the host's memory when that is lower or there is none.
* Block I/O sums the read and write bytes over every device; network I/O every interface but loopback.

`top` runs the host's `ps` and keeps the rows of the container's processes (pids from its cgroup), as dockerd does,
so every `ps` option works and the columns are the host's view (host pids and users).

`update` changes HostConfig's limits as dockerd does (its validation and conflict rules and wording): the record
is changed for the next start, and a running container's cgroup at once through the runtime, with the OCI
resources built exactly as at start (`ocispec._resources`). If the cgroup refuses, the record is left unchanged.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from barque.container.monitor import RESTART_POLICY_KEY  # the policy `update` gives a running container
from barque.errors import BarqueError, Conflict, InvalidArgument, NotFound

__all__ = ["Sample", "sample", "cpu_percent", "mem_percent", "host_cpu", "host_memory", "net_io",
           "memory_without_cache", "update", "merge_update", "UPDATABLE", "RESTART_POLICY_KEY",
           "processes", "parse_ps"]

PROC = Path("/proc")
MIN_MEMORY = 6 * 1024 * 1024  # dockerd's linuxMinMemory


@dataclass(frozen=True)
class Sample:
    """One reading of a container's counters; all zero for a container that does not run."""

    cpu_total: int = 0       # CPU time the container used, ns
    system_total: int = 0    # CPU time the host used, all CPUs, ns
    online_cpus: int = 0
    mem_usage: int = 0       # without the inactive file cache
    mem_limit: int = 0
    net_rx: int = 0
    net_tx: int = 0
    blk_read: int = 0
    blk_write: int = 0
    pids: int = 0
    running: bool = False


# ---- the host ---------------------------------------------------------------------------------------------------

def host_cpu(proc: Path = PROC) -> tuple[int, int]:
    """(CPU time the host used in ns, the first seven fields of /proc/stat's `cpu` line; online CPUs)."""
    total, online = 0, 0
    ticks = os.sysconf("SC_CLK_TCK")
    for line in (proc / "stat").read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "cpu":
            total = sum(int(x) for x in parts[1:8]) * 1_000_000_000 // ticks
        elif parts[0].startswith("cpu"):
            online += 1
    return total, online


def host_memory(proc: Path = PROC) -> int:
    for line in (proc / "meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def net_io(pid: int, proc: Path = PROC) -> tuple[int, int]:
    """(received, sent) bytes over every interface but loopback in `pid`'s network namespace."""
    rx = tx = 0
    try:
        text = (proc / str(pid) / "net" / "dev").read_text()
    except OSError:
        return 0, 0
    for line in text.splitlines()[2:]:
        name, _, counters = line.partition(":")
        fields = counters.split()
        if name.strip() == "lo" or len(fields) < 9:
            continue
        rx += int(fields[0])
        tx += int(fields[8])
    return rx, tx


# ---- reductions (Docker's CLI) --------------------------------------------------------------------------------

def memory_without_cache(memory: dict) -> int:
    """Docker's calculateMemUsageUnixNoCache: usage minus the inactive file cache."""
    usage = memory.get("usage") or 0
    stats = memory.get("stats") or {}
    if "total_inactive_file" in stats and stats["total_inactive_file"] < usage:  # cgroup v1
        return usage - stats["total_inactive_file"]
    if stats.get("inactive_file", usage) < usage:  # cgroup v2
        return usage - stats["inactive_file"]
    return usage


def cpu_percent(prev: Sample | None, cur: Sample) -> float:
    """Docker's calculateCPUPercentUnix over two samples (0 without a previous one or without progress)."""
    if prev is None or not cur.running:
        return 0.0
    cpu_delta = cur.cpu_total - prev.cpu_total
    system_delta = cur.system_total - prev.system_total
    if system_delta > 0 and cpu_delta > 0:
        return cpu_delta / system_delta * (cur.online_cpus or 1) * 100.0
    return 0.0


def mem_percent(s: Sample) -> float:
    return s.mem_usage / s.mem_limit * 100.0 if s.mem_limit else 0.0


def _blkio(blkio: dict) -> tuple[int, int]:
    read = write = 0
    for entry in blkio.get("io_service_bytes_recursive") or []:
        op = str(entry.get("op", "")).lower()
        if op == "read":
            read += entry.get("value", 0)
        elif op == "write":
            write += entry.get("value", 0)
    return read, write


# ---- a container ----------------------------------------------------------------------------------------------

def _cgroup_path(runtime_root: Path, cid: str) -> str:
    from barque.runtime.state import StateStore

    try:
        return StateStore(Path(runtime_root)).load(cid).cgroups_path or f"/barque/{cid}"
    except NotFound:
        return f"/barque/{cid}"


def sample(c, runtime_root: Path, *, proc: Path = PROC, cgroup_root: Path | None = None) -> Sample:
    """Read `c`'s counters now (a zero Sample when it does not run or its cgroup is gone)."""
    from barque.cgroups import CgroupManager

    state = c.refresh()
    if state.get("Status") not in ("running", "paused") or not state.get("Pid"):
        return Sample()
    path = _cgroup_path(runtime_root, c.id)
    try:
        manager = CgroupManager(path) if cgroup_root is None else CgroupManager(path, root=cgroup_root)
        stats = manager.stats()
    except NotFound:
        return Sample()
    system, online = host_cpu(proc)
    memory = stats.get("memory") or {}
    host_mem = host_memory(proc)
    limit = memory.get("limit")
    if not limit or (host_mem and limit > host_mem):
        limit = host_mem
    pids = (stats.get("pids") or {}).get("current")
    if pids is None:
        pids = len(manager.pids())
    rx = tx = 0
    if (c.record.get("HostConfig") or {}).get("NetworkMode") != "host":
        rx, tx = net_io(state["Pid"], proc)
    blk_read, blk_write = _blkio(stats.get("blkio") or {})
    return Sample(cpu_total=(stats.get("cpu") or {}).get("usage_total", 0), system_total=system,
                  online_cpus=online, mem_usage=memory_without_cache(memory), mem_limit=limit or 0,
                  net_rx=rx, net_tx=tx, blk_read=blk_read, blk_write=blk_write, pids=pids, running=True)


# ---- update ---------------------------------------------------------------------------------------------------

#: the HostConfig fields `update` may change (Docker's container update body); 0 or "" means "leave as it is"
UPDATABLE = ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuPeriod", "CpuQuota",
             "CpusetCpus", "CpusetMems", "PidsLimit", "RestartPolicy")


def _check_changes(changes: dict, ncpu: int) -> None:
    """dockerd's verifyPlatformContainerResources for an update: the new values on their own."""
    memory, swap = changes.get("Memory") or 0, changes.get("MemorySwap") or 0
    reservation = changes.get("MemoryReservation") or 0
    if memory and memory < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if memory > 0 and swap > 0 and swap < memory:
        raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
    if reservation and reservation < MIN_MEMORY:
        raise InvalidArgument("Minimum memory reservation allowed is 6MB")
    if memory > 0 and reservation > 0 and memory < reservation:
        raise InvalidArgument("Minimum memory limit can not be less than memory reservation limit, see usage")
    nano = changes.get("NanoCpus") or 0
    if nano and changes.get("CpuPeriod"):
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano and changes.get("CpuQuota"):
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if nano < 0 or nano > ncpu * 1_000_000_000:
        raise InvalidArgument(f"range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
    period = changes.get("CpuPeriod") or 0
    if period and not 1000 <= period <= 1_000_000:
        raise InvalidArgument("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    quota = changes.get("CpuQuota") or 0
    if 0 < quota < 1000:
        raise InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if changes.get("PidsLimit") is not None and changes["PidsLimit"] < 0:
        changes["PidsLimit"] = 0  # -1 and 0 both mean unlimited


def merge_update(host: dict, changes: dict, *, ncpu: int | None = None) -> dict:
    """A new HostConfig: `host` with `changes` applied by dockerd's rules (a 0 or "" leaves a value as it is; NanoCPUs
    and CPU period/quota exclude each other; a larger memory limit needs a larger swap limit). Raises
    InvalidArgument or Conflict with dockerd's messages (without the "Cannot update container" prefix)."""
    unknown = set(changes) - set(UPDATABLE)
    if unknown:
        raise InvalidArgument(f"cannot update {', '.join(sorted(unknown))}")
    changes = dict(changes)
    _check_changes(changes, ncpu or os.cpu_count() or 1)
    new = json.loads(json.dumps(host))
    if new.get("Memory") and not new.get("MemorySwap"):
        new["MemorySwap"] = new["Memory"] * 2  # what "no --memory-swap" meant at create (dockerd stores it so)
    if changes.get("NanoCpus") and new.get("CpuPeriod"):
        raise Conflict("Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set")
    if changes.get("NanoCpus") and new.get("CpuQuota"):
        raise Conflict("Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set")
    if changes.get("CpuPeriod") and new.get("NanoCpus"):
        raise Conflict("Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set")
    if changes.get("CpuQuota") and new.get("NanoCpus"):
        raise Conflict("Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set")
    for key in ("CpuShares", "NanoCpus", "CpuPeriod", "CpuQuota", "CpusetCpus", "CpusetMems", "MemorySwap",
                "MemoryReservation"):
        if changes.get(key):
            new[key] = changes[key]
    if changes.get("Memory"):
        if changes["Memory"] > (new.get("MemorySwap") or 0) and not changes.get("MemorySwap"):
            raise Conflict("Memory limit should be smaller than already set memoryswap limit, update the memoryswap "
                           "at the same time")
        new["Memory"] = changes["Memory"]
    if changes.get("PidsLimit") is not None:
        new["PidsLimit"] = changes["PidsLimit"]
    policy = changes.get("RestartPolicy")
    if policy and policy.get("Name"):
        if policy["Name"] != "no" and host.get("AutoRemove"):
            raise Conflict("Restart policy cannot be updated because AutoRemove is enabled for the container")
        new["RestartPolicy"] = {"Name": policy["Name"], "MaximumRetryCount": policy.get("MaximumRetryCount", 0)}
    return new


def _oci_resources(host: dict, changes: dict) -> dict:
    from barque.container.ocispec import _resources

    res = _resources(host)
    if changes.get("PidsLimit") is not None and not host.get("PidsLimit"):
        res["pids"] = {"limit": -1}  # lifted: the runtime's update reads 0 as "unchanged"
    return res


def update(engine, c, changes: dict) -> None:
    """Apply `changes` (HostConfig fields, see UPDATABLE) to `c`: its record, and its cgroup when it runs.

    Errors are dockerd's, prefixed "Cannot update container <id>: " where dockerd prefixes them."""
    from barque.runtime.state import StateStore
    from barque.runtime.update import update as runtime_update

    host = c.record.get("HostConfig") or {}
    try:
        new = merge_update(host, changes)
    except Conflict as e:
        raise Conflict(f"Cannot update container {c.id}: {e.message}") from None
    if c.refresh().get("Status") in ("running", "paused"):
        try:
            runtime_update(StateStore(engine.runtime_root), c.id, json.dumps(_oci_resources(new, changes)))
        except NotFound:
            pass  # it stopped meanwhile: the record is all there is to change
        except BarqueError as e:
            if c.refresh().get("Status") in ("running", "paused"):
                raise type(e)(f"Cannot update container {c.id}: {e.message}", cause=e) from e
    c.record["HostConfig"] = new
    engine.containers.update(c)
    if changes.get("RestartPolicy") and new.get("RestartPolicy") != host.get("RestartPolicy"):
        # a running container's monitor cannot read the database: the policy it applies at the exit is in the state
        c.update_state(**{RESTART_POLICY_KEY: new["RestartPolicy"]})


# ---- top ------------------------------------------------------------------------------------------------------

_PS_RENAME = re.compile(r"\s+([^\s]*)=\s*(PID[^\s]*)")


def processes(runtime_root: Path, c, ps_args: str = "") -> tuple[list[str], list[list[str]]]:
    """`top`: the host's `ps` (with `ps_args`, default -ef) reduced to the rows of `c`'s processes, as dockerd
    does it: (titles, rows), every row as many fields as titles (the last one takes the rest of the line)."""
    import subprocess

    from barque.runtime import Runtime

    ps_args = ps_args or "-ef"
    for key, value in _PS_RENAME.findall(ps_args):
        if key != "pid":
            raise InvalidArgument(f'specifying "{key}={value}" is not allowed')
    status = c.refresh().get("Status")
    if status == "restarting":
        raise Conflict(f"Container {c.id} is restarting, wait until the container is running")
    if status not in ("running", "paused"):
        raise Conflict(f"container {c.id} is not running")
    try:
        pids = Runtime(Path(runtime_root)).pids(c.id)
    except NotFound:
        raise Conflict(f"container {c.id} is not running") from None
    args = [a for a in ps_args.split(" ") if a]
    env = {**os.environ, "LC_ALL": "C"}
    proc = subprocess.run(["ps", *args, "-q" + ",".join(map(str, pids))], capture_output=True, env=env)
    if proc.returncode != 0:  # some options (such as f) cannot be used with -q: filter the full listing
        proc = subprocess.run(["ps", *args], capture_output=True, env=env)
        if proc.returncode != 0:
            first = proc.stderr.decode(errors="replace").strip().split("\n", 1)[0]
            raise InvalidArgument(f"ps: {first or f'exit status {proc.returncode}'}")
    return parse_ps(proc.stdout.decode(errors="replace"), pids)


def parse_ps(output: str, pids: list[int]) -> tuple[list[str], list[list[str]]]:
    """dockerd's parsePSOutput: the rows whose PID column is one of `pids` (and the thread lines, PID "-", that
    follow such a row)."""
    lines = output.split("\n")
    titles = lines[0].split()
    if "PID" not in titles:
        raise InvalidArgument("Couldn't find PID field in ps output")
    at = titles.index("PID")
    wanted = set(pids)
    rows: list[list[str]] = []
    keep_threads = False
    for line in lines[1:]:
        fields = line.split()
        if not fields or len(fields) <= at:
            continue
        if fields[at] == "-":
            if keep_threads:
                rows.append(_fit(fields, len(titles)))
            continue
        try:
            pid = int(fields[at])
        except ValueError:
            raise InvalidArgument(f"Unexpected pid '{fields[at]}'") from None
        keep_threads = pid in wanted
        if keep_threads:
            rows.append(_fit(fields, len(titles)))
    return titles, rows


def _fit(fields: list[str], n: int) -> list[str]:
    return fields[:n - 1] + [" ".join(fields[n - 1:])]
