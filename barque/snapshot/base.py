"""The snapshotter interface: what every copy-on-write storage driver offers (containerd's Snapshotter, in Python).

A snapshotter hands out *mount plans* (`Mount`), never mounts anything itself; `barque.snapshot.mount` is the one
place that turns plans into mounts. Keys are arbitrary strings; active and view snapshots are addressed by the key
they were created with, committed snapshots by the name they were committed as. Keys and names share one namespace.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

__all__ = ["Mount", "Kind", "Info", "Usage", "Snapshotter"]


@dataclass(frozen=True)
class Mount:
    """One mount to perform: the arguments of mount(8) (`mount -t type -o options source target`), as a value.

    Options mix flags (``ro``, ``rbind``, ``nosuid``…) and filesystem data (``lowerdir=…``) exactly like mount(8);
    `barque.snapshot.mount.mount_all` sorts them out.
    """

    type: str
    source: str
    options: tuple[str, ...] = ()

    @property
    def readonly(self) -> bool:
        return "ro" in self.options

    def option(self, key: str) -> str | None:
        """The value of a ``key=value`` option, or None."""
        prefix = key + "="
        for opt in self.options:
            if opt.startswith(prefix):
                return opt[len(prefix):]
        return None


class Kind(enum.Enum):
    ACTIVE = "active"        # writable, being prepared (a container's rootfs, a layer being unpacked)
    VIEW = "view"            # read-only look at a committed snapshot
    COMMITTED = "committed"  # immutable; the only kind that can be a parent


@dataclass(frozen=True)
class Info:
    name: str                # the key (active/view) or committed name
    parent: str | None
    kind: Kind
    created: float           # Unix time; for committed snapshots, the time of the commit (as containerd)
    labels: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def key(self) -> str:
        return self.name


@dataclass(frozen=True)
class Usage:
    size: int                # bytes of disk the snapshot's own changes take (st_blocks * 512, hard links once)
    inodes: int


class Snapshotter(ABC):
    """containerd's Snapshotter contract (core/snapshots/snapshotter.go), with two additions barque.layers needs:
    `apply_target` (where to unpack a layer without mounting) and `diff_source` (what to diff a snapshot against).

    Errors: NotFound for a missing key; AlreadyExists when a key/name is taken; FailedPrecondition for a move its
    state forbids (committing a view, a parent that is not committed, mounting a committed snapshot); Conflict when
    removing a snapshot that still has children.
    """

    name: str
    root: Path

    @abstractmethod
    def prepare(self, key: str, parent: str | None = None, labels: dict[str, str] | None = None) -> list[Mount]:
        """Create an active (writable) snapshot `key` on top of the committed snapshot `parent`."""

    @abstractmethod
    def view(self, key: str, parent: str | None = None, labels: dict[str, str] | None = None) -> list[Mount]:
        """Create a read-only view `key` of the committed snapshot `parent`."""

    @abstractmethod
    def commit(self, name: str, key: str, labels: dict[str, str] | None = None) -> None:
        """Turn the active snapshot `key` into the committed snapshot `name`; `key` ceases to exist.

        As in containerd, labels are replaced, not inherited: the committed snapshot gets exactly `labels`.
        """

    @abstractmethod
    def mounts(self, key: str) -> list[Mount]:
        """The mounts of an active snapshot or a view (again), e.g. after a restart."""

    @abstractmethod
    def stat(self, key: str) -> Info: ...

    @abstractmethod
    def remove(self, key: str) -> None: ...

    @abstractmethod
    def usage(self, key: str) -> Usage:
        """Disk used by the snapshot's own changes: measured for active ones, recorded at commit for committed ones."""

    @abstractmethod
    def walk(self) -> Iterator[Info]: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def apply_target(self, key: str) -> AbstractContextManager[tuple[Path, str, list[Path]]]:
        """Where to unpack a layer into the active snapshot `key`, without mounting when the driver allows.

        Yields ``(directory, whiteout_mode, lowers)``: overlay gives ``(upper_dir, "overlay", lower_dirs top-most
        first)`` (write whiteouts as overlay's 0/0 char devices and opaque xattrs); vfs and btrfs give
        ``(snapshot_dir, "delete", [])`` (apply whiteouts by deleting).
        """

    @abstractmethod
    def diff_source(self, key: str) -> tuple[str, Path, list[Path]] | tuple[str, Path | None, Path]:
        """What to compare to get the changes of snapshot `key` against its parent.

        overlay: ``("overlay", upper_dir, lower_dirs)`` for `barque.layers.overlay_changes(upper, lowers)`;
        vfs/btrfs: ``("dirs", parent_dir or None, snapshot_dir)`` for `barque.layers.diff_dirs(lower, upper)`.
        """

    def describe(self, key: str) -> dict[str, str] | None:
        """Driver details for Docker's ``GraphDriver.Data`` (``docker inspect``); None where Docker shows null."""
        return None

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> "Snapshotter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
