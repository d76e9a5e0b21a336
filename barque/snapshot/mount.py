"""The one place that performs mount plans (`Mount` values) — snapshotters only describe them.

Overlay mounts with deep layer chains are the hard part: mount(2) takes its options as one page (4096 bytes), which
~60 layers of absolute paths already overflow. Two ways past it, chosen once per process:

* kernels with the new mount API and overlayfs' ``lowerdir+`` key (Linux 6.8+): build the superblock with
  fsopen/fsconfig, one ``lowerdir+`` call per layer, then fsmount/move_mount. No string length limit at all.
* older kernels: when the option string does not fit a page, make a throw-away directory of short symlinks
  (``0``, ``1``… ``z``, ``10``… -> each layer; ``U``/``W`` -> upper/work, like Docker's overlay2 ``l/`` links), and mount from a
  forked child whose working directory is that directory, with relative option paths. overlayfs resolves the links
  at mount time and holds the real directories, so the links are deleted right after. The child keeps the caller's
  working directory (shared by all its threads) untouched.

Either way overlayfs itself stacks at most 500 lower layers (OVL_MAX_STACK); a deeper plan is refused up front.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from barque.errors import FailedPrecondition, InvalidArgument
from barque.linux import _libc
from barque.snapshot.base import Mount

__all__ = ["mount_all", "unmount", "mounted", "overlay_supports_lowerdir_plus", "OVERLAY_MAX_LOWERS"]

log = logging.getLogger(__name__)

OVERLAY_MAX_LOWERS = 500          # the kernel's OVL_MAX_STACK (fs/overlayfs/params.h)
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

# mount_setattr(2)/fsmount(2) attribute flags (linux/mount.h)
_MOUNT_ATTR_RDONLY = 0x1
_MOUNT_ATTR_NOSUID = 0x2
_MOUNT_ATTR_NODEV = 0x4
_MOUNT_ATTR_NOEXEC = 0x8
_MOUNT_ATTR_NOATIME = 0x10

# option -> (MS_* flags set, MS_* flags cleared); anything not here is filesystem data
_FLAG_OPTIONS: dict[str, tuple[int, int]] = {
    "ro": (_libc.MS_RDONLY, 0),
    "rw": (0, _libc.MS_RDONLY),
    "nosuid": (_libc.MS_NOSUID, 0),
    "suid": (0, _libc.MS_NOSUID),
    "nodev": (_libc.MS_NODEV, 0),
    "dev": (0, _libc.MS_NODEV),
    "noexec": (_libc.MS_NOEXEC, 0),
    "exec": (0, _libc.MS_NOEXEC),
    "noatime": (_libc.MS_NOATIME, 0),
    "relatime": (_libc.MS_RELATIME, 0),
    "bind": (_libc.MS_BIND, 0),
    "rbind": (_libc.MS_BIND | _libc.MS_REC, 0),
    "defaults": (0, 0),
}
_ATTR_OF_MS = {
    _libc.MS_RDONLY: _MOUNT_ATTR_RDONLY,
    _libc.MS_NOSUID: _MOUNT_ATTR_NOSUID,
    _libc.MS_NODEV: _MOUNT_ATTR_NODEV,
    _libc.MS_NOEXEC: _MOUNT_ATTR_NOEXEC,
    _libc.MS_NOATIME: _MOUNT_ATTR_NOATIME,
}


@dataclass(frozen=True)
class ParsedOptions:
    flags: int              # MS_* flags
    data: tuple[str, ...]   # filesystem options, in plan order


def parse_options(options: Sequence[str]) -> ParsedOptions:
    flags = 0
    data: list[str] = []
    for opt in options:
        if opt in _FLAG_OPTIONS:
            set_, clear = _FLAG_OPTIONS[opt]
            flags = (flags | set_) & ~clear
        else:
            data.append(opt)
    return ParsedOptions(flags, tuple(data))


@dataclass(frozen=True)
class OverlayOptions:
    lowers: tuple[str, ...]          # top-most first
    upper: str | None
    work: str | None
    other: tuple[str, ...]           # index=off, userxattr…
    flags: int

    def legacy_data(self, lowers: Sequence[str] | None = None, upper: str | None = None,
                    work: str | None = None) -> str:
        lowers = self.lowers if lowers is None else lowers
        parts = list(self.other)
        if self.upper is not None:
            parts += [f"upperdir={upper or self.upper}", f"workdir={work or self.work}"]
        parts.append("lowerdir=" + ":".join(lowers))
        return ",".join(parts)


def parse_overlay(m: Mount) -> OverlayOptions:
    opts = parse_options(m.options)
    lowers: list[str] = []
    upper = work = None
    other: list[str] = []
    for opt in opts.data:
        key, eq, value = opt.partition("=")
        if key == "lowerdir" and eq:
            lowers = [p for p in value.split(":") if p]
        elif key == "lowerdir+" and eq:
            lowers.append(value)
        elif key == "upperdir" and eq:
            upper = value
        elif key == "workdir" and eq:
            work = value
        else:
            other.append(opt)
    if not lowers:
        raise InvalidArgument(f"overlay mount plan without lowerdir: {m}")
    if (upper is None) != (work is None):
        raise InvalidArgument(f"overlay mount plan needs both upperdir and workdir, or neither: {m}")
    if upper is None and len(lowers) < 2:
        raise InvalidArgument(f"a read-only overlay needs at least 2 lower layers (use a read-only bind): {m}")
    if len(lowers) > OVERLAY_MAX_LOWERS:
        raise InvalidArgument(
            f"overlay mount plan has {len(lowers)} lower layers; the kernel stacks at most {OVERLAY_MAX_LOWERS}")
    return OverlayOptions(tuple(lowers), upper, work, tuple(other), opts.flags)


@functools.cache
def overlay_supports_lowerdir_plus() -> bool:
    """Whether this kernel has the new mount API and overlayfs' per-layer ``lowerdir+`` key (6.8+). Asked once."""
    try:
        fd = _libc.fsopen("overlay")
    except OSError as e:
        log.debug("fsopen(overlay) unavailable: %s", e)
        return False
    try:
        _libc.fsconfig(fd, _libc.FSCONFIG_SET_STRING, "lowerdir+", "/")
        return True
    except OSError as e:
        log.debug("overlayfs has no lowerdir+: %s", e)
        return False
    finally:
        os.close(fd)


