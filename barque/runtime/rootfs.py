"""The container's filesystem, built inside its own mount namespace by the container's first process.

Order (as runc's prepareRootfs/finalizeRootfs, written from the spec):

1. `prepare`: make every mount slave (or linux.rootfsPropagation) so nothing propagates back to the host; bind the
   rootfs onto itself (or move the idmapped copy the parent made onto it); the spec's mounts in order — binds with
   their flags re-applied by a remount, proc, sysfs, tmpfs, devpts, mqueue, cgroup; then /dev's default device nodes
   (mknod, or a bind of the host's node inside a user namespace where mknod is refused) and its symlinks.
2. `pivot_root`: pivot_root(".", ".") then detach the old root stacked under the new one — never chroot.
3. `finalize`: read-only paths (a bind remounted read-only), masked paths (/dev/null over files, a read-only tmpfs
   over directories), then the read-only root.

Every change to the system goes through a `Syscalls` object, so the sequence is unit-tested with a recording fake.
Destinations are resolved inside the rootfs with symlinks followed as if the rootfs were `/`, so an image cannot
point a mount outside its root.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from barque.errors import FailedPrecondition, InvalidArgument
from barque.runtime.spec import MountOptions, parse_mount_options
from barque.runtime.syscalls import Syscalls
from barque.securejoin import secure_join

__all__ = ["RootfsContext", "CgroupBind", "secure_join", "prepare", "pivot_root", "finalize", "DEFAULT_DEVICES"]

log = logging.getLogger(__name__)

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME = 0x20, 0x400, 0x800
MS_BIND, MS_REC, MS_PRIVATE, MS_SLAVE = 0x1000, 0x4000, 1 << 18, 1 << 19
MS_RELATIME, MS_STRICTATIME = 1 << 21, 1 << 24
MNT_DETACH = 2

# the spec's "Default Devices": path, type, major, minor, mode
DEFAULT_DEVICES = (
    ("/dev/null", "c", 1, 3, 0o666),
    ("/dev/zero", "c", 1, 5, 0o666),
    ("/dev/full", "c", 1, 7, 0o666),
    ("/dev/random", "c", 1, 8, 0o666),
    ("/dev/urandom", "c", 1, 9, 0o666),
    ("/dev/tty", "c", 5, 0, 0o666),
)
DEV_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
)


@dataclass(frozen=True)
class CgroupBind:
    """One host cgroup hierarchy as the container sees it: `name` is the directory under the cgroup mount
    (`memory`, `cpu,cpuacct`, `systemd`, `unified`), `host_dir` the container's own cgroup in that hierarchy."""

    name: str
    host_dir: str


@dataclass
class RootfsContext:
    rootfs: str
    bundle: str
    mounts: list[dict] = field(default_factory=list)
    devices: list[dict] = field(default_factory=list)
    propagation: str | None = None
    readonly: bool = False
    masked_paths: list[str] = field(default_factory=list)
    readonly_paths: list[str] = field(default_factory=list)
    in_userns: bool = False
    new_netns: bool = True
    new_cgroupns: bool = False
    cgroup_v2_only: bool = False
    cgroup_binds: list[CgroupBind] = field(default_factory=list)
    #: an idmapped (detached) copy of the rootfs, made by the parent, to move onto the rootfs path
    idmap_fd: int | None = None

    @classmethod
    def from_spec(cls, spec: dict, rootfs: str, bundle: str, **kw) -> "RootfsContext":
        linux = spec.get("linux") or {}
        return cls(
            rootfs=rootfs, bundle=bundle, mounts=list(spec.get("mounts") or []),
            devices=list(linux.get("devices") or []), propagation=linux.get("rootfsPropagation"),
            readonly=bool((spec.get("root") or {}).get("readonly")),
            masked_paths=list(linux.get("maskedPaths") or []), readonly_paths=list(linux.get("readonlyPaths") or []),
            **kw,
        )


def _locked_flags(path: str) -> int:
    """The flags of the mount holding `path` that a remount must keep (a user namespace locks them)."""
    try:
        f = os.statvfs(path).f_flag
    except OSError:
        return 0
    flags = f & (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME)
    if f & os.ST_RELATIME:
        flags |= MS_RELATIME
    return flags


# ---- 1. prepare ---------------------------------------------------------------------------------------------------

