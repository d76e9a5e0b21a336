"""Choosing a storage driver by name: the drivers barque has, Docker's names for them, and clear refusals."""

from __future__ import annotations

import os
from pathlib import Path

from barque.errors import FailedPrecondition, InvalidArgument
from barque.snapshot.base import Snapshotter

__all__ = ["get_snapshotter", "canonical_driver_name", "DRIVERS"]

DRIVERS = ("overlay", "btrfs", "vfs")
_ALIASES = {"overlay2": "overlay", "overlayfs": "overlay", "native": "vfs"}   # Docker's and containerd's names


def canonical_driver_name(driver: str) -> str:
    """barque's name for a driver, accepting Docker's (overlay2) and containerd's (overlayfs, native) names."""
    return _ALIASES.get(driver, driver)


def _device_mapper_present() -> bool:
    if os.path.exists("/dev/mapper/control"):
        return True
    try:
        return any(line.split()[-1] == "device-mapper" for line in Path("/proc/misc").read_text().splitlines()
                   if line.strip())
    except OSError:
        return False


def get_snapshotter(driver: str, root: Path) -> Snapshotter:
    """Open (creating if needed) the snapshotter `driver` at `root` (``<barque root>/snapshots/<driver>``)."""
    name = canonical_driver_name(driver)
    if name == "overlay":
        from barque.snapshot.overlay import OverlaySnapshotter

        return OverlaySnapshotter(root)
    if name == "btrfs":
        from barque.snapshot.btrfs import BtrfsSnapshotter

        return BtrfsSnapshotter(root)
    if name == "vfs":
        from barque.snapshot.vfs import VfsSnapshotter

        return VfsSnapshotter(root)
    if name in ("devicemapper", "devmapper"):
        if _device_mapper_present():
            why = "barque does not implement it (Docker removed it in v25); use overlay"
        else:
            why = "this kernel has no device-mapper support (no /dev/mapper/control, none in /proc/misc)"
        raise FailedPrecondition(f"storage driver {driver} is not available: {why}")
    if name == "aufs":
        raise FailedPrecondition(
            f"storage driver {driver} is not available: AUFS is not in mainline Linux kernels; use overlay, which "
            f"replaced it (Docker removed aufs in v24)")
    raise InvalidArgument(f"unknown storage driver {driver!r}; valid drivers: {', '.join(DRIVERS)} "
                          f"(also accepted: {', '.join(sorted(_ALIASES))})")