def _fs_context_log(fd: int) -> str:
    """The messages the kernel queued on an fs context (why fsconfig/CMD_CREATE said EINVAL)."""
    lines = []
    for _ in range(32):
        try:
            msg = os.read(fd, 4096)
        except OSError:
            break
        if not msg:
            break
        lines.append(msg.decode(errors="replace").strip())
    return "; ".join(lines)


def _mount_overlay_new_api(ov: OverlayOptions, target: str) -> None:
    fd = _libc.fsopen("overlay")
    try:
        try:
            for opt in ov.other:
                key, eq, value = opt.partition("=")
                if eq:
                    _libc.fsconfig(fd, _libc.FSCONFIG_SET_STRING, key, value)
                else:
                    _libc.fsconfig(fd, _libc.FSCONFIG_SET_FLAG, key)
            if ov.upper is not None:
                _libc.fsconfig(fd, _libc.FSCONFIG_SET_STRING, "upperdir", ov.upper)
                _libc.fsconfig(fd, _libc.FSCONFIG_SET_STRING, "workdir", ov.work)
            for lower in ov.lowers:
                _libc.fsconfig(fd, _libc.FSCONFIG_SET_STRING, "lowerdir+", lower)
            _libc.fsconfig(fd, _libc.FSCONFIG_CMD_CREATE)
        except OSError as e:
            detail = _fs_context_log(fd)
            raise OSError(e.errno, f"{e.strerror}{' (' + detail + ')' if detail else ''}") from e
        attrs = 0
        for ms, attr in _ATTR_OF_MS.items():
            if ov.flags & ms:
                attrs |= attr
        mfd = _libc.fsmount(fd, _libc.FSMOUNT_CLOEXEC, attrs)
        try:
            _libc.move_mount(mfd, target)
        finally:
            os.close(mfd)
    finally:
        os.close(fd)