def prepare(ctx: RootfsContext, sc: Syscalls) -> None:
    prop = parse_mount_options([ctx.propagation]).propagation if ctx.propagation else [MS_SLAVE | MS_REC]
    for p in prop:
        sc.mount(None, "/", None, p)
    if ctx.propagation in ("shared", "rshared"):
        _make_parent_private(ctx.rootfs, sc)
    if ctx.idmap_fd is not None:
        sc.move_mount(ctx.idmap_fd, ctx.rootfs)
    else:
        sc.mount(ctx.rootfs, ctx.rootfs, None, MS_BIND | MS_REC)
    binds_dev = False
    for m in ctx.mounts:
        opts = parse_mount_options(m.get("options"))
        if os.path.normpath(m["destination"]) == "/dev":
            binds_dev = opts.bind or m.get("type") == "bind"
        mount_entry(ctx, m, opts, sc)
    if not binds_dev:  # a /dev bound from the host has its nodes already (runc's "needsDev")
        create_devices(ctx, sc)
        dev_symlinks(ctx, sc)


def _make_parent_private(rootfs: str, sc: Syscalls) -> None:
    """pivot_root refuses a new root whose parent mount is shared: make the mount holding the rootfs private."""
    from barque.linux.mountinfo import mounts

    best = "/"
    for m in mounts():
        if (rootfs == m.mount_point or rootfs.startswith(m.mount_point.rstrip("/") + "/")) and \
                len(m.mount_point) > len(best):
            best = m.mount_point
    sc.mount(None, best, None, MS_PRIVATE)


def _source_path(ctx: RootfsContext, source: str | None) -> str:
    if not source:
        raise InvalidArgument("a bind mount needs a source")
    return source if source.startswith("/") else os.path.join(ctx.bundle, source)


def mount_entry(ctx: RootfsContext, m: dict, opts: MountOptions, sc: Syscalls) -> None:
    dest = secure_join(ctx.rootfs, m["destination"])
    fstype = m.get("type") or ""
    source = m.get("source")
    if opts.bind or fstype == "bind":
        _bind(ctx, _source_path(ctx, source), dest, opts, sc)
    elif fstype == "cgroup" or fstype == "cgroup2":
        _mount_cgroup(ctx, dest, opts, sc)
    else:
        sc.mkdir(dest)
        try:
            sc.mount(source or fstype, dest, fstype, opts.flags, opts.data)
        except OSError as e:
            # in a user namespace sysfs needs a network namespace of its own and mqueue an IPC one:
            # without them, bind the host's (read-only for sysfs), as runc does
            if e.errno in (errno.EPERM, errno.EACCES) and fstype in ("sysfs", "mqueue") and ctx.in_userns:
                host = "/sys" if fstype == "sysfs" else "/dev/mqueue"
                _bind(ctx, host, dest, parse_mount_options(["rbind"] + (m.get("options") or [])), sc)
            else:
                raise FailedPrecondition(f"mounting {fstype} on {m['destination']}: {e.strerror or e}") from e
    for p in opts.propagation:
        sc.mount(None, dest, None, p)


def _bind(ctx: RootfsContext, source: str, dest: str, opts: MountOptions, sc: Syscalls) -> None:
    if not os.path.exists(source):
        raise InvalidArgument(f"bind mount source {source} does not exist")
    if os.path.isdir(source):
        sc.mkdir(dest)
    else:
        sc.mkdir(os.path.dirname(dest))
        if not os.path.lexists(dest):
            sc.create_file(dest)
    try:
        sc.mount(source, dest, None, MS_BIND | (opts.flags & MS_REC))
    except OSError as e:
        raise FailedPrecondition(f"bind mounting {source} on {dest}: {e.strerror or e}") from e
    extra = opts.flags & ~(MS_BIND | MS_REC | MS_REMOUNT)
    if extra:
        sc.mount(None, dest, None, MS_BIND | MS_REMOUNT | extra | _locked_flags(dest))


