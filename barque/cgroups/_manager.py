"""`CgroupManager`: one container's cgroup across every hierarchy the host mounts (v1, v2 or hybrid).

A child cgroup never exceeds its parent's effective limits, in either version: charges (memory, pids, CPU time)
are accounted up the whole hierarchy and every ancestor's limit applies. In v2 the kernel also clamps what it reports
(memory.max may be written larger than the parent's, and the parent still binds). In v1 a child's
memory.limit_in_bytes can be *set* higher than its parent's and reads back that way, yet the parent's limit still
reclaims and OOM-kills inside the child — which is how `ensure_parent`'s limits bind every container.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
from pathlib import Path
from typing import Callable

from barque.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from barque.linux import _libc

from . import _fs, _stats, devices_bpf
from ._convert import Write, plan
from ._detect import DEFAULT_MOUNTINFO, DEFAULT_ROOT, HYBRID, V2, Hierarchy, discover, mode_of, select
from ._freezer import FREEZE_TIMEOUT, V1Freezer, V2Freezer
from ._paths import normalize, resolve

log = logging.getLogger("barque.cgroups")

DEFAULT_PROC_CGROUP = Path("/proc/self/cgroup")

# v2 controllers barque enables for its cgroups (those the kernel offers; threaded-only ones are left alone)
V2_CONTROLLERS = ("cpuset", "cpu", "io", "memory", "pids", "hugetlb", "rdma", "misc")

DESTROY_TIMEOUT = 5.0


class CgroupManager:
    """The cgroup named by an OCI `linux.cgroupsPath`, in every hierarchy barque uses on this host.

    `path` is absolute (`/barque/<id>`, relative to each hierarchy's mount point), relative (to the caller's own
    cgroup in each hierarchy, from `proc_self_cgroup`), or systemd's `slice:prefix:name`, which is mapped to the
    cgroupfs path systemd would use (`system.slice:docker:<id>` → `/system.slice/docker-<id>.scope`) *without*
    talking to systemd: barque creates and removes the directories itself, and systemd does not track the unit.

    Everything is read from `root` and `mountinfo`, so tests run against fixture trees. `mode` overrides detection
    ("v1", "v2", "hybrid"); the attribute `mode` tells which is in use.
    """

    def __init__(self, path: str, root: Path = DEFAULT_ROOT, mode: str | None = None,
                 mountinfo: Path = DEFAULT_MOUNTINFO, *, proc_self_cgroup: Path = DEFAULT_PROC_CGROUP) -> None:
        root = Path(root)
        found = discover(root, Path(mountinfo))
        if not found:
            raise FailedPrecondition(f"no cgroup filesystem is mounted at or under {root}: cgroups are unavailable")
        self.mode = mode or mode_of(found)
        self.spec_path = path
        self.root = root
        self._v1: list[tuple[Hierarchy, str, Path]] = []
        self._v2: tuple[Hierarchy, str, Path] | None = None
        for h in select(found, self.mode, root):
            rel = resolve(path, h, Path(proc_self_cgroup))
            entry = (h, rel, h.mount_point / rel.lstrip("/"))
            if h.version == 1:
                self._v1.append(entry)
            else:
                self._v2 = entry

    def __repr__(self) -> str:
        return f"CgroupManager({self.spec_path!r}, mode={self.mode!r}, root={str(self.root)!r})"

    # ---- where things are -----------------------------------------------------------------------------------------

    @property
    def paths(self) -> dict[str, Path]:
        """Controller (or `name=systemd`, or `unified` for the cgroup2 hierarchy) → this cgroup's directory."""
        out: dict[str, Path] = {}
        for h, _, d in self._v1:
            for c in sorted(h.controllers):
                out[c] = d
            if h.name:
                out[f"name={h.name}"] = d
        if self._v2 is not None:
            out["unified"] = self._v2[2]
        return out

    def _dirs(self) -> list[Path]:
        return [d for _, _, d in self._v1] + ([self._v2[2]] if self._v2 else [])

    def _v1_dir(self, controller: str) -> Path | None:
        for h, _, d in self._v1:
            if controller in h.controllers:
                return d
        return None

    def _v1_controllers(self) -> frozenset[str] | None:
        if not self._v1:
            return None
        return frozenset().union(*(h.controllers for h, _, _ in self._v1))

    def _v2_controllers(self) -> frozenset[str] | None:
        return self._v2[0].controllers if self._v2 else None

    def _v2_has(self, controller: str) -> bool:
        return self._v2 is not None and controller in self._v2[0].controllers

    def exists(self) -> bool:
        return any(d.is_dir() for d in self._dirs())

    # ---- create ---------------------------------------------------------------------------------------------------

    def create(self) -> None:
        """mkdir in every hierarchy (idempotent). v1 cpuset: a new cgroup's empty cpus/mems are copied from its parent,
        or no task could join it. v2: the controllers barque uses are enabled in every ancestor's subtree_control."""
        for h, rel, _ in self._v1:
            self._mkdirs(h.mount_point, rel, self._inherit_cpuset if "cpuset" in h.controllers else None)
        if self._v2 is not None:
            h, rel, _ = self._v2
            wanted = set(V2_CONTROLLERS) - (self._v1_controllers() or set())
            self._mkdirs(h.mount_point, rel, None, lambda d: self._enable_controllers(d, wanted))

    def _mkdirs(self, mount_point: Path, rel: str, on_each: Callable[[Path], None] | None,
                before_child: Callable[[Path], None] | None = None) -> None:
        cur = mount_point
        for part in rel.strip("/").split("/"):
            if before_child is not None:
                before_child(cur)
            cur = cur / part
            try:
                cur.mkdir(exist_ok=True)
            except PermissionError as e:
                raise FailedPrecondition(f"cannot create cgroup {cur}: permission denied", cause=e) from e
            except OSError as e:
                raise Unavailable(f"cannot create cgroup {cur}: {e.strerror}", cause=e) from e
            if on_each is not None:
                on_each(cur)

    @staticmethod
    def _inherit_cpuset(d: Path) -> None:
        for name in ("cpuset.cpus", "cpuset.mems"):
            f = d / name
            try:
                if _fs.read(f):
                    continue
                value = _fs.read(d.parent / name)
            except FileNotFoundError:
                continue
            try:
                _fs.write(f, value)
            except OSError as e:
                raise _fs.refusal(f, value, e) from e

    @staticmethod
    def _enable_controllers(d: Path, wanted: set[str]) -> None:
        try:
            available = set(_fs.read(d / "cgroup.controllers").split())
            enabled = {c.lstrip("+") for c in _fs.read(d / "cgroup.subtree_control").split()}
        except FileNotFoundError:
            return
        missing = sorted((wanted & available) - enabled)
        if not missing:
            return
        try:  # one write for all (the kernel applies all or none)…
            _fs.write(d / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))
            return
        except OSError:
            pass
        for c in missing:  # …and one by one when some controller cannot be enabled
            try:
                _fs.write(d / "cgroup.subtree_control", f"+{c}")
            except OSError as e:
                # e.g. EBUSY: the cgroup holds processes itself (v2's no-internal-process rule); setting that
                # controller's files later fails with a message naming it
                log.warning("cannot enable the %s controller in %s: %s", c, d, os.strerror(e.errno or 0))

    # ---- apply ----------------------------------------------------------------------------------------------------

    def apply(self, pid: int) -> None:
        """Move `pid` (its whole thread group) into this cgroup in every hierarchy: the v1 controllers, named ones
        like name=systemd, and in hybrid mode the cgroup2 one."""
        for d in self._dirs():
            _fs.move(d / "cgroup.procs", pid)

    # ---- set ------------------------------------------------------------------------------------------------------

    def set(self, resources: dict) -> None:
        """Apply the OCI spec's `linux.resources`. A value the kernel refuses raises InvalidArgument naming the file
        and the value; a controller that is not available raises FailedPrecondition; block I/O and network classes
        are best effort (logged). Limits above the parent's are allowed but never take effect beyond it."""
        devices = None
        if (self.mode == V2 and self._v2 is not None and isinstance(resources, dict)
                and resources.get("devices")):
            # pure v2: the allowlist is an eBPF device program on the cgroup2 directory (hybrid: the v1 controller)
            resources = dict(resources)
            devices = resources.pop("devices")
            if not isinstance(devices, list):
                raise InvalidArgument(f"linux.resources.devices: expected a list, got {type(devices).__name__}")
            devices_bpf.program(devices)  # validated before anything is written
        writes = plan(resources, self._v1_controllers(), self._v2_controllers())
        if devices is not None:
            self._attach_devices(devices)
        i = 0
        while i < len(writes):
            group = writes[i].group
            j = i + 1
            while group is not None and j < len(writes) and writes[j].group == group:
                j += 1
            self._write_group(writes[i:j])
            i = j

    def _attach_devices(self, rules: list[dict]) -> None:
        d = self._v2[2]
        if not d.is_dir():
            raise FailedPrecondition(f"cgroup {d} does not exist: create() it first")
        if _libc.statfs_type(d) != _libc.CGROUP2_SUPER_MAGIC:  # a test's fixture tree: no program can go there
            log.warning("linux.resources.devices not enforced: %s is not on a cgroup2 filesystem, so no eBPF "
                        "device program can be attached to it", d)
            return
        try:
            devices_bpf.attach(d, rules)
        except OSError as e:
            raise FailedPrecondition(f"cannot enforce linux.resources.devices on {d}: {e}", cause=e) from e

    def _write_group(self, writes: list[Write]) -> None:
        if len(writes) == 1:
            self._write(writes[0])
            return
        # memory limit vs memory+swap, CFS period vs quota: the kernel checks each against the other's current
        # value, so one order fails where the other works — retry the refused ones after the rest
        refused = []
        for w in writes:
            try:
                self._write(w)
            except InvalidArgument:
                refused.append(w)
        for w in refused:
            self._write(w)

    def _target(self, w: Write) -> Path | None:
        if w.version == 2:
            return self._v2[2] if self._v2 else None
        return self._v1_dir(w.controller)

    def _write(self, w: Write) -> None:
        d = self._target(w)
        if d is None:
            message = f"cannot set {w.file} = {w.value!r}: the {w.controller} controller is not mounted"
            if w.best_effort:
                log.warning("%s", message)
                return
            raise FailedPrecondition(message)
        if not d.is_dir():
            raise FailedPrecondition(f"cgroup {d} does not exist: create() it first")
        try:
            _fs.write(d / w.file, w.value)
        except OSError as e:
            if e.errno == errno.ENOENT and w.fallback is not None:
                self._write(w.fallback)
                return
            if e.errno == errno.ENOENT and w.optional:
                log.debug("%s absent in %s: %r skipped", w.file, d, w.value)
                return
            err = _fs.refusal(d / w.file, w.value, e)
            if e.errno == errno.ENOENT and w.version == 2:
                err = FailedPrecondition(
                    f"cannot set {w.file} = {w.value!r}: the {w.controller} controller is not enabled for {d}",
                    cause=e)
            if w.best_effort:
                log.warning("%s (best effort, skipped)", err)
                return
            raise err from e

    # ---- stats ----------------------------------------------------------------------------------------------------

    def stats(self) -> dict:
        """Docker-stats-like numbers: memory, cpu, pids, blkio (those whose controller is available)."""
        if not self.exists():
            raise NotFound(f"cgroup {self.spec_path} does not exist")
        out: dict = {}
        v2 = self._v2[2] if self._v2 else None
        if (d := self._v1_dir("memory")) is not None:
            out["memory"] = _stats.memory_v1(d)
        elif v2 is not None and self._v2_has("memory"):
            out["memory"] = _stats.memory_v2(v2)
        cpuacct, cpu = self._v1_dir("cpuacct"), self._v1_dir("cpu")
        if cpuacct is not None or cpu is not None:
            out["cpu"] = _stats.cpu_v1(cpuacct, cpu)
        elif v2 is not None:
            out["cpu"] = _stats.cpu_v2(v2)  # usage is a core cgroup2 stat, there even without the cpu controller
        if (d := self._v1_dir("pids")) is not None:
            out["pids"] = _stats.pids(d)
        elif v2 is not None and self._v2_has("pids"):
            out["pids"] = _stats.pids(v2)
        if (d := self._v1_dir("blkio")) is not None:
            out["blkio"] = _stats.blkio_v1(d)
        elif v2 is not None and self._v2_has("io"):
            out["blkio"] = _stats.io_v2(v2)
        return out

    def oom_kill_count(self) -> int:
        """How many processes the kernel's OOM killer has killed in this cgroup (and its descendants)."""
        if (d := self._v1_dir("memory")) is not None:
            return _fs.read_keyed(d / "memory.oom_control").get("oom_kill", 0)
        if self._v2 is not None and self._v2_has("memory"):
            return _fs.read_keyed(self._v2[2] / "memory.events").get("oom_kill", 0)
        return 0

    # ---- processes ------------------------------------------------------------------------------------------------

    def _primary(self) -> Path:
        """The directory whose cgroup.procs lists the container's processes (the same set in every hierarchy)."""
        if self.mode == V2 and self._v2 is not None:
            return self._v2[2]
        return self._v1_dir("freezer") or self._v1[0][2]

    def pids(self) -> list[int]:
        """Every process in this cgroup and its descendants (a container may make sub-cgroups)."""
        found: set[int] = set()
        for dirpath, _, _ in os.walk(self._primary()):
            found.update(_fs.read_pids(Path(dirpath) / "cgroup.procs"))
        return sorted(found)

    # ---- freezer --------------------------------------------------------------------------------------------------

    def _freezer(self) -> V1Freezer | V2Freezer:
        if (d := self._v1_dir("freezer")) is not None:
            return V1Freezer(d)
        if self._v2 is not None:
            return V2Freezer(self._v2[2])
        raise FailedPrecondition("no freezer: the v1 freezer controller is not mounted on this host")

    def frozen(self) -> bool:
        return self._freezer().frozen()

    def freeze(self, timeout: float = FREEZE_TIMEOUT) -> None:
        """Stop every process; returns once the kernel reports the cgroup frozen (FROZEN, not merely FREEZING)."""
        self._freezer().freeze(timeout)

    def thaw(self) -> None:
        self._freezer().thaw()

    # ---- kill and destroy -----------------------------------------------------------------------------------------

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to every process in the cgroup so that none escapes by forking meanwhile: with SIGKILL and a
        cgroup2 directory (v2, hybrid) one write to cgroup.kill; otherwise the cgroup is frozen, each process
        signalled, and thawed (left frozen for other signals if it was frozen before). Without any freezer, new
        processes are signalled until none appear. When iterating, the caller's own process is never signalled."""
        if not self.exists():
            return
        if sig == signal.SIGKILL and self._v2 is not None and (self._v2[2] / "cgroup.kill").exists():
            try:
                _fs.write(self._v2[2] / "cgroup.kill", "1")
            except FileNotFoundError:
                return
            except OSError as e:
                log.debug("cgroup.kill in %s failed (%s): signalling one by one", self._v2[2], e)
            else:
                # cgroup.kill gets through v2's freezer but not v1's (hybrid): a v1-frozen task dies only once thawed
                if self._v1_dir("freezer") is not None and self.frozen():
                    self.thaw()
                return
        try:
            freezer: V1Freezer | V2Freezer | None = self._freezer()
        except FailedPrecondition:
            freezer = None
        was_frozen = freezer is not None and freezer.frozen()
        froze = False
        if freezer is not None and not was_frozen:
            try:
                freezer.freeze()
                froze = True
            except (Unavailable, NotFound) as e:
                log.debug("could not freeze %s before signalling (%s): signalling without freezing", self, e)
        try:
            signalled: set[int] = {os.getpid()}
            for _ in range(1 if froze or was_frozen else 10):
                new = [p for p in self.pids() if p not in signalled]
                if not new:
                    break
                for pid in new:
                    signalled.add(pid)
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
        finally:
            if freezer is not None and (froze or (was_frozen and sig == signal.SIGKILL)):
                freezer.thaw()  # a frozen process cannot act on the signal, not even die

    def destroy(self, timeout: float = DESTROY_TIMEOUT) -> None:
        """Kill what is left, then remove this cgroup (and sub-cgroups a container made) from every hierarchy.
        Idempotent; never removes an ancestor."""
        if self.exists():
            self.kill(signal.SIGKILL)
            if not _fs.wait_until(lambda: not [p for p in self.pids() if p != os.getpid()], timeout):
                log.warning("processes still in %s after SIGKILL: %s", self, self.pids())
        stuck: list[str] = []
        for d in self._dirs():
            stuck += _fs.remove_tree(d, timeout)
        if stuck:
            raise Unavailable(f"cannot remove cgroup directories {', '.join(stuck)}: still busy")


def ensure_parent(name: str = "barque", resources: dict | None = None, root: Path = DEFAULT_ROOT,
                  mode: str | None = None, mountinfo: Path = DEFAULT_MOUNTINFO) -> CgroupManager:
    """The cgroup every barque container lives under (`/barque`): created if missing, `resources` set on it when
    given. Its limits bind all containers together: no child can use more than its parent allows."""
    if mode is not None and mode not in ("v1", "v2", HYBRID):
        raise InvalidArgument(f"unknown cgroup mode {mode!r}")
    manager = CgroupManager(normalize("/" + name.strip("/")), root=root, mode=mode, mountinfo=mountinfo)
    manager.create()
    if resources:
        manager.set(resources)
    return manager
