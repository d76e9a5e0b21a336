"""Copy-on-write storage drivers behind containerd's Snapshotter interface: overlay (default), btrfs and vfs.

Snapshotters return mount plans (`Mount`); `mount_all` / `mounted` perform them. Drivers are opened by name with
`get_snapshotter(driver, root)`.
"""

from barque.snapshot.base import Info, Kind, Mount, Snapshotter, Usage
from barque.snapshot.factory import DRIVERS, canonical_driver_name, get_snapshotter
from barque.snapshot.mount import OVERLAY_MAX_LOWERS, mount_all, mounted, unmount

__all__ = [
    "Mount",
    "Kind",
    "Info",
    "Usage",
    "Snapshotter",
    "get_snapshotter",
    "canonical_driver_name",
    "DRIVERS",
    "mount_all",
    "unmount",
    "mounted",
    "OVERLAY_MAX_LOWERS",
]
