"""overlay: each snapshot is an overlayfs upper directory; a chain of committed snapshots is the lowerdir stack.

Per snapshot ``snapshots/<id>/fs`` (the layer's files, the upper dir while active) and ``snapshots/<id>/work``
(overlayfs' scratch dir, active snapshots only) — containerd's overlayfs snapshotter layout and mounts:

* active, no parent   -> rw bind of fs (overlayfs needs at least one lower layer)
* active with parents -> overlay: lowerdir = parents top-most first, upperdir = fs, workdir = work
* view of one layer   -> ro bind of that layer's fs (a lower-only overlay needs two layers)
* view of a chain     -> overlay with only lowerdirs (read-only by construction)

Options: ``index=off`` (so layers can be shared between mounts and copied freely); redirect_dir and metacopy stay
off so an upper dir holds whole files and real whiteouts — a layer diff from it is portable. Deep chains are
barque.snapshot.mount's business (the plan carries absolute paths; see mount.py).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
from pathlib import Path

from barque.errors import FailedPrecondition, InvalidArgument
from barque.linux.mountinfo import fs_type
from barque.snapshot._driver import DirectorySnapshotter
from barque.snapshot.base import Kind, Mount
from barque.snapshot.metadata import Record
from barque.snapshot.mount import OVERLAY_MAX_LOWERS, mount_all, unmount

__all__ = ["OverlaySnapshotter", "check_overlay_support"]

log = logging.getLogger(__name__)

_OVERLAY_PARAMS = Path("/sys/module/overlay/parameters")
_probed: set[int] = set()   # st_dev of filesystems where a probe mount worked, this process


def _module_default_on(param: str, params: Path = _OVERLAY_PARAMS) -> bool:
    try:
        return (params / param).read_text().strip() in ("Y", "y", "on", "1")
    except OSError:
        return False


def default_mount_options(params: Path = _OVERLAY_PARAMS) -> tuple[str, ...]:
    """``index=off``, plus explicit ``redirect_dir=off``/``metacopy=off`` only where the kernel turns them on by
    default (CONFIG_OVERLAY_FS_REDIRECT_DIR / _METACOPY) — either would make upper dirs non-portable diffs."""
    opts = ["index=off"]
    if _module_default_on("redirect_dir", params):
        opts.append("redirect_dir=off")
    if _module_default_on("metacopy", params):
        opts.append("metacopy=off")
    return tuple(opts)


def check_overlay_support(root: Path) -> None:
    """Mount a tiny overlay inside `root` (as containerd's overlayutils.Supported does): the only sure test that
    overlayfs is in the kernel and accepts this filesystem as upper layer. FailedPrecondition naming why if not."""
    dev = os.stat(root).st_dev
    if dev in _probed:
        return
    # the answer holds for this filesystem until the next boot: remembered in the root, so a `run` does not pay
    # the probe mount (tens of milliseconds) every time
    marker = root / ".overlay-supported"
    stamp = f"{_boot_id()} {dev}\n"
    try:
        if marker.read_text() == stamp:
            _probed.add(dev)
            return
    except OSError:
        pass
    probe = Path(tempfile.mkdtemp(prefix=".probe-", dir=root))
    try:
        for d in ("lower1", "lower2", "upper", "work", "merged"):
            (probe / d).mkdir()
        plan = Mount("overlay", "overlay", ("index=off", f"lowerdir={probe / 'lower2'}:{probe / 'lower1'}",
                                            f"upperdir={probe / 'upper'}", f"workdir={probe / 'work'}"))
        try:
            mount_all([plan], probe / "merged")
        except FailedPrecondition as e:
            cause = e.__cause__
            if isinstance(cause, OSError) and cause.errno == errno.ENODEV:
                why = "this kernel has no overlayfs (modprobe overlay?)"
            else:
                why = f"{root} is on {fs_type(root) or 'an unknown filesystem'}, which overlayfs cannot use as upper layer"
            raise FailedPrecondition(f"storage driver overlay is not available: {why} ({cause or e}); "
                                     f"use vfs, or put the barque root on ext4, xfs or btrfs", cause=e) from e
        unmount(probe / "merged")
        _probed.add(dev)
        try:
            tmp = root / f".overlay-supported.{os.getpid()}"
            tmp.write_text(stamp)
            os.replace(tmp, marker)
        except OSError:
            pass
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


class OverlaySnapshotter(DirectorySnapshotter):
    name = "overlay"

    def __init__(self, root: Path, *, probe: bool = True) -> None:
        self._probe = probe
        self._options = default_mount_options()
        super().__init__(root)

    def _check_root(self) -> None:
        bad = [c for c in ":,\\" if c in str(self.root)]
        if bad:
            # ':' separates lowerdirs and ',' options in overlay's mount data; refuse rather than escape
            raise InvalidArgument(f"overlay snapshotter root {self.root} contains {''.join(bad)!r}, which overlayfs "
                                  f"mount options cannot carry")

    def _check_root_created(self) -> None:
        if self._probe:
            check_overlay_support(self.root)

    def _check_new(self, kind: Kind, parent: Record | None) -> None:
        depth = 0 if parent is None else len(parent.parent_ids) + 1
        if depth > OVERLAY_MAX_LOWERS:
            raise FailedPrecondition(
                f"cannot stack {depth} layers: overlayfs mounts at most {OVERLAY_MAX_LOWERS} lower layers "
                f"(squash the image, e.g. rebuild it with fewer layers)")

    def upper_dir(self, snapshot_id: int) -> Path:
        return self.snapshot_dir(snapshot_id) / "fs"

    def work_dir(self, snapshot_id: int) -> Path:
        return self.snapshot_dir(snapshot_id) / "work"

    def _build(self, staging: Path, kind: Kind, parent: Record | None) -> None:
        staging.mkdir(mode=0o700)
        (staging / "fs").mkdir(mode=0o755)
        if kind == Kind.ACTIVE:
            (staging / "work").mkdir(mode=0o711)

    def _lowers(self, rec: Record) -> list[Path]:
        return [self.upper_dir(pid) for pid in rec.parent_ids]

    def _mounts(self, rec: Record) -> list[Mount]:
        lowers = self._lowers(rec)
        if not lowers:
            mode = "rw" if rec.kind == Kind.ACTIVE else "ro"
            return [Mount("bind", str(self.upper_dir(rec.id)), (mode, "rbind"))]
        if rec.kind == Kind.VIEW and len(lowers) == 1:
            return [Mount("bind", str(lowers[0]), ("ro", "rbind"))]
        options = list(self._options)
        if rec.kind == Kind.ACTIVE:
            options += [f"workdir={self.work_dir(rec.id)}", f"upperdir={self.upper_dir(rec.id)}"]
        options.append("lowerdir=" + ":".join(map(str, lowers)))
        return [Mount("overlay", "overlay", tuple(options))]

    def _usage_dir(self, rec: Record) -> Path:
        return self.upper_dir(rec.id)

    def _apply_target(self, rec: Record) -> tuple[Path, str, list[Path]]:
        return self.upper_dir(rec.id), "overlay", self._lowers(rec)

    def _diff_source(self, rec: Record) -> tuple[str, Path, list[Path]]:
        return "overlay", self.upper_dir(rec.id), self._lowers(rec)

    def describe(self, key: str) -> dict[str, str]:
        """Docker overlay2's GraphDriver.Data: the snapshot's upper (diff) and work dirs and its lower layers."""
        rec = self._get(key)
        data = {"UpperDir": str(self.upper_dir(rec.id))}
        if self.work_dir(rec.id).is_dir():
            data["WorkDir"] = str(self.work_dir(rec.id))
        if rec.parent_ids:
            data["LowerDir"] = ":".join(map(str, self._lowers(rec)))
        return data