def _short_name(i: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    name = ""
    while True:
        i, r = divmod(i, len(digits))
        name = digits[r] + name
        if i == 0:
            return name


def _mount_in_child(cwd: str, source: str, target: str, fstype: str, flags: int, data: str) -> None:
    """mount(2) from a forked child sitting in `cwd`, so relative option paths resolve there."""
    pid = os.fork()
    if pid == 0:  # child: only chdir + mount, then _exit without running any Python cleanup
        code = 0
        try:
            os.chdir(cwd)
            _libc.mount(source, target, fstype, flags, data)
        except OSError as e:
            code = e.errno or 255
        except BaseException:
            code = 255
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        err = code if 0 < code < 255 else errno.EIO
        raise OSError(err, f"mount {fstype} on {target!r} (from {cwd!r}, data={data!r}): {os.strerror(err)}")


def _mount_overlay_legacy(ov: OverlayOptions, target: str) -> None:
    data = ov.legacy_data()
    if len(data.encode()) < PAGE_SIZE:
        _libc.mount("overlay", target, "overlay", ov.flags, data)
        return
    links = tempfile.mkdtemp(prefix="barque-ovl-links-")
    try:
        names = []
        for i, lower in enumerate(ov.lowers):
            name = _short_name(i)
            os.symlink(lower, os.path.join(links, name))
            names.append(name)
        upper = work = None
        if ov.upper is not None:
            os.symlink(ov.upper, os.path.join(links, "U"))
            os.symlink(ov.work, os.path.join(links, "W"))  # type: ignore[arg-type]
            upper, work = "U", "W"  # not base-36 digits: cannot clash with layer names
        short = ov.legacy_data(names, upper, work)
        if len(short.encode()) >= PAGE_SIZE:
            raise InvalidArgument(f"overlay options do not fit a page even with short links ({len(short)} bytes)")
        log.debug("overlay options %d bytes > page; mounting %d layers through short links in %s",
                  len(data), len(names), links)
        _mount_in_child(links, "overlay", target, "overlay", ov.flags, short)
    finally:
        shutil.rmtree(links, ignore_errors=True)


def _mount_overlay(m: Mount, target: str) -> None:
    ov = parse_overlay(m)
    if overlay_supports_lowerdir_plus():
        _mount_overlay_new_api(ov, target)
    else:
        _mount_overlay_legacy(ov, target)


def _mount_bind(m: Mount, target: str) -> None:
    opts = parse_options(m.options)
    bind = opts.flags & (_libc.MS_BIND | _libc.MS_REC) or _libc.MS_BIND
    _libc.mount(m.source, target, None, bind)
    extra = opts.flags & ~(_libc.MS_BIND | _libc.MS_REC)
    if extra:
        # a bind mount ignores most flags; read-only and friends need a remount of the new mount
        try:
            _libc.mount(None, target, None, _libc.MS_REMOUNT | _libc.MS_BIND | extra)
        except OSError:
            _libc.umount(target, _libc.MNT_DETACH)
            raise


def _mount_one(m: Mount, target: str) -> None:
    if m.type == "bind" or "bind" in m.options or "rbind" in m.options:
        _mount_bind(m, target)
    elif m.type == "overlay":
        _mount_overlay(m, target)
    else:
        opts = parse_options(m.options)
        data = ",".join(opts.data)
        if len(data.encode()) >= PAGE_SIZE:
            raise InvalidArgument(f"mount options of {m.type} longer than a page ({len(data)} bytes)")
        _libc.mount(m.source, target, m.type, opts.flags, data or None)


def mount_all(mounts: Sequence[Mount], target: Path) -> None:
    """Mount every plan on `target`, in order (later ones stack on earlier ones). All or nothing."""
    target_s = os.path.abspath(target)
    done = 0
    try:
        for m in mounts:
            try:
                _mount_one(m, target_s)
            except OSError as e:
                raise FailedPrecondition(f"cannot mount {m.type} {m.source} on {target_s}: {e}", cause=e) from e
            done += 1
    except BaseException:
        for _ in range(done):
            try:
                _libc.umount(target_s, _libc.MNT_DETACH)
            except OSError as e:  # pragma: no cover - best effort while already failing
                log.warning("cleanup after failed mount: %s", e)
        raise


def unmount(target: Path) -> None:
    """Unmount everything stacked on `target`. Not mounted: nothing to do. Busy: detach lazily.

    Raises FailedPrecondition for any other failure (EPERM, an I/O error…).
    """
    path = os.path.abspath(target)
    for _ in range(64):
        try:
            _libc.umount(path, 0)
            continue
        except OSError as e:
            if e.errno in (errno.EINVAL, errno.ENOENT):
                return  # not (or no longer) a mount point
            if e.errno != errno.EBUSY:
                raise FailedPrecondition(f"cannot unmount {path}: {e}", cause=e) from e
        try:
            log.debug("%s is busy; detaching lazily", path)
            _libc.umount(path, _libc.MNT_DETACH)
        except OSError as e:
            if e.errno in (errno.EINVAL, errno.ENOENT):
                return
            raise FailedPrecondition(f"cannot unmount {path}: {e}", cause=e) from e
    raise FailedPrecondition(f"cannot unmount {path}: still mounted after 64 unmounts")


@contextmanager
def mounted(mounts: Sequence[Mount]) -> Iterator[Path]:
    """Mount the plans on a fresh temporary directory and yield it; always unmount and remove it afterwards."""
    target = Path(tempfile.mkdtemp(prefix="barque-mnt-"))
    try:
        mount_all(mounts, target)
        try:
            yield target
        finally:
            unmount(target)
    finally:
        try:
            target.rmdir()
        except OSError as e:
            log.warning("cannot remove temporary mount point %s: %s", target, e)