def _mount_cgroup(ctx: RootfsContext, dest: str, opts: MountOptions, sc: Syscalls) -> None:
    flags = opts.flags & ~(MS_BIND | MS_REC)
    sc.mkdir(dest)
    if ctx.cgroup_v2_only:
        if ctx.new_cgroupns:
            sc.mount("cgroup2", dest, "cgroup2", flags)
        elif ctx.cgroup_binds:
            _bind(ctx, ctx.cgroup_binds[0].host_dir, dest, MountOptions(MS_BIND | flags), sc)
        return
    # v1 and hybrid: a tmpfs holding a read-only bind of the container's own cgroup in every hierarchy
    sc.mount("tmpfs", dest, "tmpfs", (flags & ~MS_RDONLY) | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755")
    for b in ctx.cgroup_binds:
        sub = os.path.join(dest, b.name)
        sc.mkdir(sub)
        if os.path.isdir(b.host_dir):
            sc.mount(b.host_dir, sub, None, MS_BIND)
            sc.mount(None, sub, None, MS_BIND | MS_REMOUNT | flags | MS_NOSUID | MS_NODEV | MS_NOEXEC)
        if "," in b.name:  # cpu,cpuacct is also reachable as cpu and cpuacct, as on the host
            for controller in b.name.split(","):
                link = os.path.join(dest, controller)
                if not os.path.lexists(link):
                    sc.symlink(b.name, link)
    if flags & MS_RDONLY:
        sc.mount(None, dest, None, MS_REMOUNT | flags | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755")


def _devices(ctx: RootfsContext) -> list[dict]:
    given = {d["path"] for d in ctx.devices}
    out = [{"path": p, "type": t, "major": ma, "minor": mi, "fileMode": mode, "uid": 0, "gid": 0}
           for p, t, ma, mi, mode in DEFAULT_DEVICES if p not in given]
    return out + ctx.devices


def create_devices(ctx: RootfsContext, sc: Syscalls) -> None:
    for d in _devices(ctx):
        path = secure_join(ctx.rootfs, d["path"])
        sc.mkdir(os.path.dirname(path))
        if os.path.lexists(path):
            sc.unlink(path)
        kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[d["type"]]
        mode = d.get("fileMode", 0o666) & 0o7777
        if ctx.in_userns and kind != stat.S_IFIFO:
            # mknod of a device is refused in a user namespace: bind the host's node instead
            host = d["path"]
            sc.create_file(path, 0o644)
            sc.mount(host, path, None, MS_BIND)
            continue
        dev = os.makedev(d.get("major", 0), d.get("minor", 0)) if kind != stat.S_IFIFO else 0
        try:
            sc.mknod(path, kind | mode, dev)
        except OSError as e:
            raise FailedPrecondition(f"mknod {d['path']} ({d['type']} {d.get('major', 0)}:{d.get('minor', 0)}): "
                                     f"{e.strerror or e} — is it allowed by linux.resources.devices?") from e
        sc.chmod(path, mode)
        if d.get("uid", 0) or d.get("gid", 0):
            sc.chown(path, d.get("uid", 0), d.get("gid", 0))


def dev_symlinks(ctx: RootfsContext, sc: Syscalls) -> None:
    links = list(DEV_SYMLINKS)
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "/dev/core"))
    for target, name in links:
        path = secure_join(ctx.rootfs, name)
        if not os.path.lexists(path):
            sc.symlink(target, path)
    ptmx = secure_join(ctx.rootfs, "/dev/ptmx")
    if os.path.lexists(ptmx):
        sc.unlink(ptmx)
    sc.symlink("pts/ptmx", ptmx)


# ---- 2. pivot_root ------------------------------------------------------------------------------------------------

def pivot_root(rootfs: str, sc: Syscalls) -> None:
    """pivot_root(".", "."): the old root ends up stacked under the new one at "/"; make it a slave so the detach
    cannot propagate to the host, then detach it."""
    sc.chdir(rootfs)
    sc.pivot_root(".", ".")
    sc.mount(None, ".", None, MS_SLAVE | MS_REC)
    sc.umount(".", MNT_DETACH)
    sc.chdir("/")


# ---- 3. finalize (after pivot_root; paths are the container's) ------------------------------------------------------

def readonly_paths(paths: list[str], sc: Syscalls, root: str = "/") -> None:
    for p in paths:
        path = secure_join(root, p)
        if not os.path.exists(path):
            continue
        sc.mount(path, path, None, MS_BIND | MS_REC)
        sc.mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | _locked_flags(path))


def mask_paths(paths: list[str], sc: Syscalls, root: str = "/") -> None:
    for p in paths:
        path = secure_join(root, p)
        if not os.path.lexists(path):
            continue
        if os.path.isdir(path):
            sc.mount("tmpfs", path, "tmpfs", MS_RDONLY)
        else:
            sc.mount(os.path.join(root, "dev/null"), path, None, MS_BIND)


def readonly_root(sc: Syscalls, root: str = "/") -> None:
    sc.mount(None, root, None, MS_BIND | MS_REMOUNT | MS_RDONLY | _locked_flags(root))


def finalize(ctx: RootfsContext, sc: Syscalls, root: str = "/") -> None:
    readonly_paths(ctx.readonly_paths, sc, root)
    mask_paths(ctx.masked_paths, sc, root)
    if ctx.readonly:
        readonly_root(sc, root)


def host_cgroup_binds(cgroup_dirs: dict[str, str]) -> list[CgroupBind]:
    """From {hierarchy mount point: the container's directory there} to the binds under the container's
    /sys/fs/cgroup (named after the hierarchy's mount point, as on the host)."""
    return [CgroupBind(Path(mp).name, d) for mp, d in sorted(cgroup_dirs.items())]
